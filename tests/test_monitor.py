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
    torch.testing.assert_close(record.activations.edges, torch.linspace(0, 3, 5))
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
