"""Speed of actlib.HierarchicalSoftmax against the other ways to train a large output layer.

Measured side by side in one process, interleaved round by round so that a noisy machine
slows every method alike; each figure is the median of the rounds after a warm-up round:

* full softmax: ``nn.Linear(D, N)`` + ``F.cross_entropy``; predict = ``argmax`` of the logits;
* ``nn.AdaptiveLogSoftmaxWithLoss`` with cutoffs ``[N/32, N/4]`` (``[2048, 16384]`` at
  N = 65,536) and ``div_value=4``; predict = its ``predict``;
* a naive hierarchical softmax that loops over the batch in Python (log-space, one
  vectorised path per example; autograd then builds a full-size weight gradient for
  every example); timed on 64 examples and scaled to the batch, as its cost is linear;
  predict = greedy descent, one example and one node at a time (a common mistake:
  the loop is slow, and greedy descent is not even exact);
* ``HierarchicalSoftmax`` with dense and with sparse weight gradients; predict = exact
  ``predict`` on a trained model, plus greedy descent and an untrained model for reference.

A training step is ``zero_grad(set_to_none=True)``, forward and backward (no optimiser
step, except in the separate "+SGD" column). Peak memory is the largest total of tensor
bytes allocated during one forward + backward above what was allocated before it (with
no gradients held), from the torch profiler's memory events on the CPU
(``torch.cuda.max_memory_allocated`` on CUDA); parameters and inputs are not counted.

Two of the predict rows are best cases, and are labelled so in the CSV:

* the trained model for the exact hierarchical ``predict`` is trained on synthetic
  inputs built to match its tree (class c's centre is the sum of +-u_n over the nodes n
  on its path, with u_n random unit vectors, plus N(0, 1/D) noise per coordinate), by
  SGD with sparse gradients (lr 200 on the mean loss, batch 1,024); the CSV records the
  accuracy it reached. Exact search prunes well only when node decisions are confident,
  so the untrained row shows the other end: the search gives up and falls back to the
  dense log_prob;
* ``AdaptiveLogSoftmaxWithLoss.predict`` is timed on its untrained model, where most
  rows stop at the head; trained on uniformly spread targets most rows would need a
  tail cluster.

The CSV has one row per run, device, measurement (``train``: forward + backward;
``train+sgd``; ``predict``; ``backward``: the ablation of the custom backward), target
distribution, N and method, with the machine (``cpu``, ``torch``, ``threads``,
``capability``, ``gpu``, the load average at the start of the run) and every
interleaved sample (``samples_ms``, the same round in the same position for every
method of one table, so ratios can be taken round by round). ``--runs K`` repeats the
whole measurement K times in one invocation, for the run-to-run spread.

Usage::

    python benchmarks/hierarchical_softmax.py            # CPU, and CUDA when present
    python benchmarks/hierarchical_softmax.py --runs 3   # three runs, for the spread
    python benchmarks/hierarchical_softmax.py --threads 1  # one CPU thread (a shared machine)
    python benchmarks/hierarchical_softmax.py --quick    # fewer rounds, smaller sweep

Writes book/data/hierarchical_softmax.csv (the layout above), which
book/experiments/softmax_at_scale.ipynb reads for its figures and for every number in its
text; the file is rewritten after every run, so an interrupted ``--runs K`` keeps the runs
it finished. One run of the full sweep takes about 4 minutes on a quiet 2-core CPU (much
longer on a loaded one; the load average is recorded with every run).
"""

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actlib.hierarchical import HierarchicalSoftmax

IN_FEATURES = 256
BATCH = 1024
# The naive loop's cost is linear in the batch (one example after another, each
# backward materialising a full-size weight gradient), so it runs on NAIVE_BATCH
# examples and its time is scaled to BATCH; its peak memory is that of NAIVE_BATCH.
NAIVE_BATCH = 64
MAIN_N = 65_536
SWEEP = [1024, 4096, 16_384, 65_536, 262_144]
QUICK_SWEEP = [1024, 16_384, 65_536]
CSV_PATH = Path(__file__).resolve().parent.parent / "book" / "data" / "hierarchical_softmax.csv"
CSV_FIELDS = [
    "run",
    "device",
    "cpu",
    "gpu",
    "torch",
    "threads",
    "capability",
    "load_average",
    "measurement",
    "targets",
    "num_classes",
    "in_features",
    "batch_size",
    "method",
    "ms",
    "samples_ms",
    "peak_mem_mb",
    "trained_accuracy",
    "mean_path",
    "padded_path",
    "note",
]

FULL = "full softmax (Linear + CE)"
ADAPTIVE = "AdaptiveLogSoftmaxWithLoss"
NAIVE = "naive per-example loop"
HS_DENSE = "hierarchical, dense grad"
HS_SPARSE = "hierarchical, sparse grad"
HS_HUFFMAN = "hierarchical Huffman, sparse grad"
HS_EXACT = "hierarchical exact predict"
HS_GREEDY = "hierarchical greedy (inexact)"
HS_UNTRAINED = "hierarchical exact, untrained"
NAIVE_GREEDY = "naive loop greedy (inexact)"


# -- the baseline ------------------------------------------------------------------------


class NaiveLoopHierarchicalSoftmax:
    """Hierarchical softmax one example at a time: the per-example Python loop baseline.

    It shares the tree and parameters of a :class:`HierarchicalSoftmax` and sums
    log-sigmoids (so it is at least correct); only the loop over the batch is naive.
    """

    def __init__(self, module: HierarchicalSoftmax):
        self.module = module
        self.lengths = module.path_lengths.tolist()
        self.children = module.node_children.tolist()

    def loss(self, x: Tensor, target: Tensor) -> Tensor:
        m = self.module
        total = x.new_zeros(())
        for example, cls in zip(x, target.tolist(), strict=True):
            length = self.lengths[cls]
            nodes = m.path_nodes[cls, :length]
            signs = m.path_signs[cls, :length].to(x.dtype)
            scores = m.weight[nodes] @ example + m.bias[nodes]
            total = total - F.logsigmoid(signs * scores).sum()
        return total / len(target)

    @torch.no_grad()
    def predict_greedy(self, x: Tensor) -> Tensor:
        m = self.module
        num_internal = m.num_classes - 1
        predictions = []
        for example in x:
            node = 0
            while node < num_internal:
                score = m.weight[node] @ example + m.bias[node]
                node = self.children[node][0 if score.item() >= 0 else 1]
            predictions.append(node - num_internal)
        return torch.tensor(predictions)


# -- measuring ---------------------------------------------------------------------------


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_calls(fn: Callable[[], object], calls: int, device: str) -> float:
    """Milliseconds per call, over ``calls`` back-to-back calls."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return 1e3 * (time.perf_counter() - start) / calls


def time_interleaved(
    work: dict[str, Callable[[], object]],
    rounds: int,
    device: str,
    budget_s: float = 10.0,
    sample_ms: float = 50.0,
) -> dict[str, list[float]]:
    """Milliseconds per call, one sample per round and method (take the median).

    A warm-up call of each method (caches, allocator, lazy initialisation) also sets
    how many calls make one sample: enough to last ``sample_ms``, as timeit does, so
    that a fast method is not timed on single calls of a few milliseconds. Each round
    then takes one sample of every method, interleaved, so that a noisy machine slows
    all of them alike. A method whose samples have used ``budget_s`` sits out the
    remaining rounds (after at least one sample): that bounds the slow baselines.
    """
    calls = {}
    for name, fn in work.items():
        calls[name] = max(1, math.ceil(sample_ms / max(time_calls(fn, 1, device), 1e-3)))
    samples: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(rounds):
        for name, fn in work.items():
            if sum(samples[name]) * calls[name] < 1e3 * budget_s:
                samples[name].append(time_calls(fn, calls[name], device))
    return samples


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


@contextlib.contextmanager
def stderr_silenced():
    """Kineto prints a line to stderr at every profiler stop; keep the report clean."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_memory_mb(fn: Callable[[], object], device: str) -> float:
    """Peak tensor bytes allocated during one call, above those allocated before it."""
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    activities = [torch.profiler.ProfilerActivity.CPU]
    with tempfile.TemporaryDirectory() as folder, stderr_silenced():
        with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
            fn()
        trace = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    # Running sum of this session's allocation events. ("Total Allocated" would also
    # count blocks a previous profiling session saw allocated and nobody saw freed.)
    running, peak = 0, 0
    for event in events:
        if event.get("name") == "[memory]" and event["args"].get("Device Type") == 0:
            running += event["args"]["Bytes"]
            peak = max(peak, running)
    return peak / 2**20


# -- the contenders ----------------------------------------------------------------------


@dataclass
class Method:
    name: str
    module: nn.Module
    loss: Callable[[Tensor, Tensor], Tensor]

    def step(self, x: Tensor, target: Tensor) -> None:
        self.module.zero_grad(set_to_none=True)
        self.loss(x, target).backward()

    def profiled_step(self, x: Tensor, target: Tensor) -> Callable[[], None]:
        """Drop the gradients now, so that peak memory counts one step's tensors only."""
        self.module.zero_grad(set_to_none=True)
        return lambda: self.loss(x, target).backward()


def build_methods(num_classes: int, device: str) -> dict[str, Method]:
    torch.manual_seed(0)
    full = nn.Linear(IN_FEATURES, num_classes).to(device)
    cutoffs = [num_classes // 32, num_classes // 4]
    adaptive = nn.AdaptiveLogSoftmaxWithLoss(IN_FEATURES, num_classes, cutoffs, div_value=4.0)
    adaptive = adaptive.to(device)
    dense = HierarchicalSoftmax(IN_FEATURES, num_classes).to(device)
    sparse = HierarchicalSoftmax(IN_FEATURES, num_classes, sparse=True).to(device)
    naive = NaiveLoopHierarchicalSoftmax(dense)
    return {
        FULL: Method(FULL, full, lambda x, t: F.cross_entropy(full(x), t)),
        ADAPTIVE: Method(ADAPTIVE, adaptive, lambda x, t: adaptive(x, t).loss),
        NAIVE: Method(NAIVE, dense, lambda x, t: naive.loss(x[:NAIVE_BATCH], t[:NAIVE_BATCH])),
        HS_DENSE: Method(HS_DENSE, dense, lambda x, t: dense(x, t).loss),
        HS_SPARSE: Method(HS_SPARSE, sparse, lambda x, t: sparse(x, t).loss),
    }


def tree_clustered_batch(
    module: HierarchicalSoftmax, directions: Tensor, size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Inputs whose class structure follows the tree: centre = sum of +-u_n along the path."""
    target = torch.randint(0, module.num_classes, (size,), generator=generator)
    target = target.to(directions.device)
    signs = module.path_signs[target].to(directions.dtype)
    centres = F.embedding_bag(
        module.path_nodes[target], directions, per_sample_weights=signs, mode="sum"
    )
    noise = torch.randn(size, IN_FEATURES, generator=generator).to(directions.device)
    return centres + noise / math.sqrt(IN_FEATURES), target


def train_for_prediction(num_classes: int, steps: int, device: str):
    """A HierarchicalSoftmax trained on tree-clustered data, and a test batch of that data."""
    torch.manual_seed(1)
    generator = torch.Generator().manual_seed(1)
    module = HierarchicalSoftmax(IN_FEATURES, num_classes, sparse=True).to(device)
    directions = torch.randn(num_classes - 1, IN_FEATURES, generator=generator).to(device)
    directions = F.normalize(directions, dim=1)
    optimizer = torch.optim.SGD(module.parameters(), lr=200.0)
    for _ in range(steps):
        x, target = tree_clustered_batch(module, directions, BATCH, generator)
        optimizer.zero_grad(set_to_none=True)
        module(x, target).loss.backward()
        optimizer.step()
    x, target = tree_clustered_batch(module, directions, BATCH, generator)
    accuracy = (module.predict(x) == target).double().mean().item()
    return module, x, accuracy


# -- one configuration -------------------------------------------------------------------


def measure_num_classes(num_classes: int, device: str, rounds: int, train_steps: int, log):
    """Train-step and predict times and peak memory of every method at one N."""
    methods = build_methods(num_classes, device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, IN_FEATURES, generator=generator).to(device)
    target = torch.randint(0, num_classes, (BATCH,), generator=generator).to(device)

    log(f"  N={num_classes:,}: training steps ({rounds} rounds after a warm-up)")
    train = time_interleaved(
        {name: (lambda m=m: m.step(x, target)) for name, m in methods.items()}, rounds, device
    )
    train[NAIVE] = [ms * BATCH / NAIVE_BATCH for ms in train[NAIVE]]
    peak = {name: peak_memory_mb(m.profiled_step(x, target), device) for name, m in methods.items()}

    log(f"  N={num_classes:,}: training a model for predict ({train_steps} SGD steps)")
    trained, test_x, accuracy = train_for_prediction(num_classes, train_steps, device)
    log(f"  N={num_classes:,}: trained model accuracy {accuracy:.3f}")
    full, adaptive = methods[FULL].module, methods[ADAPTIVE].module
    untrained = methods[HS_DENSE].module
    naive = NaiveLoopHierarchicalSoftmax(untrained)
    with torch.no_grad():
        predict = time_interleaved(
            {
                FULL: lambda: full(test_x).argmax(-1),
                ADAPTIVE: lambda: adaptive.predict(test_x),
                NAIVE_GREEDY: lambda: naive.predict_greedy(test_x),
                HS_GREEDY: lambda: trained.predict_greedy(test_x),
                HS_EXACT: lambda: trained.predict(test_x),
                HS_UNTRAINED: lambda: untrained.predict(test_x),
            },
            rounds,
            device,
        )
        peak_predict = peak_memory_mb(lambda: trained.predict(test_x), device)
    return train, predict, peak, peak_predict, accuracy, methods, (x, target)


def measure_train_with_sgd(methods: dict[str, Method], batch, device: str, rounds: int):
    """Training step including an SGD update, for the contenders that matter at scale."""
    x, target = batch
    work = {}
    for name in (FULL, ADAPTIVE, HS_DENSE, HS_SPARSE):
        method = methods[name]
        optimizer = torch.optim.SGD(method.module.parameters(), lr=1e-3)

        def step(method=method, optimizer=optimizer):
            method.step(x, target)
            optimizer.step()

        work[name] = step
    return time_interleaved(work, rounds, device)


def autograd_gather_loss(module: HierarchicalSoftmax, sparse: bool):
    """The same loss with autograd doing the backward through an embedding gather."""

    def loss(x: Tensor, target: Tensor) -> Tensor:
        nodes, signs = module.path_nodes[target], module.path_signs[target].to(x.dtype)
        rows = F.embedding(nodes, module.weight, sparse=sparse)
        scores = torch.linalg.vecdot(rows, x.unsqueeze(1)) + module.bias[nodes]
        return -(F.logsigmoid(signs * scores) * (signs != 0)).sum(1).mean()

    return loss


def measure_backward_ablation(methods: dict[str, Method], batch, device: str, rounds: int):
    """Custom backward (index_add_ / sparse rows) against autograd through a gather, and
    sparse gradients added into a dense .grad kept between steps."""
    x, target = batch
    work = {}
    for label, name, sparse in (
        ("custom backward, dense grad", HS_DENSE, False),
        ("autograd through gather, dense", HS_DENSE, False),
        ("custom backward, sparse grad", HS_SPARSE, True),
        ("autograd through gather, sparse", HS_SPARSE, True),
    ):
        module = methods[name].module
        if label.startswith("autograd"):
            method = Method(label, module, autograd_gather_loss(module, sparse))
        else:
            method = methods[name]
        work[label] = lambda method=method: method.step(x, target)

    # Sparse gradients added in place into a dense .grad that is kept between steps
    # (zero_grad(set_to_none=False)): a dense .grad for optimisers such as Adam, without
    # allocating a fresh (N - 1) x D tensor every step.
    kept = methods[HS_SPARSE].module
    kept_grad = HierarchicalSoftmax(IN_FEATURES, kept.num_classes, sparse=True).to(device)
    kept_grad.load_state_dict(kept.state_dict())
    for parameter in kept_grad.parameters():
        parameter.grad = torch.zeros_like(parameter)

    def step_into_kept_grad():
        kept_grad.zero_grad(set_to_none=False)
        kept_grad(x, target).loss.backward()

    work["sparse grad into kept dense .grad"] = step_into_kept_grad
    return time_interleaved(work, rounds, device)


def measure_zipf(num_classes: int, device: str, rounds: int):
    """Training steps on Zipf-distributed targets, AdaptiveLogSoftmax's home ground."""
    generator = torch.Generator().manual_seed(0)
    frequency = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float64)
    x = torch.randn(BATCH, IN_FEATURES, generator=generator).to(device)
    target = torch.multinomial(frequency, BATCH, replacement=True, generator=generator)
    target = target.to(device)
    methods = build_methods(num_classes, device)
    huffman = HierarchicalSoftmax(IN_FEATURES, num_classes, counts=frequency, sparse=True)
    methods[HS_HUFFMAN] = Method(HS_HUFFMAN, huffman.to(device), lambda x, t: huffman(x, t).loss)
    chosen = (ADAPTIVE, HS_SPARSE, HS_HUFFMAN)
    samples = time_interleaved(
        {name: (lambda m=methods[name]: m.step(x, target)) for name in chosen}, rounds, device
    )
    # Both trees pad every path to their longest one: the (B, L) layout does L steps of
    # work per example however short its own path is.
    paths = {
        name: (
            methods[name].module.path_lengths[target].double().mean().item(),
            methods[name].module.path_nodes.shape[1],
        )
        for name in (HS_SPARSE, HS_HUFFMAN)
    }
    return samples, paths


# -- reporting ---------------------------------------------------------------------------


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:8.1f}x"


def print_main_tables(train, with_sgd, predict, peak, peak_predict, accuracy, header):
    print(f"\n{header}")
    print(
        f"{'training step (fwd + bwd)':34} {'ms':>9} {'÷ sparse':>9} {'÷ dense':>9}"
        f" {'+SGD ms':>9} {'peak MB':>9}"
    )
    for name in (FULL, ADAPTIVE, NAIVE, HS_DENSE, HS_SPARSE):
        sgd = f"{with_sgd[name]:9.1f}" if name in with_sgd else f"{'-':>9}"
        print(
            f"{name:34} {train[name]:9.1f} {ratio(train[name], train[HS_SPARSE])}"
            f" {ratio(train[name], train[HS_DENSE])} {sgd} {peak[name]:9.1f}"
        )
    scale = BATCH // NAIVE_BATCH
    print(f"(naive loop: timed on {NAIVE_BATCH} examples x {scale}; peak MB of {NAIVE_BATCH})")
    print(
        f"\n{'predict (trained acc ' + format(accuracy, '.3f') + ')':34} {'ms':>9} {'÷ exact':>9}"
    )
    for name in (FULL, ADAPTIVE, NAIVE_GREEDY, HS_GREEDY, HS_EXACT, HS_UNTRAINED):
        print(f"{name:34} {predict[name]:9.1f} {ratio(predict[name], predict[HS_EXACT])}")
    print(f"peak memory of exact predict: {peak_predict:.1f} MB")


def print_sweep(results: dict[int, tuple]):
    print(
        "\nSweep over N (D = 256, B = 1,024): ms, and how many times slower than"
        " hierarchical (sparse grad) / exact predict"
    )
    print(
        f"{'N':>8} {'HS sparse':>10} {'HS dense':>10} {'full':>18} {'adaptive':>18}"
        f" {'naive':>18} | {'HS predict':>10} {'full argmax':>18} {'adaptive':>18}"
    )
    for n, (train, predict, *_rest) in sorted(results.items()):
        base, pbase = train[HS_SPARSE], predict[HS_EXACT]
        cells = [
            f"{train[name]:8.1f}{ratio(train[name], base):>10}" for name in (FULL, ADAPTIVE, NAIVE)
        ]
        pcells = [
            f"{predict[name]:8.1f}{ratio(predict[name], pbase):>10}" for name in (FULL, ADAPTIVE)
        ]
        print(
            f"{n:8d} {base:10.1f} {train[HS_DENSE]:10.1f} {' '.join(cells)} |"
            f" {pbase:10.1f} {' '.join(pcells)}"
        )


def print_targets(train, predict, with_sgd):
    def check(label, value, goal):
        print(
            f"  {label:58} {value:7.1f}x  (target >= {goal}x: {'met' if value >= goal else 'NOT met'})"
        )

    print(f"\nTargets at N = {MAIN_N:,}, D = {IN_FEATURES}, B = {BATCH:,}:")
    check("train step vs full softmax, sparse grad", train[FULL] / train[HS_SPARSE], 60)
    check("train step vs full softmax, dense grad", train[FULL] / train[HS_DENSE], 60)
    check(
        "train step vs AdaptiveLogSoftmaxWithLoss, sparse grad",
        train[ADAPTIVE] / train[HS_SPARSE],
        20,
    )
    check(
        "train step vs AdaptiveLogSoftmaxWithLoss, dense grad",
        train[ADAPTIVE] / train[HS_DENSE],
        20,
    )
    check(
        "train step + SGD update vs full softmax, sparse grad",
        with_sgd[FULL] / with_sgd[HS_SPARSE],
        60,
    )
    check(
        "train step + SGD update vs adaptive, sparse grad",
        with_sgd[ADAPTIVE] / with_sgd[HS_SPARSE],
        20,
    )
    check("exact predict (trained) vs full softmax argmax", predict[FULL] / predict[HS_EXACT], 5)


PREDICT_NOTES = {
    ADAPTIVE: "best case: untrained model, most rows stop at the head",
    HS_EXACT: "best case: trained on synthetic inputs built to match the tree",
    HS_GREEDY: "inexact; the trained model of the exact predict",
    HS_UNTRAINED: "untrained model: the search falls back to the dense log_prob",
    NAIVE_GREEDY: "inexact; one example and one node at a time",
}


def machine(device: str) -> dict[str, object]:
    """What the timings depend on, for every row of the CSV."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "gpu": torch.cuda.get_device_name() if device == "cuda" else "",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "capability": torch.backends.cpu.get_cpu_capability(),
    }


def row(common, measurement, targets, n, name, samples, **extra):
    return {
        **common,
        "measurement": measurement,
        "targets": targets,
        "num_classes": n,
        "in_features": IN_FEATURES,
        "batch_size": BATCH,
        "method": name,
        "ms": round(statistics.median(samples), 3),
        "samples_ms": " ".join(f"{ms:.3f}" for ms in samples),
        **extra,
    }


def csv_rows(common, results, with_sgd, zipf, paths, ablation):
    rows = []
    for n, (train, predict, peak, peak_predict, accuracy, *_rest) in sorted(results.items()):
        for name, samples in train.items():
            note = f"timed on {NAIVE_BATCH} examples, scaled to {BATCH}" if name == NAIVE else ""
            rows.append(
                row(common, "train", "uniform", n, name, samples,
                    peak_mem_mb=round(peak[name], 2), note=note)
            )  # fmt: skip
        for name, samples in predict.items():
            extra = {"note": PREDICT_NOTES.get(name, "")}
            if name in (HS_EXACT, HS_GREEDY):
                extra["trained_accuracy"] = round(accuracy, 4)
            if name == HS_EXACT:
                extra["peak_mem_mb"] = round(peak_predict, 2)
            rows.append(row(common, "predict", "uniform", n, name, samples, **extra))
    for name, samples in with_sgd.items():
        rows.append(row(common, "train+sgd", "uniform", MAIN_N, name, samples))
    for name, samples in zipf.items():
        mean_path, padded = paths.get(name, ("", ""))
        extra = {"mean_path": round(mean_path, 3), "padded_path": padded} if padded else {}
        rows.append(row(common, "train", "zipf", MAIN_N, name, samples, **extra))
    for name, samples in ablation.items():
        rows.append(row(common, "backward", "uniform", MAIN_N, name, samples))
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def report(device, results, with_sgd, zipf, paths, ablation):
    """The tables of one run and device, from the medians of its rounds."""
    train, predict, peak, peak_predict, accuracy, *_rest = results[MAIN_N]
    train, predict, with_sgd = medians(train), medians(predict), medians(with_sgd)
    zipf, ablation = medians(zipf), medians(ablation)
    where = device if device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print_main_tables(
        train,
        with_sgd,
        predict,
        peak,
        peak_predict,
        accuracy,
        f"N = {MAIN_N:,}, D = {IN_FEATURES}, B = {BATCH:,}, float32, {where}",
    )
    print_sweep({n: (medians(r[0]), medians(r[1])) for n, r in results.items()})
    print(f"\nZipf(1) targets, N = {MAIN_N:,}: training step ms")
    for name, value in zipf.items():
        path = paths.get(name)
        shape = f"  mean path {path[0]:.1f}, padded to {path[1]}" if path else ""
        print(f"  {name:34} {value:9.1f} {ratio(value, zipf[HS_SPARSE])}{shape}")
    print(f"\nBackward pass, N = {MAIN_N:,}: training step ms")
    for name, value in ablation.items():
        print(f"  {name:34} {value:9.1f}")
    print_targets(train, predict, with_sgd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sweep")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        action="append",
        help="device(s) to measure (default: cpu, and cuda when present)",
    )
    parser.add_argument("--csv", type=Path, default=CSV_PATH, help="where to write the CSV")
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat the whole measurement (run-to-run spread)"
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's own choice)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    sweep = QUICK_SWEEP if args.quick else SWEEP
    rounds, main_rounds = (2, 3) if args.quick else (3, 7)
    train_steps = 150 if args.quick else 400

    def log(message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    started = time.perf_counter()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    rows = []
    for run in range(args.runs):
        for device in devices:
            log(f"run {run + 1} of {args.runs}, device {device}")
            common = {"run": run, "device": device, **machine(device)}
            common["load_average"] = f"{os.getloadavg()[0]:.2f}"
            results = {}
            for n in sweep:
                results[n] = measure_num_classes(
                    n, device, main_rounds if n == MAIN_N else rounds, train_steps, log
                )
            *_main, methods, batch = results[MAIN_N]
            log(f"  N={MAIN_N:,}: training steps with an SGD update")
            with_sgd = measure_train_with_sgd(methods, batch, device, main_rounds)
            log(f"  N={MAIN_N:,}: Zipf-distributed targets")
            zipf, paths = measure_zipf(MAIN_N, device, main_rounds)
            log(f"  N={MAIN_N:,}: custom backward against autograd")
            ablation = measure_backward_ablation(methods, batch, device, main_rounds)
            report(device, results, with_sgd, zipf, paths, ablation)
            rows += csv_rows(common, results, with_sgd, zipf, paths, ablation)
        write_csv(args.csv, rows)  # after every run: an interrupted --runs K keeps the rest
        log(f"wrote {len(rows)} rows to {args.csv}")

    print(
        f"\nwrote {args.csv}; {time.perf_counter() - started:.0f} s in all; "
        f"load average at end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
