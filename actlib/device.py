"""Device choice, and random streams that are the same on every device and never collide.

Every random draw of the course comes from a seeded CPU generator made by
:func:`stream_generator`, which mixes a *purpose* into the seed: the data
(:func:`seeded_randn`), a model's parameters (:func:`actlib.analysis.build_mlp`) and the
order of the training examples (:func:`actlib.analysis.train`), the draws a training run
makes (negative samples, sampled classes) and a model's structure (a random tree) each have
a stream of their own. With one plain ``torch.Generator().manual_seed(seed)`` for all of
them, the same seed and shapes draw the very same numbers: the first weight matrix of a
network would be a rescaled copy of its input data, and statistics measured on it would be
artefacts.
"""

import hashlib

import torch

#: The purposes that :func:`stream_generator` knows; each one is a separate random stream.
PURPOSES = ("data", "parameters", "order", "sampling", "structure")


def stream_seed(purpose: str, seed: int) -> int:
    """The 63-bit seed of stream ``purpose`` for the user's ``seed``.

    A hash (BLAKE2b) of the purpose and the seed: streams of different purposes, or of
    different seeds, start from unrelated states, and the mapping is the same on every
    machine and in every Python (no ``hash()`` randomisation).
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    digest = hashlib.blake2b(f"actlib:{purpose}:{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def stream_generator(purpose: str, seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for the random stream ``purpose`` (see :data:`PURPOSES`)."""
    return torch.Generator().manual_seed(stream_seed(purpose, seed))


def pick_device() -> torch.device:
    """CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seeded_randn(*shape: int, seed: int = 0, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard-normal tensor drawn on the seeded CPU *data* stream, then moved to ``device``.

    CPU and CUDA random streams differ, so drawing on the CPU first is what makes a
    notebook print the same numbers on both. The data stream is separate from the
    parameter stream of :func:`actlib.analysis.build_mlp`, whatever the two seeds.
    """
    return torch.randn(*shape, generator=stream_generator("data", seed), dtype=dtype).to(device)
