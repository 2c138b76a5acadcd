"""actlib behaves like torch.nn where a user's code goes: forward-mode AD, hessians, in-place
flags, torch.fx, TorchScript's refusal, autocast, empty tensors and the softmax ``dtype=``.

Each test here failed before the feature it checks existed (issue: "behaves like torch.nn
on every autograd path"). Expected values come from torch's own ops or from reverse mode.
"""

import pytest
import torch
import torch.nn.functional as F
from smooth_inputs import smooth_input
from torch.func import hessian, jacfwd, jacrev, jvp

import actlib

DIFFERENTIABLE = ("elementwise", "parametric", "dim", "maxout", "gated")


def _function_and_inputs(record, example, x, prepare):
    kwargs = prepare(record, example, x)
    if record.kind == "parametric":
        weight = torch.linspace(-0.5, 0.5, x.shape[1], dtype=x.dtype, device=x.device)
        return (lambda x, w: record.functional(x, w)), (x, weight)
    return (lambda x: record.functional(x, **kwargs)), (x,)


# ----------------------------------------------------------------------- forward mode


@pytest.mark.catalog(*DIFFERENTIABLE)
def test_gradcheck_forward_and_reverse_mode(record, example, device, prepare):
    function, inputs = _function_and_inputs(record, example, smooth_input((3, 2, 6), device), prepare)
    inputs = tuple(t.requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(
        function, inputs, check_forward_ad=True, check_backward_ad=True, check_batched_grad=True
    )


@pytest.mark.catalog(*DIFFERENTIABLE)
def test_jvp_matches_torch(record, example, device, prepare, call_reference):
    """torch.func.jvp through actlib equals jvp through torch's own op."""
    x = smooth_input((3, 2, 6), device)
    tangent = torch.linspace(-1, 1, x.numel(), dtype=x.dtype, device=device).reshape(x.shape)
    kwargs = prepare(record, example, x)
    if record.kind == "parametric":
        kwargs["weight"] = torch.linspace(-0.5, 0.5, x.shape[1], dtype=x.dtype, device=device)

    def ours(x_):
        return record.functional(x_, **kwargs)

    def theirs(x_):
        return call_reference(record, x_, kwargs)

    value, tangent_out = jvp(ours, (x,), (tangent,))
    ref_value, ref_tangent = jvp(theirs, (x,), (tangent,))
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(tangent_out, ref_tangent)


def test_prelu_jvp_in_the_weight():
    """The product rule on a·x: the weight's tangent moves only the negative side."""
    x = smooth_input((3, 2, 6))
    weight = torch.tensor([0.25, -0.5], dtype=torch.float64)
    dw = torch.tensor([1.0, 2.0], dtype=torch.float64)
    _, ours = jvp(lambda w: actlib.prelu(x, w), (weight,), (dw,))
    _, theirs = jvp(lambda w: F.prelu(x, w), (weight,), (dw,))
    torch.testing.assert_close(ours, theirs)


@pytest.mark.catalog("elementwise", "dim", "gated")
def test_hessian_forward_over_reverse_matches_torch(record, example, prepare, call_reference):
    """jacfwd(jacrev(f)) — the hessian — uses the jvp of the backward's own ops.

    Where torch's own op cannot be differentiated twice the reference is the same hessian
    by another route: RReLU in eval is a leaky ReLU (aten::rrelu has no vmap rule), and
    hardsigmoid, piecewise linear, has the hessian 0 (its torch backward has no derivative).
    """
    x = smooth_input((2, 6))
    kwargs = prepare(record, example, x)
    if record.name == "rrelu":  # torch's aten::rrelu has no vmap rule; in eval it is this
        mean_slope = (kwargs.get("lower", 1 / 8) + kwargs.get("upper", 1 / 3)) / 2
        def reference(x_):
            return F.leaky_relu(x_, mean_slope)
    else:
        def reference(x_):
            return call_reference(record, x_, kwargs)

    def loss(function):
        def weighted_sum(x_):
            y = function(x_)
            weights = torch.linspace(0.5, 1.5, y.numel(), dtype=y.dtype).reshape(y.shape)
            return (y * weights).sum()
        return weighted_sum

    ours = hessian(loss(lambda x_: record.functional(x_, **kwargs)))(x)
    if record.name == "hardsigmoid":
        theirs = torch.zeros(*x.shape, *x.shape, dtype=x.dtype)
    else:
        theirs = jacfwd(jacrev(loss(reference)))(x)
    torch.testing.assert_close(ours, theirs)


def test_forward_ad_dual_numbers():
    import torch.autograd.forward_ad as fwAD

    x = smooth_input((7,))
    tangent = torch.ones_like(x)
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, tangent)
        derivative = fwAD.unpack_dual(actlib.gelu(dual)).tangent
    (reverse,) = torch.autograd.grad(actlib.gelu(x.requires_grad_()).sum(), x)
    torch.testing.assert_close(derivative, reverse)


# ---------------------------------------------------------------------------- in place

IN_PLACE = [
    ("relu", {}, F.relu),
    ("leaky_relu", {"negative_slope": 0.2}, F.leaky_relu),
    ("elu", {"alpha": 0.7}, F.elu),
    ("selu", {}, F.selu),
    ("silu", {}, F.silu),
    ("mish", {}, F.mish),
    ("celu", {"alpha": 0.5}, F.celu),
    ("rrelu", {"lower": 0.1, "upper": 0.3}, F.rrelu),
    ("relu6", {}, F.relu6),
    ("hardtanh", {"min_val": -0.5, "max_val": 2.0}, F.hardtanh),
    ("hardsigmoid", {}, F.hardsigmoid),
    ("hardswish", {}, F.hardswish),
]


@pytest.mark.parametrize(("name", "kwargs", "reference"), IN_PLACE, ids=[c[0] for c in IN_PLACE])
def test_in_place_overwrites_and_returns_the_input(name, kwargs, reference):
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    expected = reference(x.clone(), **kwargs)
    returned = getattr(actlib, name)(x, inplace=True, **kwargs)
    assert returned is x
    torch.testing.assert_close(x, expected)


@pytest.mark.parametrize(("name", "kwargs", "reference"), IN_PLACE, ids=[c[0] for c in IN_PLACE])
def test_in_place_gradients_and_version_counter(name, kwargs, reference):
    leaf = smooth_input((4, 3)).requires_grad_()
    # Through a non-leaf, the in-place form gives the gradient of the out-of-place one.
    (ours,) = torch.autograd.grad(getattr(actlib, name)(leaf * 1, inplace=True, **kwargs).sum(), leaf)
    (theirs,) = torch.autograd.grad(reference(leaf * 1, **kwargs).sum(), leaf)
    torch.testing.assert_close(ours, theirs)
    # A leaf that requires grad cannot be overwritten, as in torch.
    with pytest.raises(RuntimeError, match="leaf Variable"):
        getattr(actlib, name)(leaf, inplace=True, **kwargs)
    # exp saved its output; overwriting it makes the later backward raise, as in torch.
    saved = leaf.exp()
    getattr(actlib, name)(saved, inplace=True, **kwargs)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.sum().backward()


def test_in_place_flag_is_checked():
    with pytest.raises(TypeError, match="inplace must be True or False"):
        actlib.relu(torch.ones(2), inplace="yes")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (actlib.ReLU(inplace=True), torch.nn.ReLU(inplace=True)),
        (actlib.LeakyReLU(0.2, inplace=True), torch.nn.LeakyReLU(0.2, inplace=True)),
        (actlib.ELU(inplace=True), torch.nn.ELU(inplace=True)),
        (actlib.SELU(inplace=True), torch.nn.SELU(inplace=True)),
        (actlib.SiLU(inplace=True), torch.nn.SiLU(inplace=True)),
        (actlib.Mish(inplace=True), torch.nn.Mish(inplace=True)),
        (actlib.CELU(inplace=True), torch.nn.CELU(inplace=True)),
        (actlib.ReLU6(inplace=True), torch.nn.ReLU6(inplace=True)),
        (actlib.Hardtanh(-2.0, 2.0, inplace=True), torch.nn.Hardtanh(-2.0, 2.0, inplace=True)),
        (actlib.Hardsigmoid(inplace=True), torch.nn.Hardsigmoid(inplace=True)),
        (actlib.Hardswish(inplace=True), torch.nn.Hardswish(inplace=True)),
        (actlib.SELU(), torch.nn.SELU()),
        (actlib.ReLU(), torch.nn.ReLU()),
    ],
)
def test_in_place_modules_like_torch(ours, theirs):
    assert repr(ours) == repr(theirs)
    x = torch.linspace(-3, 3, 13)
    mine, torchs = x.clone(), x.clone()
    got, want = ours(mine), theirs(torchs)
    torch.testing.assert_close(got, want)
    assert (got is mine) == (want is torchs) == ours.inplace
    torch.testing.assert_close(mine, torchs)  # the input is overwritten, or not, alike


# --------------------------------------------------------------------- fx, TorchScript


def _every_module():
    modules = []
    for record in actlib.catalog.CATALOG.values():
        modules.append((record.name, record.make_module()))
    return modules


@pytest.mark.parametrize(("name", "module"), _every_module(), ids=[n for n, _ in _every_module()])
def test_fx_symbolic_trace(name, module):
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), module).eval()  # RReLU: mean slope
    traced = torch.fx.symbolic_trace(model)
    x = torch.linspace(-2, 2, 24).reshape(2, 12)[:, :6].contiguous()
    torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)
    called = [str(node.target) for node in traced.graph.nodes if node.op == "call_function"]
    assert any("actlib" in target or name in target for target in called), called


def test_torchscript_is_refused_with_the_supported_paths():
    with pytest.raises(RuntimeError, match="torch.compile.*torch.export"):
        torch.jit.script(actlib.GELU())


# ----------------------------------------------------------------------------- autocast


def test_prelu_under_autocast_like_torch():
    linear = torch.nn.Linear(6, 6)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    ours, theirs = actlib.PReLU(), torch.nn.PReLU()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = linear(x)
        got, want = ours(h), theirs(h)
    assert got.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(got, want)
    got.float().sum().backward()
    assert ours.weight.grad is not None and ours.weight.grad.dtype == torch.float32
    # Outside autocast a dtype mismatch is still an error that names both dtypes.
    with pytest.raises(TypeError, match="bfloat16"):
        actlib.prelu(h.detach(), ours.weight)


# ------------------------------------------------------------------------ empty, dtype=


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(3, 0), (0, 3), (0,), (2, 0, 4)])
def test_softmax_of_empty_tensors_like_torch(name, shape):
    x = torch.empty(shape, requires_grad=True)
    for dim in range(-len(shape), len(shape)):
        got = getattr(actlib, name)(x, dim=dim)
        want = getattr(F, name)(x, dim=dim)
        assert got.shape == want.shape and got.dtype == want.dtype
        (grad,) = torch.autograd.grad(got.sum(), x)
        assert grad.shape == x.shape


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_softmax_refuses_a_non_floating_dtype(name, dtype):
    x = torch.tensor([[0.5, 1.5, 3.0]])
    with pytest.raises(NotImplementedError):
        getattr(F, name)(x, -1, dtype=dtype)  # torch refuses too
    with pytest.raises(TypeError, match=str(dtype).removeprefix("torch.")):
        getattr(actlib, name)(x, -1, dtype=dtype)


def test_elementwise_on_empty_and_zero_dim_tensors():
    for name in ("sigmoid", "tanh", "relu", "gelu", "silu", "mish", "softplus", "elu"):
        for x in (torch.empty(0, 3), torch.tensor(0.5)):
            got, want = getattr(actlib, name)(x), getattr(F, name)(x)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want)


def test_compile_fullgraph_and_export_trace_functions_with_a_jvp():
    """Dynamo cannot trace a custom jvp: under a compiler the Functions hide it (eager_only_jvp)."""
    x = torch.linspace(-3, 3, 24).reshape(4, 6)
    for module in (actlib.GELU(), actlib.Mish(), actlib.Softmax(dim=-1), actlib.Maxout(2)):
        compiled = torch.compile(module, fullgraph=True, backend="eager")
        leaf = x.clone().requires_grad_()
        y = compiled(leaf)
        y.sum().backward()
        torch.testing.assert_close(y, module(x))
        exported = torch.export.export(module, (x,))
        torch.testing.assert_close(exported.module()(x), module(x))
    # ... while eagerly forward mode still works.
    assert jvp(actlib.gelu, (x,), (torch.ones_like(x),))[1].shape == x.shape


def test_mish_second_derivative_at_zero():
    """mish″(0) = 2σ′(0)·tanh′(ln 2) + … = 0.64: autograd of a kinked max(z, 0) gave 0.96."""
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(actlib.mish, (x,))
    (d1,) = torch.autograd.grad(actlib.mish(x).sum(), x, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), x)
    (r1,) = torch.autograd.grad(F.mish(x).sum(), x, create_graph=True)
    (r2,) = torch.autograd.grad(r1.sum(), x)
    torch.testing.assert_close(d2, r2)


def test_forward_over_forward_is_refused_not_silently_zero():
    """torch drops the outer tangent through a custom Function's jvp: refuse, name the way out."""
    x = torch.tensor([0.7, 1.9], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="forward-mode AD of forward-mode AD.*hessian"):
        jacfwd(jacfwd(lambda z: actlib.squared_relu(z).sum()))(x)
    with pytest.raises(RuntimeError, match="jacfwd\\(jacrev"):
        jvp(lambda y: jvp(actlib.sigmoid, (y,), (torch.ones(2, dtype=torch.float64),))[1],
            (x,), (torch.ones(2, dtype=torch.float64),))  # fmt: skip
    # forward over reverse is exact: squared ReLU'' = 2 for x > 0
    torch.testing.assert_close(hessian(lambda z: actlib.squared_relu(z).sum())(x),
                               2 * torch.eye(2, dtype=torch.float64))  # fmt: skip


def test_feed_forward_blocks_trace_and_refuse_torchscript():
    for block in (actlib.FeedForward(8), actlib.FeedForward(8, activation="gelu"),
                  actlib.GatedFeedForward(9)):  # fmt: skip
        x = torch.linspace(-2, 2, 16 * block.down.out_features).reshape(16, -1)
        torch.testing.assert_close(torch.fx.symbolic_trace(block)(x), block(x), rtol=0, atol=0)
        with pytest.raises(RuntimeError, match="torch.compile"):
            torch.jit.script(block)


def test_integer_like_sizes_and_dims_are_taken():
    np = pytest.importorskip("numpy")
    assert actlib.gated_hidden_size(np.int64(768)) == 2048
    assert actlib.GatedFeedForward(np.int64(12)).down.in_features == 32
    x = torch.linspace(-1, 1, 8).reshape(2, 4)
    torch.testing.assert_close(actlib.glu(x, np.int64(1)), F.glu(x, 1))
    torch.testing.assert_close(actlib.softmax(x, np.int64(0)), F.softmax(x, 0))
