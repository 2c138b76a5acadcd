r"""Make book/data/hard_activations_cost.csv: the cost of the hard activations against the smooth ones.

For ReLU (the baseline), ReLU6, hardtanh, hardsigmoid, hardswish, σ, tanh, SiLU and GELU
(exact erf form), both actlib's function and torch's own op (``torch.relu``,
``F.relu6``, ``F.hardtanh``, ``F.hardsigmoid``, ``F.hardswish``, ``torch.sigmoid``,
``torch.tanh``, ``F.silu``, ``F.gelu``), time on one float32 tensor of 2^20 elements on
the CPU

* **forward**: ``f(x)`` under ``torch.no_grad``;
* **forward + backward**: ``y = f(x); torch.autograd.grad(y, x, g)``;

eagerly and under ``torch.compile`` (inductor, ``dynamic=False``, one shape; the
recompile limit is raised so that no compiled variant silently falls back to eager, and the
script checks that nothing is compiled after the warm-up). One timing is the mean over
``CALLS`` calls; for each pass, in each of ``BLOCKS`` blocks every variant, eager and
compiled, is timed ``REPEATS`` times, interleaved (actlib, torch, actlib, …, over all
activations and both modes), and the block's median is written. So a row is one block's
median, every ratio is between timings taken in the same block, interleaved, and the
spread over blocks shows the machine noise.

Columns: ``block``, ``mode`` (eager | compiled), ``pass`` (forward | forward+backward),
``activation``, ``variant`` (actlib | torch), ``microseconds`` (median time of one call),
``vs_torch_same_op`` (this time / torch's op of the same activation, same block and
mode), ``vs_torch_relu`` (this time / ``torch.relu`` in the same block, mode and pass),
``vs_eager_torch_relu`` (this time / eager ``torch.relu`` in the same block and pass),
and, on every row, ``torch``, ``cpu_capability`` (``torch.backends.cpu.get_cpu_capability()``)
and ``threads``.

One thread (``THREADS``): in a trial run with two threads on a busy 2-core machine the
medians of the same op spread over a factor of up to 1000 between blocks, most likely because
the two threads of one call waited for each other's core; one thread removes that, not the
sharing of the core.

What it does **not** measure: integer or fixed-point arithmetic, quantised kernels, GPUs
or accelerators without a fast ``exp``; all of it is float32 on a CPU.

    nice .venv/bin/python book/data/make_hard_activations_cost.py

Run time on a shared 2-core CPU: 3 minutes (172 s, of which 30 s warm-up) with inductor's
compile cache warm; compiling from a cold cache adds several minutes (the 36 compilations
took about 6 minutes there, most of it waiting for the busy cores).

The notebook book/modern/hard_activations.ipynb reads the CSV and prints only ratios
from it.
"""

import csv
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import actlib

OUT = Path(__file__).with_name("hard_activations_cost.csv")
N = 2**20
BLOCKS, REPEATS, CALLS, WARMUP = 5, 11, 10, 3
THREADS = 1

ACTIVATIONS = {
    "relu": (actlib.relu, torch.relu),
    "relu6": (actlib.relu6, F.relu6),
    "hardtanh": (actlib.hardtanh, F.hardtanh),
    "hardsigmoid": (actlib.hardsigmoid, F.hardsigmoid),
    "hardswish": (actlib.hardswish, F.hardswish),
    "sigmoid": (actlib.sigmoid, torch.sigmoid),
    "tanh": (actlib.tanh, torch.tanh),
    "silu": (actlib.silu, F.silu),
    "gelu": (actlib.gelu, F.gelu),
}


def forward_step(fn):
    def step(x, g):
        with torch.no_grad():
            return fn(x)

    return step


def backward_step(fn):
    def step(x, g):
        return torch.autograd.grad(fn(x), x, g)[0]

    return step


def raise_recompile_limit():
    # torch.compile of a builtin (torch.relu, torch.sigmoid …) wraps it in one shared helper
    # function, whose cache holds 8 compiled versions by default; beyond that dynamo would
    # silently run the rest eagerly.
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, 64)


def make_steps(passname):
    """{(mode, activation, variant): callable(x, g)} for one pass, eager and compiled."""
    steps = {}
    for mode in ("eager", "compiled"):
        for name, (ours, theirs) in ACTIVATIONS.items():
            for variant, fn in (("actlib", ours), ("torch", theirs)):
                if mode == "compiled":
                    fn = torch.compile(fn, dynamic=False)
                steps[mode, name, variant] = (
                    forward_step if passname == "forward" else backward_step)(fn)
    return steps


def time_one(step, x, g):
    start = time.perf_counter()
    for _ in range(CALLS):
        step(x, g)
    return (time.perf_counter() - start) / CALLS


def main():
    raise_recompile_limit()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    x = torch.randn(N) * 3
    g = torch.randn(N)
    x_grad = x.clone().requires_grad_()
    header = {
        "torch": torch.__version__.split("+")[0],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }
    print(header, file=sys.stderr)
    rows = []
    begin = time.perf_counter()
    for passname in ("forward", "forward+backward"):
        steps = make_steps(passname)
        inp = x if passname == "forward" else x_grad
        for step in steps.values():  # warm-up, and compilation
            for _ in range(WARMUP):
                step(inp, g)
        compiled = dict(torch._dynamo.utils.counters["stats"])
        print(f"{passname}: ready after {time.perf_counter() - begin:.0f} s, {compiled}",
              file=sys.stderr, flush=True)
        for block in range(BLOCKS):
            times = {key: [] for key in steps}
            for _ in range(REPEATS):
                for key, step in steps.items():
                    times[key].append(time_one(step, inp, g))
            median = {key: statistics.median(t) for key, t in times.items()}
            for (mode, name, variant), t in median.items():
                rows.append({
                    "block": block, "mode": mode, "pass": passname,
                    "activation": name, "variant": variant,
                    "microseconds": f"{t * 1e6:.1f}",
                    "vs_torch_same_op": f"{t / median[mode, name, 'torch']:.4f}",
                    "vs_torch_relu": f"{t / median[mode, 'relu', 'torch']:.4f}",
                    "vs_eager_torch_relu": f"{t / median['eager', 'relu', 'torch']:.4f}",
                    **header,
                })
        # no variant may have been recompiled (or fallen back) while it was timed
        after = dict(torch._dynamo.utils.counters["stats"])
        print(f"{passname}: nothing compiled while timing: {after == compiled}",
              file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r["mode"] != "eager", r["pass"], r["block"]))
    with OUT.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {OUT} in {time.perf_counter() - begin:.0f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
