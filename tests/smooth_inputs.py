"""Inputs for the autograd tests, shared by several test modules (import it by name)."""

import torch


def smooth_input(shape=(3, 6, 6), device="cpu") -> torch.Tensor:
    """float64 input away from every kink (|x| ≥ 0.1) and with no ties (maxout's max).

    A permutation of evenly spaced values, each nudged by a small random amount.
    """
    generator = torch.Generator().manual_seed(0)
    n = torch.Size(shape).numel()
    values = (torch.randperm(n, generator=generator).double() - n / 2 + 0.5) * 0.25
    values = values + 0.01 * torch.rand(n, generator=generator, dtype=torch.float64)
    return values.reshape(shape).to(device)
