"""The training monitor against hand computations on a tiny network.

Net: Linear(2, 3) → ReLU → Linear(3, 1), weights set by hand, so that every recorded
quantity (activations, dead units, saturation, gradients, grad:data and update:data
ratios) can be written down from the formulas.
"""

import math
import warnings

import pytest
import torch
from torch import nn

import actlib
from actlib.monitor import MonitorWarning, TrainingMonitor


def _tiny(activation=None):
    net = nn.Sequential(nn.Linear(2, 3), activation or actlib.ReLU(), nn.Linear(3, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        net[0].bias.copy_(torch.tensor([0.0, -5.0, 0.5]))
        net[2].weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
        net[2].bias.zero_()
    return net


X = torch.tensor([[1.0, 2.0], [2.0, 1.0], [-1.0, 0.0], [3.0, -1.0]], dtype=torch.float64)
# z = W1 x + b1 per example: unit 1 = x1, unit 2 = x2 - 5 (always negative), unit 3 = 0.5 - x1 - x2
Z = torch.tensor([[1.0, -3.0, -2.5], [2.0, -4.0, -2.5], [-1.0, -5.0, 1.5], [3.0, -6.0, -1.5]],
                 dtype=torch.float64)  # fmt: skip


def _one_step(net, monitor, lr=0.1):
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    optimizer.zero_grad()
    net(X).sum().backward()
    monitor.after_backward()
    optimizer.step()
    monitor.after_step()


def test_layer_statistics_by_hand():
    net = _tiny()
    with TrainingMonitor(net, every=1, bins=4, update_range=(0, math.inf)) as monitor:
        _one_step(net, monitor)
    (record,) = monitor.layer_records
    h = Z.clamp_min(0)
    assert record.layer == "1" and record.step == 0
    assert math.isclose(record.mean, h.mean().item())
    assert math.isclose(record.std, h.std(correction=0).item())
    # relu' = 0 where z <= 0: 8 of the 12 elements; unit 2 (z < 0 for every example) is dead.
    assert record.saturated == 8 / 12
    assert record.dead == 1 / 3
    # h has the values 1, 2, 3, 1.5 and eight zeros, over [0, 3] in 4 bins of width 0.75.
    assert record.activations.counts.tolist() == [8.0, 1.0, 2.0, 1.0]
    torch.testing.assert_close(record.activations.edges, torch.linspace(0, 3, 5, dtype=torch.float64))
    # dL/dh = W2 for every example (the loss is the sum of the outputs): values 1, 2, 3 four times.
    assert record.gradients.counts.tolist() == [4.0, 0.0, 4.0, 4.0]


def test_weight_ratios_by_hand():
    net = _tiny()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    with TrainingMonitor(net, every=1, update_range=(0, math.inf)) as monitor:
        _one_step(net, monitor, lr=0.1)
    records = {r.name: r for r in monitor.parameter_records}
    assert set(records) == {"0.weight", "2.weight"}  # matrices only, not biases
    # dL/dW2 = sum over examples of h: column sums of relu(Z)
    grad_w2 = Z.clamp_min(0).sum(0, keepdim=True)
    data = before["2.weight"].std(correction=0)
    assert math.isclose(records["2.weight"].grad_to_data, (grad_w2.std(correction=0) / data).item())
    # SGD: ΔW = -lr · grad, so update:data = lr · grad:data
    assert math.isclose(records["2.weight"].update_to_data, 0.1 * records["2.weight"].grad_to_data)
    # dL/dW1[i, j] = W2[i] · relu'(z_i) · x_j summed over examples
    mask = (Z > 0).double()
    grad_w1 = (before["2.weight"].T * mask.T) @ X
    expected = grad_w1.std(correction=0) / before["0.weight"].std(correction=0)
    assert math.isclose(records["0.weight"].grad_to_data, expected.item())


def test_samples_every_k_steps_and_keeps_nothing_in_between():
    net = _tiny()
    monitor = TrainingMonitor(net, every=3)
    for _ in range(7):
        _one_step(net, monitor, lr=1e-3)
        if not monitor.sampling:
            assert monitor._captured == {}
    assert [r.step for r in monitor.layer_records] == [0, 3, 6]
    steps, dead = monitor.history("1", "dead")
    assert steps == [0, 3, 6] and len(dead) == 3
    monitor.close()
    # closed: the hooks are gone, the model computes as before
    assert all(not m._forward_hooks for m in net.modules())


def test_warns_once_when_half_the_units_are_dead():
    net = _tiny()
    with torch.no_grad():
        net[0].bias.copy_(torch.tensor([-10.0, -10.0, 0.5]))  # two of three units dead
    monitor = TrainingMonitor(net, every=1, update_range=(0, math.inf))
    with pytest.warns(MonitorWarning, match=r"layer 1: 67% of its units are dead at step 0"):
        _one_step(net, monitor, lr=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning while it stays dead
        _one_step(net, monitor, lr=0.0)


def test_warns_when_update_to_data_is_far_from_1e_3():
    net = _tiny()
    monitor = TrainingMonitor(net, every=1, warn_dead=1.0)
    with pytest.warns(MonitorWarning, match=r"update:data ratio .* outside") as caught:
        _one_step(net, monitor, lr=10.0)
    assert sorted(str(w.message).split(":")[0] for w in caught) == ["0.weight", "2.weight"]


def test_monitor_does_not_change_training():
    torch.manual_seed(0)
    plain, watched = _tiny(), _tiny()
    monitor = TrainingMonitor(watched, every=2, warn_dead=1.0, update_range=(0, math.inf))
    for _ in range(5):
        for net in (plain, watched):
            optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
            optimizer.zero_grad()
            net(X).square().sum().backward()
            if net is watched:
                monitor.after_backward()
            optimizer.step()
            if net is watched:
                monitor.after_step()
    for a, b in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(a, b)


def test_torch_activations_and_units_along_dim_1(device):
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()).to(device)
    with torch.no_grad():
        conv[0].bias.copy_(torch.tensor([-100.0, 0.0, 0.0, -100.0]))  # channels 0 and 3 dead
    monitor = TrainingMonitor(conv, every=1, unit_dim=1, warn_dead=1.0, update_range=(0, math.inf))
    x = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(0)).to(device)
    conv(x).sum().backward()
    monitor.after_backward()
    (record,) = monitor.layer_records
    assert record.layer == "1" and record.dead == 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="every must be a positive int"):
        TrainingMonitor(_tiny(), every=0)
    with pytest.raises(ValueError, match="no activation module"):
        TrainingMonitor(nn.Linear(2, 2))
    with pytest.raises(KeyError, match="nothing recorded"):
        TrainingMonitor(_tiny()).history("9", "dead")


# ------------------------------------------------------------------ what is watched (H1, M4)


def test_transformer_layer_watches_its_activation_not_attention():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0,
                                       activation=nn.GELU(), batch_first=True).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    with TrainingMonitor(layer, every=1, warn_dead=1.0, update_range=(0, math.inf)) as monitor:
        assert list(monitor.layers) == ["activation"]  # not self_attn (MultiheadAttention)
        _ = layer(x).sum().backward()
        monitor.after_backward()
    (record,) = monitor.layer_records
    # the feed-forward input is norm1(x + attention(x)): recompute h = gelu(linear1(.)) by hand
    a = layer.norm1(x + layer.self_attn(x, x, x, need_weights=False)[0])
    h = torch.nn.functional.gelu(layer.linear1(a))
    assert math.isclose(record.mean, h.mean().item(), rel_tol=1e-12)


def test_a_module_that_returns_a_tuple_is_a_clear_error():
    attention = nn.MultiheadAttention(4, 1)
    model = nn.Sequential()
    model.add_module("attention", attention)
    monitor = TrainingMonitor(model, every=1, layers={"attention": attention})
    x = torch.randn(2, 3, 4)
    with pytest.raises(TypeError, match=r"layer attention \(MultiheadAttention\) returned a tuple"):
        attention(x, x, x)
    monitor.close()


@pytest.mark.parametrize("output", [nn.Softmax(dim=-1), nn.LogSoftmax(dim=-1), nn.Softmin(dim=-1),
                                    actlib.Softmax(dim=-1), actlib.LogSoftmax(dim=-1)])
def test_output_softmax_is_not_watched(output):
    # softmax's ∂Σh/∂z is 0 everywhere: watched, it read as 100 % dead on every classifier
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3), output)
    with TrainingMonitor(net) as monitor:
        assert list(monitor.layers) == ["1"]


# ------------------------------------------------------------------ how modules are called (H2, M3)


@pytest.mark.parametrize("inplace", [nn.SiLU(inplace=True), actlib.SiLU(inplace=True)])
def test_in_place_activation_records_f_prime_of_z_not_of_h(inplace):
    # An in-place forward overwrites z with h; silu'(h) != silu'(z), so reading z after the
    # forward would give other saturated fractions.
    net = _tiny(inplace)
    with TrainingMonitor(net, every=1, saturation_below=0.1, update_range=(0, math.inf)) as monitor:
        _one_step(net, monitor)
    (record,) = monitor.layer_records
    sigma = torch.sigmoid(Z)
    slope = sigma * (1 + Z * (1 - sigma))  # silu'(z), closed form
    assert record.saturated == (slope.abs() < 0.1).double().mean().item()
    assert math.isclose(record.mean, (Z * sigma).mean().item(), rel_tol=1e-12)


class _Shared(nn.Module):
    """One Tanh module applied twice in a forward."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.act, self.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1)

    def forward(self, x):
        return self.c(self.act(self.b(self.act(10 * self.a(x)))))


def test_a_module_called_twice_is_recorded_per_call():
    torch.manual_seed(0)
    net, x = _Shared().double(), torch.randn(64, 4, dtype=torch.float64)
    with TrainingMonitor(net, every=1, warn_dead=1.0, update_range=(0, math.inf)) as monitor:
        _ = net(x).sum().backward()
        monitor.after_backward()
    records = {r.layer: r for r in monitor.layer_records}
    assert sorted(records) == ["act", "act#2"]
    z1 = 10 * net.a(x)
    z2 = net.b(torch.tanh(z1))
    for name, z in (("act", z1), ("act#2", z2)):  # tanh' = 1 - tanh²
        assert records[name].saturated == ((1 - torch.tanh(z) ** 2) < 0.01).double().mean().item()
        assert math.isclose(records[name].mean, torch.tanh(z).mean().item(), rel_tol=1e-12)


def test_input_passed_by_keyword():
    class ByKeyword(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.act = nn.Linear(2, 3), actlib.ReLU()

        def forward(self, x):
            return self.act(input=self.linear(x))

    net = ByKeyword().double()
    with TrainingMonitor(net, every=1, update_range=(0, math.inf)) as monitor:
        net(X).sum().backward()
        monitor.after_backward()
    z = net.linear(X)
    assert monitor.layer_records[0].saturated == (z <= 0).double().mean().item()


def test_empty_batch_records_no_layer_and_no_warning():
    net = _tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with TrainingMonitor(net, every=1, update_range=(0, math.inf)) as monitor:
            _ = net(X[:0]).sum().backward()
            monitor.after_backward()
            monitor.after_step()
    assert monitor.layer_records == []


# ------------------------------------------------------------------ hooks and arguments (M10, M11)


def test_an_unreferenced_monitor_removes_its_hooks_and_a_second_one_warns():
    import gc

    net = _tiny()
    monitor = TrainingMonitor(net, every=1)
    with pytest.warns(MonitorWarning, match="already watched by another TrainingMonitor"):
        second = TrainingMonitor(net, every=1)
    second.close()
    del monitor, second
    gc.collect()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_layers_by_name():
    net = _tiny()
    with TrainingMonitor(net, layers=["1", "2"]) as monitor:
        assert monitor.layers == {"1": net[1], "2": net[2]}
    with pytest.raises(ValueError, match="no module named 'ab'"):
        TrainingMonitor(net, layers=["ab"])
    with pytest.raises(ValueError, match=r"layers\['x'\] is not a submodule of model"):
        TrainingMonitor(net, layers={"x": nn.Tanh()})
    with pytest.raises(TypeError, match="layers must be a mapping"):
        TrainingMonitor(net, layers="1")


def test_numpy_int_arguments_are_accepted():
    import numpy as np

    with TrainingMonitor(_tiny(), every=np.int64(3), bins=np.int32(5), unit_dim=np.int64(-1)) as monitor:
        assert (monitor.every, monitor.bins) == (3, 5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"every": 2.5}, TypeError, "every must be an int"),
        ({"every": True}, TypeError, "every must be an int"),
        ({"bins": 0}, ValueError, "bins must be a positive int"),
        ({"unit_dim": "x"}, TypeError, "unit_dim must be an int"),
        ({"saturation_below": math.nan}, ValueError, "saturation_below must not be NaN"),
        ({"saturation_below": -1.0}, ValueError, "saturation_below must be finite and >= 0"),
        ({"warn_dead": -3}, ValueError, r"warn_dead is a fraction in \[0, 1\]"),
        ({"warn_dead": 1.5}, ValueError, r"warn_dead is a fraction in \[0, 1\]"),
        ({"update_range": (1e-2, 1e-4)}, ValueError, "0 <= low <= high"),
        ({"update_range": 1e-3}, TypeError, "pair"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainingMonitor(_tiny(), **kwargs)


def test_unit_dim_out_of_range_names_the_layer():
    net = _tiny()
    monitor = TrainingMonitor(net, every=1, unit_dim=5)
    net(X).sum().backward()
    with pytest.raises(ValueError, match=r"unit_dim=5 is out of range for layer 1, whose input has shape \(4, 3\)"):
        monitor.after_backward()
    monitor.close()


# ------------------------------------------------------------------ histograms (Low)


def test_histogram_of_extreme_and_constant_and_non_finite_values():
    import numpy as np

    from actlib.monitor import _histogram

    values = np.array([-3e38, 0.0, 3e38])  # high - low overflows float32
    hist = _histogram(torch.tensor(values, dtype=torch.float32), 4)
    counts, edges = np.histogram(values.astype(np.float32).astype(np.float64), bins=4)
    assert hist.counts.tolist() == counts.tolist()
    np.testing.assert_allclose(hist.edges.numpy(), edges, rtol=1e-15)
    constant = _histogram(torch.full((10,), 1e8), 4)  # numpy: the range v ± 0.5
    counts, edges = np.histogram(np.full(10, 1e8), bins=4)
    assert constant.counts.tolist() == counts.tolist()
    np.testing.assert_allclose(constant.edges.numpy(), edges, rtol=1e-15)
    mixed = _histogram(torch.tensor([1.0, math.nan, math.inf, 2.0, -math.inf]), 2)
    assert mixed.nonfinite == 3 and mixed.counts.tolist() == [1.0, 1.0]
