"""A training step over N = 1,048,576 classes: the large-output layers side by side.

At D = 256 and a batch of B = 1,024 (targets drawn from a Zipf law over the classes,
p(c) ∝ 1/(c + 1), which also gives the Huffman tree its counts and the sampled layers their
proposal), one training step, ``zero_grad(set_to_none=True)`` + forward + backward (no
optimiser step), is timed for

* ``HierarchicalSoftmax`` over the balanced and over the Huffman tree, sparse gradients;
* ``NegativeSampling`` (K = 5 negatives per example, unigram^0.75), sparse gradients;
* ``SampledSoftmax`` (S = 8,192 shared samples, log-Q correction), sparse gradients;
* ``nn.AdaptiveLogSoftmaxWithLoss`` with cutoffs ``[N/32, N/4]`` and ``div_value=4``;
* the full softmax ``nn.Linear(D, N)`` + ``F.cross_entropy``, only where it fits: its step
  holds the weight and its gradient (2·N·D floats) and the logits, their softmax and their
  gradient (about 3·B·N floats), 15 GB in float32 here. The script measures it when the
  machine has twice that available (``MemAvailable``; a step that swaps would time the disk)
  and otherwise prints what it needs.

Timing and memory as in ``benchmarks/hierarchical_softmax.py`` (whose helpers this script
imports): rounds interleaved across the methods so a noisy machine slows all alike, the
median over the rounds after a warm-up call, and the peak of tensor bytes allocated during one
step from the profiler's memory events. Ratios are against the adaptive softmax, the peer
that ships with PyTorch, measured in the same run.

Usage (from the repository root)::

    python benchmarks/large_output_scale.py            # about 3 minutes on a 2-core CPU
    python benchmarks/large_output_scale.py --threads 1 --rounds 5

Writes ``benchmarks/large_output_scale.csv`` (one row per method, with every round's time).
"""

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hierarchical_softmax import machine, peak_memory_mb, time_interleaved  # noqa: E402

import actlib  # noqa: E402

NUM_CLASSES, IN_FEATURES, BATCH = 2**20, 256, 1024
NEGATIVES, SAMPLES = 5, 8192
CSV_PATH = Path(__file__).resolve().parent / "large_output_scale.csv"
ADAPTIVE = "AdaptiveLogSoftmaxWithLoss"
FULL = "full softmax (Linear + CE)"


def full_softmax_bytes(num_classes: int, in_features: int, batch: int) -> int:
    """float32 bytes of one full-softmax step: weight + its gradient, logits, softmax, their gradient."""
    return 4 * (2 * num_classes * in_features + 3 * batch * num_classes)


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def build(zipf: torch.Tensor, with_full: bool) -> dict[str, tuple[nn.Module, object]]:
    """Each method as (module, loss(x, target)); one generator per sampled layer."""
    torch.manual_seed(0)
    n, d = NUM_CLASSES, IN_FEATURES
    balanced = actlib.HierarchicalSoftmax(d, n, sparse=True)
    huffman = actlib.HierarchicalSoftmax(d, n, counts=zipf, sparse=True)
    negative = actlib.NegativeSampling(d, n, zipf, num_negatives=NEGATIVES, sparse=True)
    sampled = actlib.SampledSoftmax(d, n, zipf, num_samples=SAMPLES, sparse=True)
    adaptive = nn.AdaptiveLogSoftmaxWithLoss(d, n, [n // 32, n // 4], div_value=4.0)
    draws = torch.Generator().manual_seed(1)
    methods = {
        "hierarchical balanced, sparse": (balanced, lambda x, t: balanced(x, t).loss),
        "hierarchical Huffman, sparse": (huffman, lambda x, t: huffman(x, t).loss),
        f"negative sampling K={NEGATIVES}, sparse": (
            negative, lambda x, t: negative(x, t, generator=draws).loss),
        f"sampled softmax S={SAMPLES}, sparse": (
            sampled, lambda x, t: sampled(x, t, generator=draws).loss),
        ADAPTIVE: (adaptive, lambda x, t: adaptive(x, t).loss),
    }  # fmt: skip
    if with_full:
        full = nn.Linear(d, n)
        methods[FULL] = (full, lambda x, t: F.cross_entropy(full(x), t))
    return methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--csv", type=Path, default=CSV_PATH, help="where to write the CSV")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine("cpu")
    load = os.getloadavg()[0]
    print(f"torch {info['torch']}, CPU capability {info['capability']}, {info['threads']} threads, "
          f"{info['cpu']}, load average {load:.2f}")  # fmt: skip
    print(f"N = {NUM_CLASSES:,}, D = {IN_FEATURES}, B = {BATCH:,}, float32, Zipf targets")

    needed, available = full_softmax_bytes(NUM_CLASSES, IN_FEATURES, BATCH), available_bytes()
    with_full = available >= 2 * needed
    if not with_full:
        print(f"full softmax not measured: one step needs about {needed / 1e9:.1f} GB "
              f"(weight and gradient {8 * NUM_CLASSES * IN_FEATURES / 1e9:.1f} GB, logits, softmax "
              f"and their gradient {12 * BATCH * NUM_CLASSES / 1e9:.1f} GB); "
              f"{available / 1e9:.1f} GB available")  # fmt: skip

    zipf = 1.0 / torch.arange(1, NUM_CLASSES + 1, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, IN_FEATURES, generator=generator)
    target = torch.multinomial(zipf, BATCH, replacement=True, generator=generator)
    start = time.perf_counter()
    methods = build(zipf, with_full)
    print(f"[{time.perf_counter() - start:5.1f} s] built the layers")

    def step(module, loss):
        def run():
            module.zero_grad(set_to_none=True)
            loss(x, target).backward()
        return run

    work = {name: step(module, loss) for name, (module, loss) in methods.items()}
    samples = time_interleaved(work, args.rounds, "cpu", budget_s=60.0)
    print(f"[{time.perf_counter() - start:5.1f} s] timed {args.rounds} interleaved rounds")
    peaks = {}
    for name, (module, loss) in methods.items():
        module.zero_grad(set_to_none=True)
        peaks[name] = peak_memory_mb(lambda m=module, f=loss: f(x, target).backward(), "cpu")
    print(f"[{time.perf_counter() - start:5.1f} s] measured peak memory\n")

    peer = statistics.median(samples[ADAPTIVE])
    print(f"| method | step ms (median of {args.rounds}) | × adaptive softmax | peak MB |")
    print("|---|---:|---:|---:|")
    rows = []
    for name, values in samples.items():
        ms = statistics.median(values)
        print(f"| {name} | {ms:.1f} | {ms / peer:.3f} | {peaks[name]:.0f} |")
        rows.append({"method": name, "ms": round(ms, 3), "ratio_to_adaptive": round(ms / peer, 4),
                     "peak_mem_mb": round(peaks[name], 1),
                     "samples_ms": " ".join(f"{v:.3f}" for v in values),
                     "num_classes": NUM_CLASSES, "in_features": IN_FEATURES, "batch_size": BATCH,
                     "load_average": round(load, 2), **info})  # fmt: skip
    with args.csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {args.csv}")


if __name__ == "__main__":
    main()
