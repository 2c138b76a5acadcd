"""Output layers under DistributedDataParallel: 2 gloo ranks on 127.0.0.1 against one process.

Each case is a small model, ``nn.Linear`` followed by an output layer, trained for a few
SGD steps. The two ranks take the two halves of every batch; DDP averages their
gradients, and the output layers' loss is the mean over the examples, so the ranks must
end with the parameters of a single process that trains on the whole batch, to 1e-9 in
float64, with dense and with sparse gradients. No rank may see DDP's warning that a
gradient's strides do not match its bucket (a gradient laid out unlike its parameter);
a control case with such a gradient shows that the warning, when there is one, is caught.

All cases run in one pair of spawned processes (starting them dominates the run time),
each rank writing what it ended with to a file that the tests read. A rank that hangs
fails the tests after ``_TIMEOUT_S`` instead of hanging the run.

To add a layer: append a ``Case`` to ``CASES`` with a builder ``build(sparse)`` and a
``loss(layer, x, target, rows, step)`` that returns the layer's mean loss over the rows
``rows`` of the step's batch. Whatever the layer samples must come from the step and the
whole batch (e.g. drawn with ``torch.Generator().manual_seed(step)`` for the whole batch,
then sliced with ``rows``), so that both ranks and the single process use the same draws.
"""

import datetime
import os
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from actlib.hierarchical import HierarchicalSoftmax
from actlib.sampled import NegativeSampling, SampledSoftmax

WORLD_SIZE = 2
IN_FEATURES, HIDDEN, NUM_CLASSES = 6, 8, 37  # 37: the balanced tree is not complete
BATCH, STEPS, LR = 16, 4, 0.5
STRIDE_WARNING = "Grad strides do not match bucket view strides"
_TIMEOUT_S = 120  # the whole spawn; a collective that waits gives up after half of it
_PARAMETER_SEED = 0


def _zipf_counts(num_classes: int) -> Tensor:
    return (1e6 / torch.arange(1, num_classes + 1)).round()


def _batch(step: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The whole batch of ``step``, from a data stream of its own."""
    generator = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(BATCH, IN_FEATURES, generator=generator, dtype=dtype)
    return x, torch.randint(0, NUM_CLASSES, (BATCH,), generator=generator)


def _plain_loss(layer, x, target, rows, step):
    return layer(x, target).loss


def _negative_sampling_loss(layer, x, target, rows, step):
    negatives = layer.sample((BATCH, 5), generator=torch.Generator().manual_seed(step))
    return layer(x, target, negatives=negatives[rows]).loss


def _sampled_softmax_loss(layer, x, target, rows, step):
    # One candidate set for the whole batch: the same on both ranks.
    samples = layer.sample(generator=torch.Generator().manual_seed(step))
    return layer(x, target, samples=samples).loss


class _ScaleWithBroadcastGradient(nn.Module):
    """Control: a (1, 1) parameter whose .grad is a zero-stride tensor (set before the
    first step and kept by zero_grad(set_to_none=False)), which DDP warns about."""

    def __init__(self, sparse: bool) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, 1))
        self.readout = nn.Linear(HIDDEN, 1)

    def forward(self, x, target):
        return ((self.readout(x) * self.scale).squeeze(1) - target).pow(2).mean()


def _control_loss(layer, x, target, rows, step):
    if step == 0:
        layer.scale.grad = torch.zeros((), dtype=layer.scale.dtype).expand(1, 1)
    return layer(x, target.to(x.dtype) / NUM_CLASSES)


class Case(NamedTuple):
    name: str
    build: Callable[[bool], nn.Module]  # sparse -> the output layer
    loss: Callable  # (layer, x, target, rows, step) -> mean loss over the given rows
    sparse_options: tuple[bool, ...] = (False, True)
    expect_stride_warning: bool = False


CASES = [
    Case(
        "hierarchical_balanced",
        lambda sparse: HierarchicalSoftmax(HIDDEN, NUM_CLASSES, sparse=sparse),
        _plain_loss,
    ),
    Case(
        "hierarchical_huffman",
        lambda sparse: HierarchicalSoftmax(
            HIDDEN, NUM_CLASSES, counts=_zipf_counts(NUM_CLASSES), sparse=sparse
        ),
        _plain_loss,
    ),
    Case(
        "negative_sampling",
        lambda sparse: NegativeSampling(
            HIDDEN, NUM_CLASSES, _zipf_counts(NUM_CLASSES), num_negatives=5, sparse=sparse
        ),
        _negative_sampling_loss,
    ),
    Case(
        "sampled_softmax",
        lambda sparse: SampledSoftmax(
            HIDDEN, NUM_CLASSES, _zipf_counts(NUM_CLASSES), num_samples=10, sparse=sparse
        ),
        _sampled_softmax_loss,
    ),
    # Last: DDP gives its stride warning once per process.
    Case("control_broadcast_grad", _ScaleWithBroadcastGradient, _control_loss, (False,), True),
]
# float64 for the comparison to 1e-9; float32 with dense gradients for the stride warning.
RUNS = [
    (case.name, sparse, dtype)
    for case in CASES
    for dtype in (torch.float64, torch.float32)
    for sparse in case.sparse_options
    if dtype == torch.float64 or not (sparse or case.expect_stride_warning)
]
_BY_NAME = {case.name: case for case in CASES}


class _Model(nn.Module):
    def __init__(self, case: Case, sparse: bool, dtype: torch.dtype) -> None:
        super().__init__()
        torch.manual_seed(_PARAMETER_SEED)
        self.body = nn.Linear(IN_FEATURES, HIDDEN)
        self.head = case.build(sparse)
        self.to(dtype)
        self.case = case

    def forward(self, x, target, rows, step):
        return self.case.loss(self.head, torch.tanh(self.body(x)), target, rows, step)


def _train(model: nn.Module, step_loss: Callable[[int], Tensor]) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)  # takes sparse gradients
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=False)
        step_loss(step).backward()
        optimizer.step()


def _final_state(model: nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _single_process(name: str, sparse: bool, dtype: torch.dtype) -> dict[str, Tensor]:
    model = _Model(_BY_NAME[name], sparse, dtype)
    everything = slice(0, BATCH)

    def step_loss(step):
        x, target = _batch(step, dtype)
        return model(x, target, everything, step)

    _train(model, step_loss)
    return _final_state(model)


def _rank(rank: int, port: int, out_dir: str) -> None:
    """One rank: every run in turn, then its parameters and warnings to a file."""
    torch.set_num_threads(1)
    if sys.platform.startswith("linux") and os.path.exists("/sys/class/net/lo"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo's pairs on the loopback
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=_TIMEOUT_S // 2),
    )
    half = BATCH // WORLD_SIZE
    rows = slice(rank * half, (rank + 1) * half)
    results = {}
    try:
        for name, sparse, dtype in RUNS:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    model = _Model(_BY_NAME[name], sparse, dtype)
                    ddp = nn.parallel.DistributedDataParallel(model)

                    def step_loss(step, ddp=ddp, dtype=dtype):
                        x, target = _batch(step, dtype)
                        return ddp(x[rows], target[rows], rows, step)

                    _train(ddp, step_loss)
                except Exception:
                    # Recorded for this run's test; a failure before any collective (as
                    # a sparse gradient DDP does not expect) hits both ranks alike, so
                    # the next run still lines up. If not, the collective timeout ends it.
                    error = traceback.format_exc()
                    results[name, sparse, dtype] = {
                        "error": error,
                        "warnings": [str(w.message) for w in caught],
                    }
                    continue
            results[name, sparse, dtype] = {
                "parameters": _final_state(model),
                "grad_layouts": {n: p.grad.layout for n, p in model.named_parameters()},
                "warnings": [str(w.message) for w in caught],
            }
    finally:
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Start the two ranks once for all runs; what each rank ended with, by run."""
    out_dir = str(tmp_path_factory.mktemp("ddp"))
    context = mp.start_processes(
        _rank, args=(_free_port(), out_dir), nprocs=WORLD_SIZE, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + _TIMEOUT_S
    while not context.join(timeout=1):  # raises if a rank raised
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the DDP ranks did not finish within {_TIMEOUT_S} s")
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(WORLD_SIZE)]


def _run_id(run):
    name, sparse, dtype = run
    return f"{name}-{'sparse' if sparse else 'dense'}-{str(dtype).removeprefix('torch.')}"


@pytest.mark.filterwarnings("ignore:grad and param do not obey the gradient layout contract")
@pytest.mark.parametrize("run", RUNS, ids=[_run_id(run) for run in RUNS])
def test_ddp_over_halves_equals_one_process_over_the_batch(ranks, run):
    name, sparse, dtype = run
    expected = _single_process(name, sparse, dtype)
    tolerance = 1e-9 if dtype == torch.float64 else 1e-5
    for rank, results in enumerate(ranks):
        result = results[run]
        assert "error" not in result, f"rank {rank} failed:\n{result}"
        assert set(result["parameters"]) == set(expected)
        for parameter, value in result["parameters"].items():
            assert value.layout == torch.strided
            difference = (value - expected[parameter]).abs().max().item()
            assert difference <= tolerance, (rank, parameter, difference)
        # The output layer's gradients were sparse through DDP when asked for, and only then.
        for parameter, layout in result["grad_layouts"].items():
            in_head = parameter.startswith("head.") and name != "control_broadcast_grad"
            sparse_expected = sparse and in_head
            assert layout == (torch.sparse_coo if sparse_expected else torch.strided), parameter
        stride_warnings = [w for w in result["warnings"] if STRIDE_WARNING in w]
        if _BY_NAME[name].expect_stride_warning:
            # The control: shows that the ranks do catch the warning and send it back.
            assert stride_warnings, (rank, result["warnings"])
        else:
            assert not stride_warnings, (rank, stride_warnings)


def test_every_case_trains_something(ranks):
    """The comparison is not vacuous: SGD moved every parameter away from its start."""
    for name, sparse, dtype in RUNS:
        start = _final_state(_Model(_BY_NAME[name], sparse, dtype))
        moved = ranks[0][name, sparse, dtype].get("parameters", {})
        for parameter, value in moved.items():
            assert (value - start[parameter]).abs().max() > 1e-4, (name, sparse, parameter)
