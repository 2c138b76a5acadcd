"""The nn.Module forms: repr, parameters, dtype/device moves, state_dict, same output as functional."""

import io

import pytest
import torch

import actlib


@pytest.mark.catalog()
def test_module_matches_functional(record, example, device, prepare):
    # eval(): RReLU draws random slopes in training mode, as torch.nn.RReLU does.
    module = record.module(**{k: v for k, v in example.items() if k != "weight"}).to(device).eval()
    x = torch.linspace(-4, 4, 36, device=device).reshape(6, 6)
    kwargs = prepare(record, example, x)
    if record.kind == "parametric":  # the module's own learnable weight
        kwargs["weight"] = module.weight
    torch.testing.assert_close(module(x), record.functional(x, **kwargs), rtol=0, atol=0)
    assert type(module).__name__ in repr(module)


@pytest.mark.parametrize(
    ("module", "text"),
    [
        (actlib.Sigmoid(), "Sigmoid()"),
        (actlib.LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"),
        (actlib.PReLU(3), "PReLU(num_parameters=3)"),
        (actlib.ELU(0.5), "ELU(alpha=0.5)"),
        (actlib.Softplus(2.0, 10.0), "Softplus(beta=2.0, threshold=10.0)"),
        (actlib.GELU("tanh"), "GELU(approximate='tanh')"),
        (actlib.Maxout(3, dim=1), "Maxout(num_pieces=3, dim=1)"),
        (actlib.Softmax(dim=-1), "Softmax(dim=-1)"),
        (actlib.LogSoftmax(dim=0), "LogSoftmax(dim=0)"),
        (actlib.Argmax(dim=1, keepdim=True), "Argmax(dim=1, keepdim=True)"),
        (actlib.GEGLU(dim=0, approximate="tanh"), "GEGLU(dim=0, approximate='tanh')"),
        (actlib.SwiGLU(), "SwiGLU(dim=-1)"),
    ],
)
def test_repr(module, text):
    assert repr(module) == text


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (actlib.CELU(), torch.nn.CELU()),
        (actlib.CELU(0.5, inplace=True), torch.nn.CELU(0.5, inplace=True)),
        (actlib.RReLU(), torch.nn.RReLU()),
        (actlib.RReLU(0.1, 0.3, inplace=True), torch.nn.RReLU(0.1, 0.3, inplace=True)),
        (actlib.ReLU6(), torch.nn.ReLU6()),
        (actlib.ReLU6(inplace=True), torch.nn.ReLU6(inplace=True)),
        (actlib.Hardtanh(), torch.nn.Hardtanh()),
        (actlib.Hardtanh(-2, 2, inplace=True), torch.nn.Hardtanh(-2, 2, inplace=True)),
        (actlib.Hardsigmoid(inplace=True), torch.nn.Hardsigmoid(inplace=True)),
        (actlib.Hardswish(), torch.nn.Hardswish()),
        (actlib.GLU(), torch.nn.GLU()),
        (actlib.GLU(dim=0), torch.nn.GLU(dim=0)),
    ],
    ids=lambda module: repr(module),
)
def test_repr_is_torchs(ours, theirs):
    assert repr(ours) == repr(theirs)


def test_stateless_modules_have_no_parameters():
    for record in actlib.catalog.CATALOG.values():
        if record.kind != "parametric":
            module = record.make_module()
            assert list(module.parameters()) == [] and module.state_dict() == {}


def test_prelu_parameters_learn_per_channel(device):
    torch.manual_seed(0)
    module = actlib.PReLU(num_parameters=3, init=0.1).to(device)
    reference = torch.nn.PReLU(num_parameters=3, init=0.1).to(device)
    (weight,) = module.parameters()
    assert weight.shape == (3,) and weight.requires_grad and torch.all(weight == 0.1)
    x = torch.randn(4, 3, 5, device=device)
    module(x).square().sum().backward()
    reference(x).square().sum().backward()
    torch.testing.assert_close(module.weight.grad, reference.weight.grad)
    torch.optim.SGD(module.parameters(), lr=0.1).step()
    assert not torch.equal(module.weight.detach(), torch.full((3,), 0.1, device=device))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_prelu_moves_with_to(dtype, device):
    module = actlib.PReLU(2).to(device=device, dtype=dtype)
    assert module.weight.dtype == dtype and module.weight.device.type == device
    x = torch.randn(3, 2, dtype=dtype, device=device)
    assert module(x).dtype == dtype
    built = actlib.PReLU(2, device=device, dtype=dtype)
    assert built.weight.dtype == dtype and built.weight.device.type == device


def test_state_dict_round_trip():
    module = actlib.PReLU(4, init=0.3)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([0.1, -0.2, 0.3, 0.4]))
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    restored = actlib.PReLU(4)
    restored.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(restored.weight, module.weight)
    # the same keys as torch.nn.PReLU, so weights can move between the two
    torch.nn.PReLU(4).load_state_dict(module.state_dict())
    assert list(module.state_dict()) == ["weight"]


def test_modules_compose_in_a_network():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 12),
        actlib.Maxout(2),
        actlib.PReLU(6),
        torch.nn.Linear(6, 4),
        actlib.LogSoftmax(dim=-1),
    )
    out = net(torch.randn(5, 8))
    assert out.shape == (5, 4)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(5))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
