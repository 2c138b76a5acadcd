"""RReLU in training: random slopes, reproducible, saved for the backward, like torch's.

Out of training RReLU is a leaky ReLU with the mean slope, which the catalog's reference
tests compare with ``F.rrelu`` exactly; here is what only training mode does.
"""

import pytest
import torch
import torch.nn.functional as F

import actlib


def _draw(x, seed, **kwargs):
    return actlib.rrelu(x, training=True, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_slopes_are_reproducible_and_within_the_bounds():
    x = -torch.rand(10_000, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) - 0.5
    a, b, c = _draw(x, 0), _draw(x, 0), _draw(x, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    slopes = a / x  # the default bounds 1/8 and 1/3
    assert slopes.min() >= 1 / 8 - 1e-12 and slopes.max() <= 1 / 3 + 1e-12
    slopes = _draw(x, 0, lower=0.1, upper=0.3) / x
    assert slopes.min() >= 0.1 - 1e-12 and slopes.max() <= 0.3 + 1e-12
    # U(0.1, 0.3): mean 0.2, standard deviation 0.2/√12 ≈ 0.058; the mean of 10⁴ draws has
    # a standard error of 6e-4, so 0.005 is eight of them.
    assert abs(slopes.mean().item() - 0.2) < 5e-3
    assert abs(slopes.std().item() - 0.2 / 12**0.5) < 5e-3


def test_positive_inputs_pass_unchanged():
    x = torch.linspace(0.01, 5, 50)
    assert torch.equal(_draw(x, 0), x)


def test_torch_draws_from_the_same_distribution():
    """torch's slopes (y/x in F.rrelu's training mode) and actlib's lie in the same range."""
    x = -torch.linspace(0.5, 2, 20_000, dtype=torch.float64)
    torch.manual_seed(0)
    theirs = F.rrelu(x, 0.1, 0.3, training=True) / x
    ours = _draw(x, 0, lower=0.1, upper=0.3) / x
    for slopes in (ours, theirs):
        assert 0.1 <= slopes.min() and slopes.max() <= 0.3
    assert abs(ours.mean().item() - theirs.mean().item()) < 5e-3


def test_backward_uses_the_slopes_of_the_forward():
    """Forward x·a and backward with a, the slopes drawn as documented, against torch's
    own backward given the same noise (``aten.rrelu_with_noise_backward``)."""
    x = torch.linspace(-3, 3, 61, dtype=torch.float64).requires_grad_()
    y = _draw(x, 3)
    # The documented draw: U(lower, upper) for every element from the generator, kept where x ≤ 0.
    drawn = torch.empty(61, dtype=torch.float64).uniform_(
        1 / 8, 1 / 3, generator=torch.Generator().manual_seed(3)
    )
    noise = torch.where(x.detach() <= 0, drawn, 1.0)
    torch.testing.assert_close(y, x.detach() * noise, rtol=0, atol=0)
    upstream = torch.linspace(0.5, 1.5, 61, dtype=torch.float64)
    (grad,) = torch.autograd.grad(y, x, upstream)
    expected = torch.ops.aten.rrelu_with_noise_backward(
        upstream, x.detach(), noise, 1 / 8, 1 / 3, True, False
    )
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)
    # A second backward of the same output uses the same saved slopes: no fresh draw.
    y = _draw(x, 3)
    (first,) = torch.autograd.grad(y, x, upstream, retain_graph=True)
    (second,) = torch.autograd.grad(y, x, upstream)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    away_from_the_kink = torch.linspace(-2.95, 2.95, 60, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x_: _draw(x_, 5), (away_from_the_kink,))


def test_a_cpu_generator_gives_the_same_slopes_on_every_device(device):
    x = torch.linspace(-3, 3, 61)
    ours = _draw(x.to(device), 4)
    torch.testing.assert_close(ours.cpu(), _draw(x, 4), rtol=0, atol=0)


def test_eval_is_the_mean_slope_exactly_like_torch(dtype):
    x = torch.linspace(-3, 3, 61).to(dtype)
    torch.testing.assert_close(actlib.rrelu(x, 0.1, 0.3), F.rrelu(x, 0.1, 0.3), rtol=0, atol=0)
    torch.testing.assert_close(actlib.rrelu(x), F.leaky_relu(x, (1 / 8 + 1 / 3) / 2), rtol=0, atol=0)


def test_module_follows_training_mode():
    module = actlib.RReLU(0.1, 0.3)
    x = -torch.linspace(0.5, 2, 200)
    torch.manual_seed(0)
    first = module(x)
    second = module(x)
    assert not torch.equal(first, second)  # training: a fresh draw per call
    module.eval()
    torch.testing.assert_close(module(x), 0.2 * x, rtol=1e-6, atol=0)


def test_in_place_in_training():
    x = -torch.linspace(0.5, 2, 20)
    expected = _draw(x.clone(), 2)
    returned = actlib.rrelu(x, training=True, inplace=True, generator=torch.Generator().manual_seed(2))
    assert returned is x and torch.equal(x, expected)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lower": 0.5, "upper": 0.1}, ValueError, r"lower \(0.5\) cannot be greater than upper"),
        ({"upper": float("inf")}, ValueError, "upper must be finite"),
        ({"training": "yes"}, TypeError, "training must be True or False"),
        ({"generator": torch.Generator()}, ValueError, "generator is only used in training"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        actlib.rrelu(torch.ones(3), **kwargs)


def test_different_randomness_under_vmap():
    x = -torch.rand(3, 400, generator=torch.Generator().manual_seed(0)) - 0.5
    y = torch.func.vmap(lambda t: actlib.rrelu(t, training=True), randomness="different")(x)
    slopes = y / x
    assert not torch.equal(slopes[0], slopes[1])  # each row draws its own slopes
    assert slopes.min() >= 1 / 8 and slopes.max() <= 1 / 3


def test_generator_must_be_a_generator():
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        actlib.rrelu(torch.ones(3), training=True, generator=5)
