"""Device choice and random data that is the same on every device."""

import torch


def pick_device() -> torch.device:
    """CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seeded_randn(*shape: int, seed: int = 0, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard-normal tensor drawn on a seeded CPU generator, then moved to ``device``.

    CPU and CUDA random streams differ, so drawing on the CPU first is what makes a
    notebook print the same numbers on both.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype).to(device)
