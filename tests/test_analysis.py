"""Tests for actlib.analysis: models, gradient norms, unit statistics, dead units, training."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import actlib
from actlib import analysis


def _data(n=64, features=8, classes=3, seed=0):
    x = actlib.seeded_randn(n, features, seed=seed)
    y = actlib.seeded_randn(n, classes, seed=seed + 1).argmax(dim=1)
    return x, y


# ---------------------------------------------------------------------------- build_mlp


def test_build_mlp_shape_and_layers():
    model = analysis.build_mlp(8, 16, 3, 4, "relu")
    linears = analysis.linear_layers(model)
    acts = analysis.activation_layers(model)
    assert [tuple(m.weight.shape) for m in linears] == [(16, 8), (16, 16), (16, 16), (4, 16)]
    assert len(acts) == 3 and all(isinstance(a, actlib.ReLU) for a in acts)
    assert model(torch.zeros(5, 8)).shape == (5, 4)


def test_build_mlp_accepts_factories_and_widens_for_maxout():
    model = analysis.build_mlp(8, 16, 2, 4, nn.Tanh)
    assert isinstance(analysis.activation_layers(model)[0], nn.Tanh)
    maxout = analysis.build_mlp(8, 16, 2, 4, "maxout")
    assert [tuple(m.weight.shape) for m in analysis.linear_layers(maxout)] == [
        (32, 8),
        (32, 16),
        (4, 16),
    ]
    assert maxout(torch.zeros(5, 8)).shape == (5, 4)


def test_build_mlp_refuses_output_layers_and_unknown_names():
    with pytest.raises(ValueError, match="not a hidden-layer activation"):
        analysis.build_mlp(8, 16, 2, 4, "softmax")
    with pytest.raises(KeyError):
        analysis.build_mlp(8, 16, 2, 4, "no_such_activation")
    with pytest.raises(ValueError, match="init"):
        analysis.build_mlp(8, 16, 2, 4, "relu", init="orthogonal")


def test_hidden_activations_are_the_elementwise_ones_plus_prelu_and_maxout():
    names = analysis.hidden_activations()
    elementwise = [n for n, r in actlib.catalog.CATALOG.items() if r.kind == "elementwise"]
    assert set(elementwise) <= set(names)
    assert {"prelu", "maxout"} <= set(names)
    assert not {"softmax", "log_softmax", "argmax"} & set(names)
    for name in names:  # every one builds and runs
        assert analysis.build_mlp(4, 6, 2, 3, name)(torch.ones(2, 4)).shape == (2, 3)


def test_build_mlp_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = analysis.build_mlp(8, 16, 3, 4, "tanh", seed=7)
    after = torch.rand(3)
    assert torch.equal(before, after)  # the global stream was not consumed
    b = analysis.build_mlp(8, 16, 3, 4, "tanh", seed=7)
    c = analysis.build_mlp(8, 16, 3, 4, "tanh", seed=8)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a[0].weight, c[0].weight)


@pytest.mark.parametrize(
    ("init", "variance", "zero_bias"),
    [
        ("default", lambda n_in, n_out: 1 / (3 * n_in), False),
        ("lecun", lambda n_in, n_out: 1 / n_in, True),
        ("xavier", lambda n_in, n_out: 2 / (n_in + n_out), True),
        ("he", lambda n_in, n_out: 2 / n_in, True),
    ],
)
def test_init_variances(init, variance, zero_bias):
    model = analysis.build_mlp(400, 600, 1, 10, "relu", init=init)
    layer = model[0]
    n_out, n_in = layer.weight.shape
    measured = layer.weight.var().item()
    assert measured == pytest.approx(variance(n_in, n_out), rel=0.02)
    assert bool((layer.bias == 0).all()) == zero_bias
    if init == "default":
        bound = 1 / math.sqrt(n_in)
        assert layer.weight.abs().max().item() <= bound


# ----------------------------------------------------------------------- gradient norms


def _manual_norms(model, x, y):
    """Weight and pre-activation gradient norms by retain_grad, independently of hooks."""
    h = x
    pre = []
    for module in model:
        h = module(h)
        if isinstance(module, nn.Linear):
            h.retain_grad()
            pre.append(h)
    loss = F.cross_entropy(h, y)
    model.zero_grad()
    loss.backward()
    weight = [m.weight.grad.norm().item() for m in analysis.linear_layers(model)]
    model.zero_grad()
    return weight, [z.grad.norm().item() for z in pre]


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "maxout", "prelu"])
def test_layer_gradient_norms_match_manual_backward(activation):
    x, y = _data()
    model = analysis.build_mlp(8, 12, 4, 3, activation, init="xavier", seed=1)
    norms = analysis.layer_gradient_norms(model, x, y)
    weight, pre = _manual_norms(model, x, y)
    assert norms.weight == pytest.approx(weight, rel=1e-5)
    assert norms.preactivation == pytest.approx(pre, rel=1e-5)
    assert norms.ratio() == pytest.approx(weight[0] / weight[-2], rel=1e-5)
    # no gradient is left behind in .grad, and no hook stays registered
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_layer_gradients_are_the_weight_gradients():
    x, y = _data()
    model = analysis.build_mlp(8, 12, 2, 3, "tanh", seed=2)
    grads = analysis.layer_gradients(model, x, y)
    F.cross_entropy(model(x), y).backward()
    for g, layer in zip(grads, analysis.linear_layers(model), strict=True):
        torch.testing.assert_close(g, layer.weight.grad)


def test_sigmoid_gradient_vanishes_and_relu_with_he_init_does_not():
    x, y = _data(n=128, features=32)
    sigmoid = analysis.build_mlp(32, 32, 20, 3, "sigmoid", init="xavier")
    relu = analysis.build_mlp(32, 32, 20, 3, "relu", init="he")
    # |σ'| ≤ 1/4: over 19 layers the back-propagated gradient shrinks by far more than 1e-6
    assert analysis.layer_gradient_norms(sigmoid, x, y).ratio("preactivation") < 1e-6
    assert 0.1 < analysis.layer_gradient_norms(relu, x, y).ratio("preactivation") < 10


# ------------------------------------------------------------------ unit statistics


def _hand_built_relu_layer():
    """Linear(2, 4) + ReLU whose units 0 and 2 are dead on inputs with x ≥ 0."""
    model = nn.Sequential(nn.Linear(2, 4), actlib.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 0.0], [-2.0, 0.0], [0.0, 1.0]]))
        model[0].bias.copy_(torch.tensor([-0.5, 0.0, -1.0, 0.0]))
    return model


def test_dead_unit_fraction_of_a_hand_built_layer():
    model = _hand_built_relu_layer()
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    assert analysis.dead_unit_fraction(model, x) == [0.5]
    # batching must not change the answer (units alive in different batches)
    assert analysis.dead_unit_fraction(model, x, batch_size=1) == [0.5]
    # unit 1 only fires on examples 1 and 3: dead on the other two
    assert analysis.dead_unit_fraction(model, x[[0, 2]]) == [0.75]


def test_dead_units_masks():
    model = _hand_built_relu_layer()
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    (mask,) = analysis.dead_units(model, x)
    assert mask.tolist() == [True, False, True, False]


def test_dead_unit_fraction_tolerance_counts_leaky_units_stuck_negative():
    model = _hand_built_relu_layer()
    model[1] = actlib.LeakyReLU(0.01)
    x = torch.tensor([[1.0, 0.0], [3.0, 1.0], [0.5, 2.0]])
    assert analysis.dead_unit_fraction(model, x) == [0.0]  # slope 0.01 is not 0
    assert analysis.dead_unit_fraction(model, x, tol=0.01) == [0.5]


def test_activation_statistics_of_a_hand_built_layer():
    model = _hand_built_relu_layer()
    x = torch.tensor([[1.0, 3.0], [2.0, 1.0]])
    (stats,) = analysis.activation_statistics(model, x)
    h = torch.tensor([[0.0, 1.0, 0.0, 3.0], [0.0, 2.0, 0.0, 1.0]])
    assert stats.mean == pytest.approx(h.mean().item())
    assert stats.std == pytest.approx(h.std().item())
    assert stats.zero_derivative == 0.5
    assert stats.saturated == 0.5
    assert stats.derivative_rms == pytest.approx(math.sqrt(0.5))


def test_activation_statistics_sigmoid_derivative_and_saturation():
    model = nn.Sequential(nn.Linear(1, 1), actlib.Sigmoid(), nn.Linear(1, 1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    x = torch.tensor([[0.0], [10.0]])  # σ'(0) = 1/4, σ'(10) ≈ 4.5e-5 (saturated)
    (stats,) = analysis.activation_statistics(model, x)
    s10 = torch.sigmoid(torch.tensor(10.0)).item()
    assert stats.mean == pytest.approx((0.5 + s10) / 2)
    assert stats.derivative_rms == pytest.approx(math.sqrt((0.25**2 + (s10 * (1 - s10)) ** 2) / 2))
    assert stats.saturated == 0.5 and stats.zero_derivative == 0.0


def test_statistics_see_the_positive_mean_of_sigmoid_and_zero_mean_of_tanh():
    x = actlib.seeded_randn(512, 16)
    sigmoid = analysis.build_mlp(16, 32, 5, 3, "sigmoid", init="xavier")
    tanh = analysis.build_mlp(16, 32, 5, 3, "tanh", init="xavier")
    assert all(s.mean > 0.3 for s in analysis.activation_statistics(sigmoid, x))
    assert all(abs(s.mean) < 0.1 for s in analysis.activation_statistics(tanh, x))


# ---------------------------------------------------------------------------- training


def _separable(n=96, seed=0):
    x = actlib.seeded_randn(n, 2, seed=seed)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def test_training_reduces_loss_and_error():
    x, y = _separable()
    model = analysis.build_mlp(2, 16, 2, 2, "relu", init="he")
    curve = analysis.train(model, x, y, epochs=15, lr=0.05, batch_size=16)
    assert len(curve.epoch) == len(curve.loss) == len(curve.error) == 16
    assert curve.epoch[0] == 0 and curve.epoch[-1] == 15
    assert curve.loss[-1] < 0.5 * curve.loss[0]
    assert curve.error[-1] <= 0.05
    assert not curve.diverged
    # the recorded final point is the trained model's loss on the whole set
    loss, error = analysis.evaluate(model, x, y)
    assert (loss, error) == (curve.loss[-1], curve.error[-1])


def test_training_is_reproducible_and_seed_dependent():
    x, y = _separable()

    def run(seed):
        model = analysis.build_mlp(2, 16, 2, 2, "tanh", seed=0)
        return analysis.train(model, x, y, epochs=3, lr=0.1, batch_size=8, seed=seed)

    assert run(0) == run(0)
    assert run(0).loss != run(1).loss  # the data order comes from the seed


def test_evals_per_epoch_test_error_and_adam():
    x, y = _separable()
    model = analysis.build_mlp(2, 8, 1, 2, "gelu")
    curve = analysis.train(
        model,
        x,
        y,
        epochs=2,
        lr=0.01,
        optimizer="adam",
        batch_size=8,
        evals_per_epoch=4,
        x_test=x,
        y_test=y,
    )
    assert curve.epoch == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert curve.test_error == curve.error  # same data as test set
    with pytest.raises(ValueError, match="evals_per_epoch"):
        analysis.train(model, x, y, epochs=1, lr=0.1, batch_size=32, evals_per_epoch=4)
    with pytest.raises(ValueError, match="optimizer"):
        analysis.train(model, x, y, epochs=1, lr=0.1, optimizer="rmsprop")


def test_on_eval_callback_sees_every_evaluation_point():
    x, y = _separable()
    model = analysis.build_mlp(2, 8, 1, 2, "relu")
    seen = []

    def record(m, epoch):
        assert m is model
        seen.append((epoch, analysis.evaluate(m, x, y)[1]))

    curve = analysis.train(
        model, x, y, epochs=2, lr=0.05, batch_size=16, evals_per_epoch=2, on_eval=record
    )
    assert seen == list(zip(curve.epoch, curve.error, strict=True))


def test_divergent_run_stops_and_is_padded_with_nan():
    x, y = _separable()
    # Leaky ReLU cannot die, so no seed can end the run with every unit dead and a
    # finite loss: a step of 1e6 on inputs of 1e3 then overflows for certain.
    model = analysis.build_mlp(2, 8, 2, 2, "leaky_relu", init="he")
    curve = analysis.train(model, x * 1e3, y, epochs=5, lr=1e6, batch_size=16)
    assert curve.diverged
    assert len(curve.loss) == 6 and math.isnan(curve.loss[-1])
    assert analysis.epochs_to_reach(curve, 0.0) is None


def test_epochs_to_reach_and_mean_and_std():
    curve = analysis.TrainingCurve(
        epoch=[0, 1, 2, 3], loss=[2, 1, 0.5, 0.2], error=[0.9, 0.4, 0.2, 0.1]
    )
    assert analysis.epochs_to_reach(curve, 0.25) == 2
    assert analysis.epochs_to_reach(curve, 0.4) == 1
    assert analysis.epochs_to_reach(curve, 0.05) is None
    assert analysis.mean_and_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert analysis.mean_and_std([4.0]) == (4.0, 0.0)


def test_load_digits_tensors():
    pytest.importorskip("sklearn")
    x_train, y_train, x_test, y_test = analysis.load_digits_tensors()
    assert x_train.shape == (1348, 64) and x_test.shape == (449, 64)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert set(y_train.tolist()) == set(range(10))
    torch.testing.assert_close(x_train.mean(0), torch.zeros(64), atol=1e-5, rtol=0)
    again = analysis.load_digits_tensors()
    assert all(
        torch.equal(a, b) for a, b in zip((x_train, y_train, x_test, y_test), again, strict=True)
    )


def test_markdown_table():
    table = analysis.markdown_table(["a", "b"], [[1, "x"], ["2.5", None]])
    assert table == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | None |"
    with pytest.raises(ValueError, match="cells"):
        analysis.markdown_table(["a", "b"], [[1]])


def test_data_and_parameters_never_share_a_random_stream():
    """The same seed and shapes must not make the first weight matrix a copy of the data.

    With one ``Generator().manual_seed(seed)`` for both, ``seeded_randn(512, 128, seed=0)``
    and ``build_mlp(128, ..., init="lecun", seed=0)`` gave W₁ = x[:128]/√128 exactly.
    """
    x = actlib.seeded_randn(512, 128, seed=0)
    weight = analysis.build_mlp(128, 128, 2, 10, "selu", init="lecun", seed=0)[0].weight
    scaled = (weight * math.sqrt(128)).detach()
    for rows in (x[:128], x[128:256]):
        assert not torch.allclose(scaled, rows)
        # Independent draws: the correlation of the two N(0, 1) blocks is about ±1/128.
        correlation = torch.corrcoef(torch.stack([scaled.flatten(), rows.flatten()]))[0, 1]
        assert abs(float(correlation)) < 0.02


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_purpose_has_its_own_stream(seed):
    from actlib.device import PURPOSES, stream_generator, stream_seed

    seeds = {stream_seed(purpose, s) for purpose in PURPOSES for s in range(seed, seed + 3)}
    assert len(seeds) == 3 * len(PURPOSES)
    draws = [torch.randn(64, generator=stream_generator(p, seed)) for p in PURPOSES]
    for i in range(len(draws)):
        for j in range(i + 1, len(draws)):
            assert not torch.equal(draws[i], draws[j])
    with pytest.raises(ValueError, match="purpose"):
        stream_generator("weights", seed)


def test_spread_is_median_and_range():
    s = analysis.spread([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.low, s.high, s.n) == (2.5, 1.0, 10.0, 4)
    assert analysis.spread([5.0]).median == 5.0
    assert str(analysis.spread([1.0, 2.0, 4.0])) == "2 (1–4, n = 3)"
    with pytest.raises(ValueError, match="NaN"):
        analysis.spread([1.0, math.nan])
    with pytest.raises(ValueError):
        analysis.spread([])


def test_train_calls_on_backward_between_backward_and_step_and_on_step_after_it():
    x, y = actlib.seeded_randn(70, 5, seed=3), torch.arange(70) % 3
    plain = analysis.build_mlp(5, 8, 2, 3, "tanh", seed=1)
    hooked = analysis.build_mlp(5, 8, 2, 3, "tanh", seed=1)
    calls = []

    def on_backward(model, step):
        weight = model[0].weight
        assert weight.grad is not None  # the gradient of this step is there ...
        calls.append(("backward", step, weight.detach().clone()))

    def on_step(model, step):
        before = calls[-1]
        assert before[:2] == ("backward", step)
        assert not torch.equal(model[0].weight.detach(), before[2])  # ... and the step is taken
        calls.append(("step", step, None))

    curve = analysis.train(plain, x, y, epochs=2, lr=0.1, batch_size=32, seed=4)
    hooked_curve = analysis.train(hooked, x, y, epochs=2, lr=0.1, batch_size=32, seed=4,
                                  on_backward=on_backward, on_step=on_step)  # fmt: skip
    steps = 2 * math.ceil(70 / 32)
    assert [(kind, step) for kind, step, _ in calls] == [
        (kind, step) for step in range(steps) for kind in ("backward", "step")
    ]
    # The callbacks change nothing: the same curve and weights, bit for bit.
    assert curve.loss == hooked_curve.loss and curve.error == hooked_curve.error
    for a, b in zip(plain.parameters(), hooked.parameters(), strict=True):
        assert torch.equal(a, b)


def test_train_drives_a_training_monitor():
    x, y = actlib.seeded_randn(64, 5, seed=3), torch.arange(64) % 3
    model = analysis.build_mlp(5, 8, 2, 3, "relu", seed=1)
    monitor = actlib.TrainingMonitor(model, every=3, warn_dead=1.0, update_range=(0, math.inf))
    analysis.train(model, x, y, epochs=2, lr=0.05, batch_size=16, seed=0,
                   on_backward=lambda m, s: monitor.after_backward(),
                   on_step=lambda m, s: monitor.after_step())  # fmt: skip
    assert monitor.step == 8
    steps, _ = monitor.history("1", "dead")
    assert steps == [0, 3, 6]
    ratio_steps, ratios = monitor.history("0.weight", "update_to_data")
    assert ratio_steps == [0, 3, 6] and all(r > 0 for r in ratios)
