"""Shared fixtures for the actlib tests: devices, dtypes, catalog parametrisation, inputs.

Every test over activations is parametrised from ``actlib.catalog.CATALOG``, so a new
record (one Function + one record) is picked up by all of them without touching a test.
"""

import pytest
import torch

from actlib.catalog import CATALOG, maxout_reference

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# CUDA params are always generated and skipped with a reason when there is no GPU, so the
# report shows them as skipped rather than silently absent.
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "catalog(*kinds): parametrise the test's `record` (and `example`) arguments over the "
        "actlib.catalog.CATALOG records of these kinds (all kinds when none given)",
    )


def pytest_generate_tests(metafunc):
    """Parametrise ``record``/``example`` from the catalog and ``dtype`` over DTYPES.

    A test asks for ``record`` (every record) or ``record, example`` (every example of
    every record), narrowed with ``@pytest.mark.catalog("elementwise", ...)``; tests
    taking ``dtype`` run in float16, bfloat16, float32 and float64 unless they parametrise
    ``dtype`` themselves.
    """
    names = metafunc.fixturenames
    if "record" in names:
        marker = metafunc.definition.get_closest_marker("catalog")
        kinds = marker.args if marker else ()
        chosen = [r for r in CATALOG.values() if not kinds or r.kind in kinds]
        if "example" in names:
            metafunc.parametrize(
                ("record", "example"),
                [(r, e) for r in chosen for e in r.examples],
                ids=[f"{r.name}-{i}" for r in chosen for i in range(len(r.examples))],
            )
        else:
            metafunc.parametrize("record", chosen, ids=[r.name for r in chosen])
    explicit = {
        name.strip()
        for marker in metafunc.definition.iter_markers("parametrize")
        for name in (
            marker.args[0].split(",") if isinstance(marker.args[0], str) else marker.args[0]
        )
    }
    if "dtype" in names and "dtype" not in explicit:
        metafunc.parametrize("dtype", DTYPES, ids=[str(d).removeprefix("torch.") for d in DTYPES])


def prepare(record, example, x):
    """Keyword arguments for calling ``record`` on ``x``: PReLU's float weight becomes a tensor."""
    kwargs = dict(example)
    if record.kind == "parametric":
        kwargs["weight"] = torch.tensor([kwargs["weight"]], dtype=x.dtype, device=x.device)
    return kwargs


def call_reference(record, x, kwargs):
    """The record's torch reference (maxout: reshape + amax) with the same arguments."""
    if record.kind == "maxout":
        return maxout_reference(x, **kwargs)
    return record.reference(x, **kwargs)


def special_values(dtype, device="cpu"):
    """A 1-d tensor spanning the whole range of ``dtype``, with ±0, ±inf and NaN.

    Tiny (smallest subnormal and normal), ordinary, large (1e2 … 1e4, 1e5, 1e30 and the
    largest finite value) magnitudes of both signs; values beyond the dtype's range
    become ±inf when cast, which is fine.
    """
    info = torch.finfo(dtype)
    magnitudes = [
        info.smallest_normal * 2 ** -(info.bits // 4),  # a subnormal
        info.smallest_normal,
        1e-30,
        1e-7,
        1e-3,
        0.1,
        0.5,
        1.0,
        1.5,
        2.0,
        3.0,
        5.0,
        8.0,
        10.0,
        15.0,
        20.0,
        30.0,
        50.0,
        88.0,
        100.0,
        1e3,
        1e4,
        1e5,
        1e19,
        1e30,
        info.max,
        float("inf"),
    ]
    positive = torch.tensor(magnitudes, dtype=torch.float64).to(dtype)
    zeros = torch.tensor([0.0, -0.0], dtype=dtype)
    nan = torch.tensor([float("nan")], dtype=dtype)
    return torch.cat([-positive.flip(0), zeros, positive, nan]).to(device)


# Test modules cannot import this conftest (pytest imports it under a name of its own),
# so the helpers reach the tests as fixtures.


@pytest.fixture(name="prepare")
def _prepare_fixture():
    return prepare


@pytest.fixture(name="call_reference")
def _call_reference_fixture():
    return call_reference


@pytest.fixture(name="special_values")
def _special_values_fixture():
    return special_values
