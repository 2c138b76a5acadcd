"""Tests for actlib.sampled: NegativeSampling and SampledSoftmax.

The references below are written from the formulas with explicit Python loops over
float64 numbers (math.exp, math.log), independently of the layers' tensor code.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import actlib
from actlib.sampled import Candidates, NegativeSampling, SampledSoftmax


def zipf_counts(num_classes: int) -> torch.Tensor:
    return (1e6 / torch.arange(1, num_classes + 1)).round()


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make(cls, num_classes=12, in_features=5, seed=0, dtype=torch.float64, **kwargs):
    torch.manual_seed(seed)
    return cls(in_features, num_classes, zipf_counts(num_classes), dtype=dtype, **kwargs)


def batch(num_classes=12, in_features=5, size=6, seed=1, dtype=torch.float64):
    g = generator(seed)
    x = torch.randn(size, in_features, generator=g, dtype=dtype)
    return x, torch.randint(0, num_classes, (size,), generator=g)


def score(layer, x_row, c):
    """u_c · x + b_c as a Python float, by an explicit loop."""
    u = layer.weight[c].tolist()
    s = sum(a * b for a, b in zip(u, x_row.tolist(), strict=True))
    return s + (layer.bias[c].item() if layer.bias is not None else 0.0)


def log_sigmoid(z):
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


# -- the loss against the formula ---------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("remove", [True, False])
def test_negative_sampling_loss_is_the_sgns_formula(bias, remove):
    layer = make(NegativeSampling, bias=bias, remove_accidental_hits=remove, num_negatives=4)
    x, y = batch()
    negatives = layer.sample((6, 4), generator(2))
    negatives[0, 1] = y[0]  # an accidental hit, for sure
    out = layer(x, y, negatives=negatives)
    expected = []
    for b in range(6):
        loss = -log_sigmoid(score(layer, x[b], int(y[b])))
        for n in negatives[b].tolist():
            if remove and n == int(y[b]):
                continue  # word2vec: `if (target == word) continue;`
            loss -= log_sigmoid(-score(layer, x[b], n))
        expected.append(loss)
    expected = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(out.output, -expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.loss, expected.mean(), rtol=1e-12, atol=1e-12)


def _sampled_softmax_reference(layer, x, y, classes, log_counts, remove):
    """-s_y + log(e^{s_y} + Σ_{k: n_k ≠ y} e^{s_k - log E_k}), loop by loop."""
    losses = []
    for b in range(len(y)):
        s_y = score(layer, x[b], int(y[b]))
        total = math.exp(s_y)
        for c, log_count in zip(classes.tolist(), log_counts, strict=True):
            if remove and c == int(y[b]):
                continue
            total += math.exp(score(layer, x[b], c) - log_count)
        losses.append(math.log(total) - s_y)
    return torch.tensor(losses, dtype=torch.float64)


@pytest.mark.parametrize("remove", [True, False])
def test_sampled_softmax_loss_with_a_hand_computed_log_q(remove):
    frequencies = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # Q(c) = (c + 1) / 36
    torch.manual_seed(0)
    layer = SampledSoftmax(5, 8, frequencies, num_samples=6, remove_accidental_hits=remove)
    layer.double()
    x, y = batch(num_classes=8)
    candidates = layer.sample(generator(3))
    classes = candidates.classes.clone()
    classes[2] = y[0]  # an accidental hit, for sure
    hand = [math.log(6 * (c + 1) / 36) for c in classes.tolist()]
    out = layer(x, y, samples=classes)
    expected = _sampled_softmax_reference(layer, x, y, classes, hand, remove)
    torch.testing.assert_close(out.output, -expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.loss, expected.mean(), rtol=1e-12, atol=1e-12)
    # The Candidates that sample() returns carry the same correction.
    hand = [math.log(6 * (c + 1) / 36) for c in candidates.classes.tolist()]
    hand = torch.tensor(hand, dtype=torch.float64)
    torch.testing.assert_close(candidates.log_expected_count, hand, rtol=0, atol=1e-12)
    assert candidates.num_tries == 6


def test_sampled_softmax_without_replacement_uses_the_inclusion_probability():
    frequencies = [float(c + 1) for c in range(10)]  # Q(c) = (c + 1) / 55
    torch.manual_seed(0)
    layer = SampledSoftmax(5, 10, frequencies, num_samples=6, replacement=False).double()
    candidates = layer.sample(generator(4))
    classes = candidates.classes.tolist()
    assert len(set(classes)) == 6
    tries = candidates.num_tries
    assert tries >= 6
    hand = [math.log(1 - (1 - (c + 1) / 55) ** tries) for c in classes]
    torch.testing.assert_close(candidates.log_expected_count,
                               torch.tensor(hand, dtype=torch.float64), rtol=0, atol=1e-12)  # fmt: skip
    x, y = batch(num_classes=10)
    out = layer(x, y, samples=candidates)
    expected = _sampled_softmax_reference(layer, x, y, candidates.classes, hand, True)
    torch.testing.assert_close(out.loss, expected.mean(), rtol=1e-12, atol=1e-12)


def test_unique_sampler_keeps_the_first_distinct_draws_in_order():
    """Draws with replacement, rejects repeats: the same classes, in order, as a loop."""
    layer = make(SampledSoftmax, num_classes=6, num_samples=4, replacement=False)
    candidates = layer.sample(generator(5))
    draws = layer._draw(8, generator(5)).tolist()  # the sampler's first block of draws
    seen, tries = [], 0
    for tries, c in enumerate(draws, start=1):  # noqa: B007
        if c not in seen:
            seen.append(c)
        if len(seen) == 4:
            break
    assert len(seen) == 4  # within the sampler's first block of 2 * 4 draws, for this seed
    assert candidates.classes.tolist() == seen and candidates.num_tries == tries


def test_every_sampled_class_a_hit_leaves_the_target_alone():
    layer = make(SampledSoftmax, num_samples=3)
    x, y = batch(size=1)
    out = layer(x, y, samples=y.repeat(3))
    assert out.loss.item() == 0.0  # log(e^{s_y}) - s_y


# -- gradients ------------------------------------------------------------------------


def _functional(layer, x, y, **fixed):
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def loss(x, *params):
        values = dict(zip(names, params, strict=True))
        return torch.func.functional_call(layer, values, (x, y), fixed).output

    return loss, (x.clone().requires_grad_(), *params)


@pytest.mark.parametrize("kind", ["negative sampling", "sampled softmax", "unique"])
def test_gradcheck(kind):
    """Dense gradients; the sparse ones are compared with these in the next test."""
    x, y = batch()
    if kind == "negative sampling":
        layer = make(NegativeSampling, bias=True)
        fixed = {"negatives": layer.sample((6, 5), generator(6))}
        fixed["negatives"][1, 0] = y[1]
    else:
        layer = make(SampledSoftmax, num_samples=5, replacement=kind == "sampled softmax")
        fixed = {"samples": layer.sample(generator(6))}
    function, inputs = _functional(layer, x, y, **fixed)
    assert gradcheck(function, inputs)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_sparse_gradients_equal_dense_ones(cls):
    grads = []
    for sparse in (False, True):
        layer = make(cls, num_classes=100, in_features=8, sparse=sparse, bias=True)
        x, y = batch(num_classes=100, in_features=8, size=32)
        x.requires_grad_()
        layer(x, y, generator=generator(7)).loss.backward()
        weight, bias = layer.embedding.weight.grad, layer.bias_embedding.weight.grad
        if sparse:
            assert weight.is_sparse and bias.is_sparse
            weight, bias = weight.to_dense(), bias.to_dense()
        grads.append((x.grad, weight, bias))
    for dense, sparse in zip(*grads, strict=True):
        torch.testing.assert_close(sparse, dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_sparse_parameters_are_sparse_embeddings_as_ddp_expects(cls):
    layer = make(cls, sparse=True, bias=True)
    embeddings = [m for m in layer.modules() if isinstance(m, torch.nn.Embedding)]
    assert len(embeddings) == 2 and all(m.sparse for m in embeddings)
    owned = {id(p) for m in embeddings for p in m.parameters()}
    assert {id(p) for p in layer.parameters()} == owned
    assert [name for name, _ in layer.named_parameters()] == [
        "embedding.weight",
        "bias_embedding.weight",
    ]
    layer.sparse = False  # one switch for both tables
    assert not layer.embedding.sparse and not layer.bias_embedding.sparse


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_halves_of_a_batch_add_up_to_the_whole_batch(cls):
    """What DDP does with two ranks: the mean of the halves' gradients is the whole's."""
    layer = make(cls, bias=True)
    x, y = batch(size=8)
    if cls is NegativeSampling:
        negatives = layer.sample((8, 5), generator(8))
        parts = [{"negatives": negatives[:4]}, {"negatives": negatives[4:]}]
        whole = {"negatives": negatives}
    else:
        samples = layer.sample(generator(8))
        parts = [{"samples": samples}] * 2
        whole = {"samples": samples}
    layer(x, y, **whole).loss.backward()
    reference = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    for rows, fixed in zip((slice(0, 4), slice(4, 8)), parts, strict=True):
        (layer(x[rows], y[rows], **fixed).loss / 2).backward()
    for p, expected in zip(layer.parameters(), reference, strict=True):
        torch.testing.assert_close(p.grad, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_a_device_draws_the_same_classes_as_the_cpu(cls, device):
    """Draws are made on the CPU generator and moved: the same samples on every device."""
    layer = make(cls, num_classes=500, in_features=16, bias=True, sparse=True)
    x, y = batch(num_classes=500, in_features=16, size=64)
    cpu = layer(x, y, generator=generator(24))
    cpu.loss.backward()
    cpu_grad = layer.embedding.weight.grad.to_dense()
    moved = make(cls, num_classes=500, in_features=16, bias=True, sparse=True).to(device)
    out = moved(x.to(device), y.to(device), generator=generator(24))
    out.loss.backward()
    torch.testing.assert_close(out.output.cpu(), cpu.output, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(moved.embedding.weight.grad.to_dense().cpu(), cpu_grad,
                               rtol=1e-10, atol=1e-10)  # fmt: skip
    log_prob = moved.log_prob(x.to(device))
    assert torch.equal(moved.predict(x.to(device)), log_prob.argmax(-1))
    assert torch.equal(moved.topk(x.to(device), 5).indices, log_prob.topk(5).indices)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_float32_matches_float64(cls):
    layer = make(cls, num_classes=50, in_features=16, bias=True)
    x, y = batch(num_classes=50, in_features=16, size=64)
    reference = layer(x, y, generator=generator(9)).output
    output = layer.float()(x.float(), y, generator=generator(9)).output
    assert output.dtype == torch.float32
    torch.testing.assert_close(output.double(), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_a_seeded_generator_reproduces_the_samples(cls):
    layer = make(cls)
    x, y = batch()
    first = layer(x, y, generator=generator(10)).output
    assert torch.equal(layer(x, y, generator=generator(10)).output, first)
    assert not torch.equal(layer(x, y, generator=generator(11)).output, first)
    if cls is NegativeSampling:
        fixed = {"negatives": layer.sample((6, layer.num_negatives), generator(10))}
    else:
        fixed = {"samples": layer.sample(generator(10))}
    assert torch.equal(layer(x, y, **fixed).output, first)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_reductions_and_batch_shapes(cls):
    layer = make(cls)
    x = torch.randn(2, 3, 5, generator=generator(12), dtype=torch.float64)
    y = torch.randint(0, 12, (2, 3), generator=generator(13))
    outputs = {}
    for reduction in ("mean", "sum", "none"):
        layer.reduction = reduction
        outputs[reduction] = layer(x, y, generator=generator(14))
    assert outputs["none"].output.shape == (2, 3) and outputs["none"].loss.shape == (2, 3)
    torch.testing.assert_close(outputs["none"].loss, -outputs["none"].output)
    torch.testing.assert_close(outputs["sum"].loss, outputs["none"].loss.sum())
    torch.testing.assert_close(outputs["mean"].loss, outputs["none"].loss.mean())
    assert layer.log_prob(x).shape == (2, 3, 12) and layer.predict(x).shape == (2, 3)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_empty_batch_gives_empty_outputs_and_nan_loss_like_cross_entropy(cls):
    layer = make(cls)
    x = torch.randn(0, 5, dtype=torch.float64, requires_grad=True)
    out = layer(x, torch.zeros(0, dtype=torch.int64))
    assert out.output.shape == (0,) and torch.isnan(out.loss)
    out.loss.backward()
    assert x.grad.shape == (0, 5)
    assert layer.log_prob(x).shape == (0, 12) and layer.predict(x).shape == (0,)
    assert layer.topk(x, 3).indices.shape == (0, 3)


# -- exact evaluation -------------------------------------------------------------------


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
@pytest.mark.parametrize("bias", [False, True])
def test_log_prob_is_the_full_log_softmax(cls, bias):
    layer = make(cls, num_classes=300, in_features=8, bias=bias)
    x, _ = batch(num_classes=300, in_features=8, size=20)
    log_prob = layer.log_prob(x)
    logits = x @ layer.embedding.weight.t()
    if bias:
        logits = logits + layer.bias_embedding.weight.t()
    torch.testing.assert_close(log_prob, torch.log_softmax(logits, dim=-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_prob.exp().sum(-1), torch.ones(20, dtype=torch.float64))
    assert torch.equal(layer.predict(x), log_prob.argmax(-1))
    top = layer.topk(x, 5)
    expected = log_prob.topk(5, dim=-1)
    assert torch.equal(top.indices, expected.indices)
    torch.testing.assert_close(top.values, expected.values, rtol=1e-12, atol=1e-12)


def test_topk_works_in_blocks(monkeypatch):
    monkeypatch.setattr(actlib.sampled, "_SCORE_BLOCK", 7 * 300)  # 7 rows per block
    layer = make(SampledSoftmax, num_classes=300, in_features=8)
    x, _ = batch(num_classes=300, in_features=8, size=20)
    assert torch.equal(layer.topk(x, 3).indices, layer.log_prob(x).topk(3, dim=-1).indices)


# -- statistics: the sampler and the estimator ------------------------------------------


def test_noise_distribution_is_the_unigram_to_the_three_quarters():
    counts = zipf_counts(30)
    layer = NegativeSampling(4, 30, counts)
    q = [c**0.75 for c in counts.tolist()]
    q = [v / sum(q) for v in q]
    torch.testing.assert_close(layer.sampling_probs, torch.tensor(q, dtype=torch.float64),
                               rtol=1e-12, atol=0)  # fmt: skip
    draws = 300_000
    observed = torch.bincount(layer.sample((draws,), generator(15)), minlength=30).double()
    expected = draws * torch.tensor(q, dtype=torch.float64)
    chi_square = ((observed - expected) ** 2 / expected).sum().item()
    # 29 degrees of freedom: mean 29, sd 7.6; 80 is beyond the 1e-6 tail.
    assert chi_square < 80
    # ... and the unigram itself (power 1) is a different distribution, rejected clearly.
    unigram = draws * counts.double() / counts.sum()
    assert ((observed - unigram) ** 2 / unigram).sum().item() > 1000


def test_zero_frequency_classes_are_never_drawn_as_negatives():
    layer = NegativeSampling(4, 5, [3.0, 0.0, 1.0, 0.0, 2.0])
    draws = layer.sample((10_000,), generator(16))
    assert set(draws.unique().tolist()) == {0, 2, 4}


def test_uniform_and_power_zero():
    uniform = SampledSoftmax(4, 7)
    torch.testing.assert_close(uniform.sampling_probs, torch.full((7,), 1 / 7, dtype=torch.float64))
    flat = NegativeSampling(4, 4, [5.0, 0.0, 1.0, 2.0], power=0)
    torch.testing.assert_close(
        flat.sampling_probs, torch.tensor([1 / 3, 0, 1 / 3, 1 / 3], dtype=torch.float64)
    )


def test_unique_inclusion_probability_is_tensorflows_approximation_for_a_flat_proposal():
    """1 - (1 - Q)^T, TensorFlow's formula, against how often each class is really drawn.

    It is an approximation (T is random and depends on the set): over 4000 draws of 16
    of 40 Zipfian classes it was off by at most 0.024 in probability, and its sum fell
    short of 16 by 1.4 %; the Monte Carlo noise of the empirical frequency is about 0.01.
    For a skewed proposal it is looser (the next test).
    """
    layer = SampledSoftmax(4, 40, zipf_counts(40), num_samples=16, replacement=False).double()
    log1p_q = torch.log1p(-layer.sampling_probs)
    draws, g = 1500, generator(23)
    included = torch.zeros(40, dtype=torch.float64)
    predicted = torch.zeros(40, dtype=torch.float64)
    for _ in range(draws):
        candidates = layer.sample(g)
        assert candidates.classes.unique().numel() == 16
        included[candidates.classes] += 1 / draws
        predicted += -torch.expm1(candidates.num_tries * log1p_q) / draws
    assert (included - predicted).abs().max() < 0.07
    assert 0.95 * 16 < predicted.sum() < 16


def test_sampled_softmax_is_a_consistent_estimator_of_loss_and_gradient():
    """Averaged over draws, loss and gradient approach the full softmax's as S grows."""
    num_classes, dim = 40, 6
    torch.manual_seed(0)
    layer = SampledSoftmax(dim, num_classes, zipf_counts(num_classes), num_samples=1).double()
    with torch.no_grad():
        layer.embedding.weight.mul_(3.0)  # spread-out scores, as after some training
    x, y = batch(num_classes=num_classes, in_features=dim, size=4, seed=17)
    full_loss = F.cross_entropy(layer.logits(x), y)
    (full_grad,) = torch.autograd.grad(full_loss, layer.embedding.weight)
    g = generator(18)
    loss_error, grad_error = {}, {}
    for num_samples in (2, 16, 256):
        layer.num_samples = num_samples
        losses, grads = [], []
        for _ in range(200):
            loss = layer(x, y, generator=g).loss
            grads.append(torch.autograd.grad(loss, layer.embedding.weight)[0])
            losses.append(loss.item())
        mean_loss = sum(losses) / len(losses)
        loss_error[num_samples] = abs(mean_loss - full_loss.item()) / full_loss.item()
        mean_grad = torch.stack(grads).mean(0)
        grad_error[num_samples] = ((mean_grad - full_grad).norm() / full_grad.norm()).item()
    # Relative errors of the mean over 200 draws (bias plus Monte Carlo noise). Over six
    # seeds of this set-up they were 0.16-0.45 (loss) and 0.32-0.76 (gradient) at S = 2,
    # 0.17-0.62 (gradient) at S = 16, and at most 0.018 and 0.10 at S = 256.
    assert loss_error[256] < 0.03 < loss_error[2]
    assert grad_error[256] < 0.15 and grad_error[256] < 0.5 * grad_error[16]


# -- training ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
@pytest.mark.parametrize("sparse", [False, True])
def test_training_learns_structured_data(cls, sparse):
    num_classes, dim = 64, 32
    data = generator(19)
    prototypes = torch.randn(num_classes, dim, generator=data)
    torch.manual_seed(0)
    kwargs = {"num_negatives": 5} if cls is NegativeSampling else {"num_samples": 16}
    layer = cls(dim, num_classes, None, sparse=sparse, **kwargs)
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    order = generator(20)
    for _ in range(60):
        target = torch.randint(0, num_classes, (128,), generator=data)
        x = prototypes[target] + 1.0 * torch.randn(128, dim, generator=data)
        optimizer.zero_grad()
        layer(x, target, generator=order).loss.backward()
        optimizer.step()
    target = torch.randint(0, num_classes, (1000,), generator=data)
    x = prototypes[target] + 1.0 * torch.randn(1000, dim, generator=data)
    # After 60 steps: 0.80 (negative sampling) and 0.99 (sampled softmax); chance is 1/64.
    assert (layer.predict(x) == target).double().mean() > 0.6


def test_state_dict_carries_the_sampling_table_and_dtype_casts_leave_it():
    layer = make(NegativeSampling)
    units = layer.sampling_units.clone()
    layer.float()
    assert layer.sampling_units.dtype == torch.int64 and torch.equal(layer.sampling_units, units)
    other = NegativeSampling(5, 12, None, dtype=torch.float32)
    other.load_state_dict(layer.state_dict())
    assert torch.equal(other.sampling_units, units) and torch.equal(other.weight, layer.weight)


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: NegativeSampling(4, 3, [1.0, 2.0]), ValueError, r"one value per class.*\(3,\)"),
        (lambda: NegativeSampling(4, 3, [1.0, -2.0, 3.0]), ValueError, "non-negative"),
        (lambda: NegativeSampling(4, 3, [1.0, float("nan"), 3.0]), ValueError, "finite"),
        (lambda: NegativeSampling(4, 3, [1.0, float("inf"), 3.0]), ValueError, "finite"),
        (lambda: NegativeSampling(4, 3, [0.0, 0.0, 0.0]), ValueError, "not all be zero"),
        (lambda: NegativeSampling(4, 3, ["a", "b", "c"]), TypeError, "frequencies must be"),
        (lambda: NegativeSampling(4, 3, torch.ones(3, dtype=torch.bool)), TypeError, "real"),
        (lambda: NegativeSampling(4, 3, None, num_negatives=0), ValueError, "num_negatives"),
        (lambda: NegativeSampling(4, 3, None, num_negatives=2.0), TypeError, "num_negatives"),
        (lambda: NegativeSampling(4, 3, None, power=-1), ValueError, "power"),
        (lambda: NegativeSampling(4, 3, None, power="1"), TypeError, "power"),
        (lambda: NegativeSampling(0, 3, None), ValueError, "in_features must be at least 1"),
        (lambda: NegativeSampling(4.0, 3, None), TypeError, "in_features must be an int"),
        (lambda: NegativeSampling(4, 1, None), ValueError, "num_classes must be at least 2"),
        (lambda: NegativeSampling(4, 3, None, reduction="avg"), ValueError, "reduction"),
        (lambda: NegativeSampling(4, 3, None, sparse=1), TypeError, "sparse must be a bool"),
        (lambda: SampledSoftmax(4, 3, [1.0, 0.0, 3.0]), ValueError, "positive.*pseudo-count"),
        (lambda: SampledSoftmax(4, 3, [1.0, 2.0, 3.0, 4.0]), ValueError, "one value per class"),
        (lambda: SampledSoftmax(4, 8, num_samples=0), ValueError, "num_samples"),
        (lambda: SampledSoftmax(4, 2.5), TypeError, "num_classes must be an int"),
        (
            lambda: SampledSoftmax(4, 8, num_samples=8, replacement=False),
            ValueError,
            "without replacement num_samples must be below num_classes",
        ),
    ],
)
def test_constructor_rejects_bad_arguments(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_with_replacement_num_samples_may_exceed_num_classes():
    layer = SampledSoftmax(4, 3, num_samples=10)
    assert layer.sample(generator(21)).classes.shape == (10,)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
@pytest.mark.parametrize(
    ("x", "target", "error", "message"),
    [
        (torch.randn(4, 5), torch.tensor([0, 1, 2, 12]), ValueError, r"\[0, 11\].*\[0, 12\]"),
        (torch.randn(4, 5), torch.tensor([0, -1, 2, 3]), ValueError, r"\[0, 11\]"),
        (torch.randn(4, 5), torch.tensor([0.0, 1, 2, 3]), TypeError, "integer class indices"),
        (torch.randn(4, 5), torch.tensor([0, 1, 1, 0]).bool(), TypeError, "integer class"),
        (torch.randn(4, 5), [0, 1, 2, 3], TypeError, "target must be a torch.Tensor"),
        (torch.randn(4, 6), torch.tensor([0, 1, 2, 3]), ValueError, "in_features=5"),
        (torch.randn(4, 5), torch.tensor([0, 1, 2]), ValueError, r"\(4,\).*\(3,\) differ"),
        (torch.ones(4, 5, dtype=torch.int64), torch.tensor([0, 1, 2, 3]), TypeError, "floating"),
        (
            torch.randn(4, 5).double(),
            torch.tensor([0, 1, 2, 3]),
            TypeError,
            "dtype torch.float64 differs",
        ),
        ([[0.0] * 5] * 4, torch.tensor([0, 1, 2, 3]), TypeError, "input must be a torch.Tensor"),
    ],
)
def test_forward_rejects_bad_input(cls, x, target, error, message):
    layer = cls(5, 12, None)
    with pytest.raises(error, match=message):
        layer(x, target)


@pytest.mark.parametrize(
    ("negatives", "error", "message"),
    [
        (torch.zeros(4, dtype=torch.int64), ValueError, r"\(\*batch, K\).*\(4,\)"),
        (torch.zeros(3, 2, dtype=torch.int64), ValueError, r"batch shape \(4,\)"),
        (torch.zeros(4, 0, dtype=torch.int64), ValueError, "K >= 1"),
        (torch.full((4, 2), 12), ValueError, r"negatives values must lie in \[0, 11\]"),
        (torch.zeros(4, 2), TypeError, "negatives must hold integer class indices"),
    ],
)
def test_bad_negatives_are_named(negatives, error, message):
    layer = NegativeSampling(5, 12, None)
    with pytest.raises(error, match=message):
        layer(torch.randn(4, 5), torch.zeros(4, dtype=torch.int64), negatives=negatives)


@pytest.mark.parametrize(
    ("samples", "replacement", "error", "message"),
    [
        (torch.zeros(2, 2, dtype=torch.int64), True, ValueError, "1-D"),
        (torch.zeros(0, dtype=torch.int64), True, ValueError, "at least one class"),
        (torch.tensor([3, 12]), True, ValueError, r"samples values must lie in \[0, 11\]"),
        (torch.tensor([3.0, 1.0]), True, TypeError, "integer class indices"),
        (torch.tensor([3, 1]), False, ValueError, "needs the Candidates from .sample()"),
        (Candidates(torch.tensor([3, 1]), torch.zeros(3), 2), True, ValueError, "shaped like"),
        (
            Candidates(torch.tensor([3, 1]), torch.tensor([0.0, math.nan]), 2),
            True,
            ValueError,
            "log_expected_count must be finite",
        ),
        (
            Candidates(torch.tensor([3, 1]), torch.tensor([0.0, -math.inf]), 2),
            False,
            ValueError,
            "log_expected_count must be finite",
        ),
        (
            Candidates(torch.tensor([3, 1]), torch.tensor([0, 1]), 2),
            True,
            TypeError,
            "log_expected_count must be floating point",
        ),
        (
            Candidates(torch.tensor([1, 3, 1, 2]), torch.zeros(4), 4),
            False,
            ValueError,
            "repeat a class",
        ),
    ],
)
def test_bad_samples_are_named(samples, replacement, error, message):
    layer = SampledSoftmax(5, 12, num_samples=4, replacement=replacement)
    with pytest.raises(error, match=message):
        layer(torch.randn(4, 5), torch.zeros(4, dtype=torch.int64), samples=samples)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_bad_generators_and_k_are_named(cls):
    layer = cls(5, 12, None)
    x, y = torch.randn(4, 5), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        layer(x, y, generator=0)
    with pytest.raises(TypeError, match="k must be an int"):
        layer.topk(x, 2.0)
    with pytest.raises(ValueError, match=r"k must lie in \[1, 12\]"):
        layer.topk(x, 13)
    with pytest.raises(ValueError, match="meta device"):
        layer(x, torch.zeros(4, dtype=torch.int64, device="meta"))


def test_unique_sampler_gives_up_on_a_degenerate_proposal(monkeypatch):
    monkeypatch.setattr(actlib.sampled, "_MAX_UNIQUE_DRAWS", 1000)
    layer = SampledSoftmax(4, 5, [1e15, 1e15, 1.0, 1.0, 1.0], num_samples=4, replacement=False)
    with pytest.raises(RuntimeError, match="distinct classes"):
        layer.sample(generator(22))


def test_exported_from_actlib():
    assert actlib.NegativeSampling is NegativeSampling
    assert actlib.SampledSoftmax is SampledSoftmax


# -- regressions from the adversarial review ------------------------------------------


def test_unique_inclusion_probability_is_loose_for_a_skewed_proposal():
    """Q halving from class to class, S = 4 of 8: the formula is off by about 0.12.

    The docstring of SampledSoftmax states this size; the Monte Carlo noise over 4000
    sets is below 0.01.
    """
    layer = SampledSoftmax(4, 8, 2.0 ** -torch.arange(8.0), num_samples=4, replacement=False)
    log1p_q = torch.log1p(-layer.sampling_probs)
    draws, g = 4000, generator(1)
    included = torch.zeros(8, dtype=torch.float64)
    predicted = torch.zeros(8, dtype=torch.float64)
    for _ in range(draws):
        candidates = layer.sample(g)
        included[candidates.classes] += 1 / draws
        predicted += -torch.expm1(candidates.num_tries * log1p_q) / draws
    error = (included - predicted).abs().max()
    assert 0.08 < error < 0.16


@pytest.mark.parametrize(
    ("frequencies", "power", "expected"),
    [
        ([1e308, 1e308], 1.0, [0.5, 0.5]),  # the sum overflowed: NaN probabilities
        ([1e308, 1e308], 0.75, [0.5, 0.5]),
        ([1e-200, 1e-200], 2.0, [0.5, 0.5]),  # the squares underflowed to 0
        ([1e-310, 3e-310], 1.0, [0.25, 0.75]),  # subnormal frequencies
        ([1e300, 1.0], 2.0, [1 - 2.0**-53, 2.0**-53]),  # 1e600 overflowed; class 1 keeps a unit
    ],
)
def test_extreme_finite_frequencies_give_a_finite_sampling_table(frequencies, power, expected):
    layer = NegativeSampling(3, 2, frequencies, power=power)
    probs = layer.sampling_probs
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(
        probs, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0
    )
    drawn = layer.sample((64,), generator(0))
    assert ((drawn >= 0) & (drawn < 2)).all()


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_deferred_initialisation_on_meta_rebuilds_the_sampling_table(cls):
    counts = torch.arange(1.0, 7.0)
    reference = cls(4, 6, counts)
    layer = cls(4, 6, counts, device="meta")
    layer.to_empty(device="cpu")  # uninitialised memory, then the table filled in
    assert torch.equal(layer.sampling_units, reference.sampling_units)
    layer.reset_parameters()
    assert torch.equal(layer.sampling_units, reference.sampling_units)
    assert torch.equal(layer.sampling_cdf, torch.cumsum(reference.sampling_units, 0))
    x, y = torch.randn(3, 4), torch.tensor([0, 2, 5])
    assert torch.isfinite(layer(x, y, generator=generator(0)).loss)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda sd: sd["sampling_units"].__setitem__(0, -5), "non-negative"),
        (lambda sd: sd["sampling_cdf"].__setitem__(-1, 0), "running sum"),
        (lambda sd: sd["sampling_cdf"].__setitem__(2, 10**18), "running sum"),
        (lambda sd: sd["sampling_units"].zero_(), "(zero|positive)"),
    ],
)
def test_load_state_dict_rejects_a_corrupt_sampling_table(cls, edit, message):
    layer = cls(4, 6, torch.arange(1.0, 7.0))
    units, cdf = layer.sampling_units.clone(), layer.sampling_cdf.clone()
    state = {key: value.clone() for key, value in layer.state_dict().items()}
    edit(state)
    with pytest.raises(RuntimeError, match=f"invalid sampling table.*{message}"):
        layer.load_state_dict(state)
    assert torch.equal(layer.sampling_units, units) and torch.equal(layer.sampling_cdf, cdf)
    layer.reset_parameters()  # parameters only: the table stays the valid one
    assert torch.equal(layer.sampling_units, units) and torch.equal(layer.sampling_cdf, cdf)


def test_sampled_softmax_rejects_a_loaded_table_that_never_draws_a_class():
    layer = SampledSoftmax(4, 6, torch.arange(1.0, 7.0))
    state = dict(layer.state_dict())
    state["sampling_units"] = torch.tensor([0, 1, 1, 1, 1, 1])
    state["sampling_cdf"] = torch.cumsum(state["sampling_units"], 0)
    with pytest.raises(RuntimeError, match="must be positive"):
        layer.load_state_dict(state)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_a_valid_loaded_table_is_kept_by_reset_parameters(cls):
    source, layer = cls(4, 6, torch.arange(1.0, 7.0)), cls(4, 6, None)
    layer.load_state_dict(source.state_dict())
    layer.reset_parameters()
    assert torch.equal(layer.sampling_units, source.sampling_units)
    assert torch.equal(layer.sampling_cdf, source.sampling_cdf)


@pytest.mark.parametrize("cls", [NegativeSampling, SampledSoftmax])
def test_under_autocast_the_input_is_cast_to_the_parameters_dtype(cls):
    torch.manual_seed(0)
    layer = cls(3, 10, None)
    x, y = torch.randn(6, 3), torch.randint(0, 10, (6,))
    fixed = (
        {"negatives": layer.sample((6, 5), generator(2))}
        if cls is NegativeSampling
        else {"samples": torch.tensor([1, 4, 4, 7, 9])}
    )
    h = x.bfloat16()
    expected = layer(h.float(), y, **fixed).output  # the float32 layer on the same numbers
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(h, y, **fixed)
        assert layer.log_prob(h).shape == (6, 10)
        assert layer.predict(h).shape == (6,)
        with pytest.raises(TypeError, match="floating-point"):
            layer(torch.ones(6, 3, dtype=torch.int64), y, **fixed)
    # the score matmuls are themselves autocast to bfloat16 (3 significant digits)
    torch.testing.assert_close(out.output.float(), expected, rtol=0.02, atol=0.02)
    with pytest.raises(TypeError, match="differs from the layer's dtype"):
        layer(h, y, **fixed)  # outside autocast a mismatch is still an error


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_topk_values_are_the_log_probabilities(dtype):
    layer = SampledSoftmax(2, 4, None, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1000.0, 0], [999.3, 0], [0, 1], [0, -1]]))
        layer.bias.zero_()
    x = torch.tensor([[1.0, 0.0]], dtype=dtype)
    logits = (x.double() @ layer.weight.double().t())[0].tolist()  # the stored numbers
    top = max(logits)
    log_z = top + math.log(sum(math.exp(v - top) for v in logits))
    expected = sorted((v - log_z for v in logits), reverse=True)[:2]
    values = layer.topk(x, 2).values[0].double()
    # half precision resolves about 3 (bfloat16) or 4 (float16) significant digits
    tolerance = 0.01 if dtype == torch.bfloat16 else 1e-3
    torch.testing.assert_close(
        values, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=tolerance
    )
    log_prob = layer.log_prob(x)[0]
    assert torch.equal(layer.topk(x, 2).values[0], log_prob[layer.topk(x, 2).indices[0]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_predict_takes_the_first_of_tied_classes_as_argmax(dtype):
    layer = SampledSoftmax(2, 40, dtype=dtype)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
    assert layer.predict(torch.randn(3, 2, dtype=dtype)).tolist() == [0, 0, 0]


def test_bfloat16_predict_is_log_prob_argmax_with_many_ties():
    torch.manual_seed(0)
    layer = SampledSoftmax(16, 5000).bfloat16()
    x = torch.randn(2000, 16).bfloat16()
    assert torch.equal(layer.predict(x), layer.log_prob(x).argmax(-1))


def test_per_example_gradients_under_vmap_match_a_loop():
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(0)
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 7, (5,))
    ss = SampledSoftmax(3, 7, num_samples=4, dtype=torch.float64)
    ns = NegativeSampling(3, 7, None, dtype=torch.float64)
    candidates = ss.sample(generator(1))
    negatives = ns.sample((5, 1, 5), generator(3))
    cases = [
        (ss, lambda p, xb, yb, _: functional_call(ss, p, (xb, yb), {"samples": candidates}).loss),
        (ns, lambda p, xb, yb, nb: functional_call(ns, p, (xb, yb), {"negatives": nb}).loss),
    ]
    for layer, loss in cases:
        params = {k: v.detach() for k, v in layer.named_parameters()}
        batched = vmap(grad(loss), in_dims=(None, 0, 0, 0))(
            params, x.unsqueeze(1), y.unsqueeze(1), negatives
        )
        for i in range(5):
            one = grad(loss)(params, x[i : i + 1], y[i : i + 1], negatives[i])
            for name in params:
                torch.testing.assert_close(batched[name][i], one[name])
