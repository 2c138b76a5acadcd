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

Then the **peak memory** of actlib and native on 2^24 float32 elements (64 MiB), above
the input: the forward alone under ``torch.no_grad`` (ideally the output, 1.0 input
sizes, plus at most one temporary) and forward + backward (output, incoming gradient,
saved tensors and the input gradient). Each measurement runs in a fresh process on the
CPU: the growth of its peak resident set from just before the call, with
glibc's mmap threshold fixed so that every large tensor is mapped and unmapped on its
own. The peak is Linux's VmHWM, reset just before the call (``/proc/self/clear_refs``).
On CUDA it is ``torch.cuda.max_memory_allocated``.

The header line names the torch version, the CPU capability (the vectorised kernel set
torch chose: ``AVX512``, ``AVX2``, ``DEFAULT``; ``ATEN_CPU_CAPABILITY`` overrides it) and
the thread count; ``--threads 1 2`` runs the whole timing once per thread count.

Usage::

    .venv/bin/python benchmarks/elementwise.py [--quick] [--no-compile] [--no-memory | --memory-only]
        [--threads N ...] [--only NAME ...] [--csv book/data/elementwise_benchmark.csv]

``--csv`` also writes every median (one row per device, mode, activation and variant);
the book's "Choosing an activation" chapter reads the costs relative to ReLU from it.

Timings are printed, never asserted: the numbers depend on the machine.
"""

import argparse
import csv
import math
import os
import statistics
import subprocess
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


# ---------------------------------------------------------------------------
# Peak memory
# ---------------------------------------------------------------------------

MEMORY_LOG2_ELEMENTS = 24
MEMORY_MODES = ("forward", "forward+backward")


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset the peak resident set (VmHWM) to the current one (Linux: clear_refs 5); return it.

    Without the reset the peak of ``import torch`` itself would hide a small call's.
    """
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_bytes("VmRSS")


def measure_peak(name: str, variant: str, mode: str, device: str, log2_elements: int) -> float:
    """Peak bytes allocated by one call, above the input (run in a fresh process on the CPU)."""
    (case,) = list(cases([name], device, 10))
    _, small, variants, differentiable = case
    function = variants[variant]
    training = mode == "forward+backward" and differentiable
    shape = (2 ** (log2_elements - 10), 2**10) if small.dim() == 2 else (2**log2_elements,)
    # Warm up on a small input: kernels, thread pools and autograd are set up outside the
    # measurement. The big input is filled in place, so making it costs no temporary.
    warm = small.detach().requires_grad_(training)
    y = function(warm)
    if training:
        torch.autograd.grad(y, warm, torch.ones_like(y))
    del y, warm
    x = torch.empty(shape, device=device).normal_(0, 3, generator=torch.Generator(device).manual_seed(0))
    x.requires_grad_(training)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.max_memory_allocated()
    else:
        before = _reset_peak_rss()
    if training:
        y = function(x)
        torch.autograd.grad(y, x, torch.ones_like(y))
    else:
        with torch.no_grad():
            y = function(x)
    if device == "cuda":
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - before)
    return float(_status_bytes("VmHWM") - before)


def _peak_in_child(name, variant, mode, log2_elements):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", OMP_NUM_THREADS="1")
    command = [sys.executable, __file__, "--measure-peak", name, variant, mode, str(log2_elements)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def memory_report(names, device, log2_elements):
    """Peak memory of actlib and native, in input sizes, printed as a table; CSV rows."""
    input_bytes = 4 * 2**log2_elements
    print(
        f"\n### {device}, peak memory above the input, in input sizes "
        f"(2^{log2_elements} float32 = {input_bytes / 2**20:.0f} MiB)\n"
    )
    print("| activation | forward actlib | forward native | fwd+bwd actlib | fwd+bwd native | "
          "fwd+bwd actlib/native |")
    print("|---|---|---|---|---|---|")
    rows = []
    for record in CATALOG.values():
        if names and record.name not in names:
            continue
        print(f"  {device} memory: {record.name} …", file=sys.stderr, flush=True)
        peaks = {}
        for mode in MEMORY_MODES:
            if mode == "forward+backward" and record.kind == "index":
                continue
            for variant in ("actlib", "native"):
                if device == "cpu":
                    peak = _peak_in_child(record.name, variant, mode, log2_elements)
                else:
                    peak = measure_peak(record.name, variant, mode, device, log2_elements)
                peaks[mode, variant] = peak / input_bytes
                rows.append([device, f"peak {mode}", record.name, variant, f"{peak / 2**20:.1f}"])
        cells = [f"{peaks[k]:.2f}" if k in peaks else "—" for k in (
            ("forward", "actlib"), ("forward", "native"),
            ("forward+backward", "actlib"), ("forward+backward", "native"))]  # fmt: skip
        ratio = (
            f"{peaks['forward+backward', 'actlib'] / peaks['forward+backward', 'native']:.2f}"
            if ("forward+backward", "native") in peaks
            else "—"
        )
        print(f"| {record.name} | {' | '.join(cells)} | {ratio} |", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2^20 elements, fewer repeats")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--only", nargs="*", default=[], help="activation names to run")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        help="thread counts to time with, one full run each (default: torch's own)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory table")
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory table")
    parser.add_argument("--csv", help="also write the medians to this CSV file")
    parser.add_argument("--measure-peak", nargs=4, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.measure_peak:
        name, variant, mode, log2 = args.measure_peak
        print(measure_peak(name, variant, mode, "cpu", int(log2)))
        return

    log2_elements = 20 if args.quick else 22
    repeats, warmup = (5, 1) if args.quick else (21, 3)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for threads in [] if args.memory_only else args.threads or [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        rows += time_all(args, devices, log2_elements, repeats, warmup)
    if not args.no_memory:
        for device in devices:
            rows += [[*row, ""] for row in memory_report(args.only, device, MEMORY_LOG2_ELEMENTS)]
    if args.csv:
        with open(args.csv, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["device", "mode", "activation", "variant", "milliseconds", "threads"])
            writer.writerows(rows)
        print(f"\nwrote {args.csv}")


def time_all(args, devices, log2_elements, repeats, warmup):
    """Time every case eagerly and compiled on every device; return CSV rows."""
    rows = []
    threads = torch.get_num_threads()
    print(
        f"\n## torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, {threads} threads, devices {devices}, "
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
        report(
            f"{device}, eager, forward + backward, {threads} threads",
            results,
            ["actlib", "native", "naive"],
        )
        rows += _csv_rows(device, "eager", results, threads)

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
            report(
                f"{device}, torch.compile, forward + backward, {threads} threads",
                results,
                ["actlib", "native"],
            )
            rows += _csv_rows(device, "compile", results, threads)
        for failure in failures:
            print(f"torch.compile failed for {failure}")
    return rows


def _csv_rows(device, mode, results, threads):
    return [
        [device, mode, name, variant, f"{seconds * 1e3:.3f}", threads]
        for name, medians in results.items()
        for variant, seconds in medians.items()
    ]


if __name__ == "__main__":
    main()
