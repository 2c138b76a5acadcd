r"""Forward + backward speed of every actlib activation against native torch and a naive form.

For each catalog activation, time ``y = f(x); torch.autograd.grad(y, x, g)`` for

* **actlib** — the hand-derived ``torch.autograd.Function``,
* **native** — the record's torch reference (``torch.sigmoid``, ``F.gelu`` …),
* **naive** — the textbook formula as a plain autograd Function written below
  (sigmoid as 1/(1+e^{-x}) with its derivative through ``exp``, tanh by exponentials,
  softplus as log(1+e^x), softmax without the max shift …),

on 2^22 float32 elements (softmax, log_softmax and maxout on a (2^12, 2^10) tensor along
the last dim; argmax forward only), on the CPU and on CUDA when present. Repeats are
interleaved (actlib, native, naive, actlib, …) so machine noise hits all three alike, and
the median is reported. Then the same for actlib and native under ``torch.compile``.

Usage::

    .venv/bin/python benchmarks/elementwise.py [--quick] [--no-compile] [--threads N] [--only NAME ...]
        [--csv book/data/elementwise_benchmark.csv]

``--csv`` also writes every median (one row per device, mode, activation and variant);
the book's "Choosing an activation" chapter reads the costs relative to ReLU from it.

Timings are printed, never asserted: the numbers depend on the machine.
"""

import argparse
import csv
import math
import statistics
import sys
import time

import torch

from actlib.catalog import CATALOG, maxout_reference

# ---------------------------------------------------------------------------
# Naive textbook forms: what a first implementation would write.
# ---------------------------------------------------------------------------


class NaiveSigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 1 / (1 + torch.exp(-x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        e = torch.exp(-x)
        return g * e / (1 + e) ** 2


class NaiveTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 4 / (torch.exp(x) + torch.exp(-x)) ** 2


class NaiveSoftsign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + torch.abs(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (1 + torch.abs(x)) ** 2


class NaiveLeaky(torch.autograd.Function):
    """max(x, 0) + a·min(x, 0): ReLU (a = 0), leaky ReLU; PReLU with a tensor slope."""

    @staticmethod
    def forward(ctx, x, a):
        ctx.save_for_backward(x, a)
        return torch.where(x > 0, x, a * x)

    @staticmethod
    def backward(ctx, g):
        x, a = ctx.saved_tensors
        grad_a = torch.where(x > 0, 0, g * x).sum().reshape(a.shape) if a.requires_grad else None
        return torch.where(x > 0, g, a * g), grad_a


class NaiveELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, scale):
        ctx.save_for_backward(x)
        ctx.alpha, ctx.scale = alpha, scale
        return scale * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.scale * torch.where(x > 0, 1, ctx.alpha * torch.exp(x)), None, None


class NaiveSoftplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.log(1 + torch.exp(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        e = torch.exp(x)
        return g * e / (1 + e)


class NaiveSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + torch.exp(-x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        s = 1 / (1 + torch.exp(-x))
        return g * s * (1 + x * (1 - s))


class NaiveGELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, approximate):
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            u = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
            return 0.5 * x * (1 + torch.tanh(u))
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if ctx.approximate == "tanh":
            t = torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
            du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x**2)
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * du), None
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        return g * (cdf + x * torch.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)), None


class NaiveMish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.tanh(torch.log(1 + torch.exp(x)))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        e = torch.exp(x)
        t = torch.tanh(torch.log(1 + e))
        return g * (t + x * e / (1 + e) * (1 - t**2))


class NaiveSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim):
        e = torch.exp(x)
        y = e / e.sum(dim, keepdim=True)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return y * (g - (g * y).sum(ctx.dim, keepdim=True)), None


class NaiveLogSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim):
        y = x - torch.log(torch.exp(x).sum(dim, keepdim=True))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g - torch.exp(y) * g.sum(ctx.dim, keepdim=True), None


def _naive_argmax(x, dim=-1):
    """First index of the maximum by comparison and a masked minimum over positions."""
    positions = torch.arange(x.shape[dim], device=x.device)
    return torch.where(x == x.max(dim, keepdim=True).values, positions, x.shape[dim]).amin(dim)


def _naive_maxout(x, num_pieces, dim=-1):
    """Maxout as the direct composition of torch ops (a stack of strided slices)."""
    return torch.stack([x[..., j::num_pieces] for j in range(num_pieces)]).amax(0)


def _one(x, value):
    return torch.tensor(value, dtype=x.dtype, device=x.device)


NAIVE = {
    "sigmoid": lambda x: NaiveSigmoid.apply(x),
    "tanh": lambda x: NaiveTanh.apply(x),
    "softsign": lambda x: NaiveSoftsign.apply(x),
    "relu": lambda x: NaiveLeaky.apply(x, _one(x, 0.0)),
    "leaky_relu": lambda x: NaiveLeaky.apply(x, _one(x, 0.01)),
    "prelu": lambda x, weight: NaiveLeaky.apply(x, weight),
    "elu": lambda x: NaiveELU.apply(x, 1.0, 1.0),
    "selu": lambda x: NaiveELU.apply(x, 1.6732632423543772, 1.0507009873554805),
    "softplus": lambda x: NaiveSoftplus.apply(x),
    "silu": lambda x: NaiveSiLU.apply(x),
    "gelu": lambda x: NaiveGELU.apply(x, "none"),
    "mish": lambda x: NaiveMish.apply(x),
    "softmax": lambda x: NaiveSoftmax.apply(x, -1),
    "log_softmax": lambda x: NaiveLogSoftmax.apply(x, -1),
    "argmax": lambda x: _naive_argmax(x, -1),
    "maxout": lambda x: _naive_maxout(x, 2),
}

# ---------------------------------------------------------------------------
# The cases: one per catalog record, with its first example's arguments.
# ---------------------------------------------------------------------------


def cases(names, device, log2_elements):
    """(name, make_input, {variant: callable}, differentiable) for each catalog record."""
    rows = 2 ** (log2_elements - 10)
    for record in CATALOG.values():
        if names and record.name not in names:
            continue
        example = dict(record.examples[0])
        if record.kind in ("dim", "index", "maxout"):
            example["dim"] = -1
            shape = (rows, 2**10)
        else:
            shape = (2**log2_elements,)
        reference = maxout_reference if record.kind == "maxout" else record.reference
        naive = NAIVE.get(record.name)
        if record.kind == "parametric":
            weight = torch.full((1,), example.pop("weight"), device=device, requires_grad=True)
            variants = {
                "actlib": lambda x, f=record.functional, w=weight: f(x, w),
                "native": lambda x, f=reference, w=weight: f(x, w),
                "naive": lambda x, f=naive, w=weight: f(x, w),
            }
        else:
            variants = {
                "actlib": lambda x, f=record.functional, k=example: f(x, **k),
                "native": lambda x, f=reference, k=example: f(x, **k),
            }
            if naive is not None:
                variants["naive"] = naive
        generator = torch.Generator().manual_seed(0)
        x = (torch.randn(shape, generator=generator) * 3).to(device)
        yield record.name, x, variants, record.kind != "index"


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_variants(variants, x, differentiable, repeats, warmup):
    """Median seconds of forward (+ backward) per variant, repeats interleaved."""
    x = x.detach().requires_grad_(differentiable)
    g = None
    device = x.device.type

    def step(function):
        nonlocal g
        y = function(x)
        if differentiable:
            if g is None:
                g = torch.ones_like(y)
            torch.autograd.grad(y, x, g)

    times = {name: [] for name in variants}
    for i in range(warmup + repeats):
        for name, function in variants.items():
            _sync(device)
            start = time.perf_counter()
            step(function)
            _sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def report(title, results, columns):
    """Print a markdown table of milliseconds and ratios; return actlib/native ratios."""
    print(f"\n### {title}\n")
    head = " | ".join(f"{c} ms" for c in columns)
    ratio_heads = ["actlib/native"] + (["actlib/naive"] if "naive" in columns else [])
    print(f"| activation | {head} | {' | '.join(ratio_heads)} |")
    print("|---" * (1 + len(columns) + len(ratio_heads)) + "|")
    ratios = []
    for name, ms in results.items():
        cells = [f"{ms[c] * 1e3:.2f}" if c in ms else "—" for c in columns]
        r_native = ms["actlib"] / ms["native"]
        ratios.append(r_native)
        cells.append(f"{r_native:.2f}")
        if "naive" in columns:
            cells.append(f"{ms['actlib'] / ms['naive']:.2f}" if "naive" in ms else "—")
        print(f"| {name} | {' | '.join(cells)} |")
    print(
        f"\nactlib/native: median {statistics.median(ratios):.2f}, max {max(ratios):.2f} "
        f"({max(results, key=lambda n: results[n]['actlib'] / results[n]['native'])})"
    )
    return ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2^20 elements, fewer repeats")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--only", nargs="*", default=[], help="activation names to run")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch.set_num_threads (1 gives steadier numbers on a busy machine)",
    )
    parser.add_argument("--csv", help="also write the medians to this CSV file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    log2_elements = 20 if args.quick else 22
    repeats, warmup = (5, 1) if args.quick else (21, 3)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, devices {devices}, "
        f"2^{log2_elements} float32 elements, median of {repeats} interleaved repeats "
        f"after {warmup} warm-up",
        flush=True,
    )

    for device in devices:
        results = {}
        for name, x, variants, differentiable in cases(args.only, device, log2_elements):
            print(f"  {device} eager: {name} …", file=sys.stderr, flush=True)
            results[name + ("" if differentiable else " (fwd only)")] = time_variants(
                variants, x, differentiable, repeats, warmup
            )
        report(f"{device}, eager, forward + backward", results, ["actlib", "native", "naive"])
        rows += _csv_rows(device, "eager", results)

        if args.no_compile:
            continue
        results, failures = {}, []
        for name, x, variants, differentiable in cases(args.only, device, log2_elements):
            print(f"  {device} compile: {name} …", file=sys.stderr, flush=True)
            try:
                compiled = {
                    k: torch.compile(variants[k], dynamic=False) for k in ("actlib", "native")
                }
                # warm-up includes compilation of forward and backward graphs
                results[name + ("" if differentiable else " (fwd only)")] = time_variants(
                    compiled, x, differentiable, max(3, repeats // 2), 2
                )
            except Exception as error:  # report, carry on with the next activation
                failures.append(f"{name}: {type(error).__name__}: {str(error).splitlines()[0]}")
            torch._dynamo.reset()
        if results:
            report(f"{device}, torch.compile, forward + backward", results, ["actlib", "native"])
            rows += _csv_rows(device, "compile", results)
        for failure in failures:
            print(f"torch.compile failed for {failure}")
    if args.csv:
        with open(args.csv, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["device", "mode", "activation", "variant", "milliseconds"])
            writer.writerows(rows)
        print(f"\nwrote {args.csv}")


def _csv_rows(device, mode, results):
    return [
        [device, mode, name, variant, f"{seconds * 1e3:.3f}"]
        for name, medians in results.items()
        for variant, seconds in medians.items()
    ]


if __name__ == "__main__":
    main()
