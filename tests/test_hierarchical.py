"""Tests for actlib.trees and actlib.hierarchical.HierarchicalSoftmax."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from actlib.hierarchical import HierarchicalSoftmax
from actlib.trees import balanced_tree, huffman_tree, tree_paths


def zipf_counts(num_classes: int) -> torch.Tensor:
    """Skewed integer counts, as word frequencies are."""
    return (1e6 / torch.arange(1, num_classes + 1)).round()


def make(num_classes, tree, in_features=5, seed=0, **kwargs):
    torch.manual_seed(seed)
    counts = zipf_counts(num_classes) if tree == "huffman" else None
    return HierarchicalSoftmax(in_features, num_classes, counts=counts, **kwargs)


def confident(module, scale=8.0):
    """Scale the weights up so node decisions are sharp, as they become in training."""
    with torch.no_grad():
        module.weight.mul_(scale)
        module.bias.mul_(scale)
    return module


# -- trees ----------------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [*range(2, 40), 1000, 4097])
def test_balanced_tree_paths_have_log2_length_and_no_phantom_leaves(num_classes):
    nodes, signs = tree_paths(balanced_tree(num_classes))
    lengths = (signs != 0).sum(1)
    low, high = math.floor(math.log2(num_classes)), math.ceil(math.log2(num_classes))
    assert lengths.min() >= low and lengths.max() <= high
    # Kraft equality: the leaves' 2^-depth add up to exactly 1, so no mass is lost.
    assert (2.0 ** -lengths.double()).sum().item() == pytest.approx(1.0, abs=1e-12)
    codes = {tuple(s[s != 0].tolist()) for s in signs}
    assert len(codes) == num_classes
    assert (nodes[:, 0] == 0).all()


@pytest.mark.parametrize(
    "counts",
    [
        zipf_counts(1000),
        torch.rand(777, generator=torch.Generator().manual_seed(1)),
        torch.tensor([5.0, 1, 1, 2, 10]),
        torch.tensor([3.0, 3, 3, 3, 3, 3, 3]),
    ],
)
def test_huffman_mean_path_length_is_within_one_bit_of_entropy(counts):
    children = huffman_tree(counts)
    _, signs = tree_paths(children)
    lengths = (signs != 0).sum(1).double()
    p = counts.double() / counts.sum()
    entropy = -(p * torch.log2(p)).sum().item()
    mean_length = (p * lengths).sum().item()
    assert entropy - 1e-9 <= mean_length <= entropy + 1
    assert (2.0**-lengths).sum().item() == pytest.approx(1.0, abs=1e-12)
    # Breadth-first numbering: every child id is larger than its parent's.
    assert (children > torch.arange(len(children)).unsqueeze(1)).all()
    module = HierarchicalSoftmax(3, len(counts), counts=counts)
    assert torch.equal(module.path_lengths.double(), lengths)


def test_huffman_gives_frequent_classes_short_paths_and_takes_zero_counts():
    counts = torch.tensor([0.0, 100, 0, 1, 50, 0])
    _, signs = tree_paths(huffman_tree(counts))
    lengths = (signs != 0).sum(1)
    assert lengths[1] == 1 and lengths[1] <= lengths[4] <= lengths[3] <= lengths[0]


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ([1.0], "at least 2"),
        ([1.0, -1.0], "non-negative"),
        ([1.0, math.nan], "finite"),
        ([[1.0, 2.0]], "one-dimensional"),
    ],
)
def test_huffman_rejects_bad_counts(counts, message):
    with pytest.raises(ValueError, match=message):
        huffman_tree(counts)


# -- log_prob, forward ------------------------------------------------------------------


@pytest.mark.parametrize("tree", ["balanced", "huffman"])
@pytest.mark.parametrize("num_classes", [2, 3, 5, 7, 8, 1000, 65537])
def test_log_prob_sums_to_one(num_classes, tree):
    module = make(num_classes, tree, in_features=4).double()
    x = 3 * torch.randn(3, 4, dtype=torch.float64)
    total = module.log_prob(x).exp().sum(-1)
    torch.testing.assert_close(total, torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-10)


@pytest.mark.parametrize("tree", ["balanced", "huffman"])
def test_forward_gathers_log_prob_for_any_batch_shape(tree):
    module = make(37, tree).double()
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    target = torch.randint(0, 37, (2, 3))
    out = module(x, target)
    expected = module.log_prob(x).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    assert out.output.shape == (2, 3)
    torch.testing.assert_close(out.output, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.loss, -expected.mean(), rtol=0, atol=1e-12)


def test_float32_forward_matches_float64():
    module = make(1000, "balanced", in_features=16)
    x = torch.randn(64, 16)
    target = torch.randint(0, 1000, (64,))
    reference = module.double()(x.double(), target).output
    output = module.float()(x, target).output.double()
    torch.testing.assert_close(output, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tree", ["balanced", "huffman"])
@pytest.mark.parametrize("sparse", [False, True])
def test_gradcheck(tree, sparse):
    module = make(7, tree, in_features=3).double()
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 6, 3, 2, 5, 3])
    weight = module.weight.detach().clone().requires_grad_()
    bias = module.bias.detach().clone().requires_grad_()

    def log_likelihood(x, weight, bias):
        params = {"weight": weight, "bias": bias}
        return torch.func.functional_call(module, params, (x, target)).output

    assert gradcheck(log_likelihood, (x, weight, bias), masked=sparse)


def test_sparse_gradients_equal_dense_ones():
    grads = []
    for sparse in (False, True):
        module = make(100, "huffman", in_features=8, sparse=sparse)
        x = torch.randn(32, 8, requires_grad=True)
        module(x, torch.arange(32) * 3).loss.backward()
        weight_grad, bias_grad = module.weight.grad, module.bias.grad
        if sparse:
            assert weight_grad.is_sparse and bias_grad.is_sparse
            weight_grad, bias_grad = weight_grad.to_dense(), bias_grad.to_dense()
        grads.append((x.grad, weight_grad, bias_grad))
    for dense, sparse in zip(*grads, strict=True):
        torch.testing.assert_close(sparse, dense)


def test_sparse_rows_add_into_a_kept_dense_grad():
    dense = make(100, "balanced", in_features=8)
    kept = make(100, "balanced", in_features=8, sparse=True)
    for parameter in kept.parameters():
        parameter.grad = torch.zeros_like(parameter)
    x, target = torch.randn(32, 8), torch.randint(0, 100, (32,))
    for _ in range(2):  # accumulates, as gradient accumulation over micro-batches does
        dense(x, target).loss.backward()
        kept(x, target).loss.backward()
    assert kept.weight.grad.layout == torch.strided
    torch.testing.assert_close(kept.weight.grad, dense.weight.grad)
    torch.testing.assert_close(kept.bias.grad, dense.bias.grad)


def test_without_bias_matches_zero_bias():
    with_bias = make(50, "balanced")
    without = make(50, "balanced", bias=False)
    with torch.no_grad():
        with_bias.bias.zero_()
    x = torch.randn(10, 5)
    torch.testing.assert_close(without.log_prob(x), with_bias.log_prob(x))
    assert (without.predict(x) == with_bias.predict(x)).all()


def test_training_learns_structured_data():
    torch.manual_seed(0)
    # With dim >= num_classes the prototypes can be split any way by a hyperplane, so
    # every node's left/right decision is learnable whatever the tree.
    num_classes, dim = 64, 64
    prototypes = torch.randn(num_classes, dim)
    module = HierarchicalSoftmax(dim, num_classes)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    losses = []
    for _ in range(150):
        target = torch.randint(0, num_classes, (256,))
        x = prototypes[target] + 0.3 * torch.randn(256, dim)
        loss = module(x, target).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    target = torch.randint(0, num_classes, (1000,))
    accuracy = module.predict(prototypes[target] + 0.3 * torch.randn(1000, dim)) == target
    assert losses[-1] < 0.25 * losses[0]
    assert accuracy.float().mean() > 0.8  # chance is 1/64


def test_sparse_training_with_sgd():
    torch.manual_seed(0)
    prototypes = torch.randn(100, 100)
    module = HierarchicalSoftmax(100, 100, sparse=True)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    first = last = None
    for _ in range(100):
        target = torch.randint(0, 100, (128,))
        loss = module(prototypes[target] + 0.2 * torch.randn(128, 100), target).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first, last = first or loss.item(), loss.item()
    assert last < 0.5 * first


# -- predict, topk ----------------------------------------------------------------------


@pytest.fixture(params=["default", "search only", "dense only"])
def frontier_budget(request, monkeypatch):
    """Run the exact search as it is, never falling back, or always falling back."""
    budgets = {"search only": 10**9, "dense only": 0}
    if request.param in budgets:
        budget = budgets[request.param]
        monkeypatch.setattr(HierarchicalSoftmax, "_frontier_budget", lambda self, k: budget)


@pytest.mark.parametrize("tree", ["balanced", "huffman"])
@pytest.mark.parametrize("num_classes", [2, 5, 1000])
@pytest.mark.parametrize("sharp", [False, True])
def test_predict_and_topk_are_exact(num_classes, tree, sharp, frontier_budget):
    module = make(num_classes, tree, in_features=8)
    if sharp:
        confident(module)
    x = torch.randn(200, 8)
    log_prob = module.log_prob(x)
    assert torch.equal(module.predict(x), log_prob.argmax(-1))
    for k in {1, min(3, num_classes), min(10, num_classes)}:
        top = module.topk(x, k)
        expected = log_prob.topk(k)
        assert torch.equal(top.indices, expected.indices)
        torch.testing.assert_close(top.values, expected.values)


def test_predict_keeps_batch_shape_and_float64():
    module = make(300, "huffman").double()
    x = torch.randn(4, 6, 5, dtype=torch.float64)
    assert module.predict(x).shape == (4, 6)
    assert torch.equal(module.predict(x), module.log_prob(x).argmax(-1))
    assert module.topk(x, 2).values.dtype == torch.float64


def test_greedy_descent_misses_the_most_probable_class():
    # Root: left with p = 0.6. Left child: a coin flip between classes 0 and 1 (0.3
    # each). Right child: class 2 with p = 0.99 → 0.4 * 0.99 = 0.396, the argmax.
    module = HierarchicalSoftmax(1, 4, bias=True)
    with torch.no_grad():
        module.weight.zero_()
        module.bias.copy_(torch.tensor([math.log(0.6 / 0.4), 0.0, math.log(0.99 / 0.01)]))
    x = torch.zeros(3, 1)
    classes_of_leaves = module.log_prob(x)[0].exp()
    torch.testing.assert_close(classes_of_leaves, torch.tensor([0.3, 0.3, 0.396, 0.004]))
    assert (module.predict(x) == 2).all()
    assert (module.predict_greedy(x) != 2).all()


def test_greedy_is_often_wrong_on_random_models_but_predict_never():
    module = make(1000, "balanced", in_features=8)
    x = torch.randn(500, 8)
    best = module.log_prob(x).argmax(-1)
    assert (module.predict_greedy(x) != best).sum() > 50
    assert torch.equal(module.predict(x), best)


# -- devices, dtypes, state -------------------------------------------------------------


def test_state_dict_round_trip_carries_the_tree():
    counts = zipf_counts(200)
    module = HierarchicalSoftmax(6, 200, counts=counts)
    state = module.state_dict()
    tree_keys = {"node_children", "path_nodes", "path_signs"}
    assert set(state) == tree_keys | {"node_vectors.weight", "node_biases.weight"}
    copy = HierarchicalSoftmax(6, 200, counts=counts)
    copy.load_state_dict(state)
    x = torch.randn(7, 6)
    torch.testing.assert_close(copy.log_prob(x), module.log_prob(x))
    as_double = module.double()
    assert as_double.path_nodes.dtype == torch.int64
    assert as_double.path_signs.dtype == torch.int8


def _old_state_dict(module):
    """The state dict as saved before the parameters moved into nn.Embedding tables."""
    state = module.state_dict()
    renamed = {"node_vectors.weight": "weight", "node_biases.weight": "bias"}
    return {renamed.get(key, key): value for key, value in state.items()}


@pytest.mark.parametrize("bias", [True, False])
def test_a_state_dict_with_the_old_keys_still_loads(bias):
    saved = HierarchicalSoftmax(6, 40, bias=bias)
    old = _old_state_dict(saved)
    assert ("bias" in old) == bias and "weight" in old
    fresh = HierarchicalSoftmax(6, 40, bias=bias)
    result = fresh.load_state_dict(old)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(fresh.weight, saved.weight)
    if bias:
        assert torch.equal(fresh.bias, saved.bias)
    # inside a model too, where every key has a prefix; the caller's dict is left alone
    model = torch.nn.Sequential(torch.nn.Linear(6, 6), HierarchicalSoftmax(6, 40, bias=bias))
    nested = {f"1.{key}": value for key, value in old.items()}
    nested.update({f"0.{key}": value for key, value in model[0].state_dict().items()})
    keys_before = set(nested)
    model.load_state_dict(nested)  # strict: no missing, no unexpected keys
    assert set(nested) == keys_before
    assert torch.equal(model[1].weight, saved.weight)
    # the new keys win when a dict somehow holds both
    both = {**saved.state_dict(), "weight": torch.zeros_like(saved.weight)}
    with pytest.raises(RuntimeError, match='Unexpected key.*"weight"'):
        fresh.load_state_dict(both)


def test_parameters_live_in_embedding_tables_that_ddp_recognises():
    """DDP expects sparse gradients only from nn.Embedding(sparse=True) parameters."""
    for sparse in (False, True):
        layer = HierarchicalSoftmax(5, 9, sparse=sparse)
        assert [name for name, _ in layer.named_parameters()] == [
            "node_vectors.weight",
            "node_biases.weight",
        ]
        assert list(layer.parameters()) == [layer.weight, layer.bias]  # the old order
        for table, parameter in (
            (layer.node_vectors, layer.weight),
            (layer.node_biases, layer.bias),
        ):
            assert isinstance(table, torch.nn.Embedding) and table.sparse is sparse
            assert table.weight is parameter and parameter.is_leaf
        assert layer.weight.shape == (8, 5) and layer.bias.shape == (8,)
    layer.sparse = False  # one switch for both tables
    assert not layer.node_vectors.sparse and not layer.node_biases.sparse
    without = HierarchicalSoftmax(5, 9, bias=False)
    assert without.bias is None and without.node_biases is None
    assert [name for name, _ in without.named_parameters()] == ["node_vectors.weight"]
    with pytest.raises(NotImplementedError, match="not called"):
        layer.node_vectors(torch.tensor([0]))


def test_initialisation_draws_weight_then_bias_from_the_global_generator():
    """As before the tables: U(-1/sqrt(D), 1/sqrt(D)), weight first, nothing else drawn."""
    torch.manual_seed(5)
    layer = HierarchicalSoftmax(4, 11)
    after = torch.rand(1)
    torch.manual_seed(5)
    weight = torch.empty(10, 4).uniform_(-0.5, 0.5)
    bias = torch.empty(10).uniform_(-0.5, 0.5)
    assert torch.equal(layer.weight, weight) and torch.equal(layer.bias, bias)
    assert torch.equal(torch.rand(1), after)


def test_assigning_weight_and_bias_sets_the_tables():
    layer = HierarchicalSoftmax(3, 5)
    new_weight = torch.nn.Parameter(torch.ones(4, 3))
    layer.weight = new_weight
    assert layer.node_vectors.weight is new_weight and layer.weight is new_weight
    layer.bias = torch.nn.Parameter(torch.zeros(4))
    assert list(layer.parameters()) == [layer.weight, layer.bias]
    x = torch.randn(2, 3)
    # class 0 of the balanced tree over 5 classes: left at the root, then right
    expected = F.logsigmoid(x.sum(-1, keepdim=True) * torch.tensor([1.0, -1.0])).sum(-1)
    torch.testing.assert_close(layer(x, torch.tensor([0, 0])).output, expected)
    with pytest.raises(TypeError, match="cannot assign list as parameter 'weight'"):
        layer.weight = [1.0]
    with pytest.raises(AttributeError, match="bias=False"):
        HierarchicalSoftmax(3, 5, bias=False).bias = torch.nn.Parameter(torch.zeros(4))


@pytest.mark.parametrize("sparse", [False, True])
def test_dense_gradients_have_the_parameters_strides(sparse):
    """No broadcast (zero-stride) gradient: DDP's buckets warn about any other layout."""
    layer = HierarchicalSoftmax(6, 30, sparse=sparse)
    if not sparse:  # even for a parameter that is not row-major
        layer.weight = torch.nn.Parameter(torch.randn(6, 29).t())
    for batch in (1, 7):
        layer.zero_grad(set_to_none=True)
        x = torch.randn(batch, 6)
        layer(x, torch.randint(0, 30, (batch,))).loss.backward()
        for parameter in layer.parameters():
            if sparse:
                assert parameter.grad.is_sparse
            else:
                assert parameter.grad.stride() == parameter.stride()
                assert 0 not in parameter.grad.stride()


@pytest.mark.parametrize("half_dtype", [torch.bfloat16, torch.float16])
def test_half_precision(device, half_dtype):
    """Parameters and input in half precision; sums of log-sigmoids in float32."""
    dtype = half_dtype
    module = confident(make(500, "huffman", in_features=16))
    half = make(500, "huffman", in_features=16)
    half.load_state_dict(module.state_dict())
    half = half.to(device=device, dtype=dtype)
    x = torch.randn(64, 16)
    target = torch.randint(0, 500, (64,))
    out = half(x.to(device, dtype), target.to(device))
    assert out.output.dtype == dtype
    reference = module(x, target).output
    torch.testing.assert_close(out.output.float().cpu(), reference, rtol=0.02, atol=0.1)
    out.loss.backward()
    assert half.weight.grad.dtype == dtype and torch.isfinite(half.weight.grad).all()
    log_prob = half.log_prob(x.to(device, dtype))
    total = log_prob.float().exp().sum(-1)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=0.02)
    assert (half.predict(x.to(device, dtype)) == log_prob.argmax(-1)).float().mean() > 0.95


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("tree", ["balanced", "huffman"])
def test_cuda_matches_cpu(tree):
    module = confident(make(2000, tree, in_features=16))
    x = torch.randn(128, 16)
    target = torch.randint(0, 2000, (128,))
    cpu = module(x, target)
    cpu.loss.backward()
    cpu_grad = module.weight.grad.clone()
    module.zero_grad()
    gpu_module = module.to("cuda")
    gpu = gpu_module(x.cuda(), target.cuda())
    gpu.loss.backward()
    torch.testing.assert_close(gpu.output.cpu(), cpu.output)
    torch.testing.assert_close(gpu_module.weight.grad.cpu(), cpu_grad)
    log_prob = gpu_module.log_prob(x.cuda())
    assert torch.equal(gpu_module.predict(x.cuda()), log_prob.argmax(-1))
    assert torch.equal(gpu_module.topk(x.cuda(), 5).indices, log_prob.topk(5).indices)


# -- bad input --------------------------------------------------------------------------


def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        HierarchicalSoftmax(4, 1)
    with pytest.raises(ValueError, match="one count per class"):
        HierarchicalSoftmax(4, 3, counts=[1.0, 2.0])
    with pytest.raises(ValueError, match="non-negative"):
        HierarchicalSoftmax(4, 3, counts=[1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match="in_features"):
        HierarchicalSoftmax(0, 3)


@pytest.mark.parametrize(
    ("x_shape", "target", "error", "message"),
    [
        ((4, 5), torch.tensor([0, 1, 2, 10]), ValueError, r"\[0, 9\].*\[0, 10\]"),
        ((4, 5), torch.tensor([0, -1, 2, 3]), ValueError, r"\[0, 9\]"),
        ((4, 5), torch.tensor([0.0, 1, 2, 3]), TypeError, "integer class indices"),
        ((4, 6), torch.tensor([0, 1, 2, 3]), ValueError, "in_features=5"),
        ((4, 5), torch.tensor([0, 1, 2]), ValueError, r"batch shape \(4,\).*\(3,\) differ"),
    ],
)
def test_forward_rejects_bad_input(x_shape, target, error, message):
    module = HierarchicalSoftmax(5, 10)
    with pytest.raises(error, match=message):
        module(torch.randn(x_shape), target)


def test_prediction_rejects_bad_input():
    module = HierarchicalSoftmax(5, 10)
    with pytest.raises(ValueError, match="in_features=5"):
        module.predict(torch.randn(3, 4))
    with pytest.raises(TypeError, match="floating-point"):
        module.log_prob(torch.ones(3, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"k must lie in \[1, 10\]"):
        module.topk(torch.randn(3, 5), 11)


def test_empty_batch_gives_empty_outputs_and_nan_loss_like_cross_entropy():
    module = HierarchicalSoftmax(5, 10)
    x = torch.randn(0, 5, requires_grad=True)
    target = torch.zeros(0, dtype=torch.int64)
    out = module(x, target)
    assert out.output.shape == (0,)
    assert torch.isnan(out.loss) and torch.isnan(F.cross_entropy(torch.randn(0, 10), target))
    out.loss.backward()
    assert x.grad.shape == (0, 5) and (module.weight.grad == 0).all()
    assert module.log_prob(x).shape == (0, 10)
    assert module.predict(x).shape == (0,)
    assert module.topk(x, 3).indices.shape == (0, 3)


# ------------------------------------------- second order, forward mode, per-example grads


def _double_layer_and_batch():
    torch.manual_seed(0)
    linear, layer = torch.nn.Linear(3, 4).double(), HierarchicalSoftmax(4, 7).double()
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    return linear, layer, x, torch.tensor([0, 1, 2, 3, 6])


def test_double_backward_matches_plain_autograd_through_log_prob():
    """∂/∂θ ‖∂L/∂x‖²: once through forward (the hand-written backward, differentiated),
    once through log_prob (plain autograd); every gradient must agree, none may be None."""
    linear, layer, x, target = _double_layer_and_batch()

    def second_order(loss_of):
        linear.zero_grad(set_to_none=True)
        layer.zero_grad(set_to_none=True)
        (gx,) = torch.autograd.grad(loss_of(), x, create_graph=True)
        gx.pow(2).sum().backward()
        return [p.grad.clone() for p in (*linear.parameters(), *layer.parameters())]

    ours = second_order(lambda: layer(linear(x), target).loss)
    reference = second_order(lambda: -layer.log_prob(linear(x)).gather(1, target[:, None]).mean())
    for got, want in zip(ours, reference, strict=True):
        torch.testing.assert_close(got, want)
    assert float(ours[2].abs().sum()) > 0  # the tree's weight gets a second-order gradient


def test_gradcheck_forward_mode_and_gradgradcheck():
    layer = HierarchicalSoftmax(4, 7).double()
    target = torch.tensor([0, 1, 2, 3, 6])
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    weight, bias = (p.detach().clone().requires_grad_() for p in (layer.weight, layer.bias))

    def log_prob(x, weight, bias):
        return torch.func.functional_call(
            layer, {"weight": weight, "bias": bias}, (x, target)
        ).output

    inputs = (x.requires_grad_(), weight, bias)
    assert torch.autograd.gradcheck(log_prob, inputs, check_forward_ad=True)
    assert torch.autograd.gradgradcheck(log_prob, inputs)


def test_per_example_gradients_with_vmap():
    layer = HierarchicalSoftmax(4, 7).double()
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 1, 2, 3, 6])
    params = {k: v.detach() for k, v in layer.named_parameters()}

    def loss_of_one(params, xi, ti):
        return torch.func.functional_call(layer, params, (xi[None], ti[None])).loss

    per_example = torch.func.vmap(torch.func.grad(loss_of_one), in_dims=(None, 0, 0))(
        params, x, target
    )
    for i in range(5):
        loss = layer(x[i : i + 1], target[i : i + 1]).loss
        weight, bias = torch.autograd.grad(loss, (layer.weight, layer.bias))
        torch.testing.assert_close(per_example["node_vectors.weight"][i], weight)
        torch.testing.assert_close(per_example["node_biases.weight"][i], bias)


def test_sparse_gradients_refuse_to_be_differentiated_twice():
    layer = HierarchicalSoftmax(4, 7, sparse=True).double()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    loss = layer(x, torch.tensor([0, 1, 2, 3, 6])).loss
    with pytest.raises(RuntimeError, match="sparse=False"):
        torch.autograd.grad(loss, x, create_graph=True)


# ---------------------------------------------------------------------- bad input, counts


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: HierarchicalSoftmax(4, 2.5), TypeError, "num_classes must be an int"),
        (lambda: HierarchicalSoftmax(4.0, 8), TypeError, "in_features must be an int"),
        (lambda: HierarchicalSoftmax(True, 8), TypeError, "in_features must be an int"),
        (lambda: HierarchicalSoftmax(4, 1), ValueError, "num_classes must be at least 2"),
    ],
)
def test_constructor_arguments_are_checked(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_topk_k_must_be_an_int():
    layer = HierarchicalSoftmax(4, 8)
    with pytest.raises(TypeError, match="k must be an int"):
        layer.topk(torch.randn(2, 4), 2.0)


@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.int16]
)
def test_unsigned_and_short_targets(dtype):
    layer = HierarchicalSoftmax(4, 8)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([0, 5, 7])
    torch.testing.assert_close(layer(x, target.to(dtype)).output, layer(x, target).output)
    with pytest.raises(ValueError, match=r"must lie in \[0, 7\]"):
        layer(x, torch.tensor([0, 5, 8]).to(dtype))


def test_meta_target_is_refused_clearly():
    layer = HierarchicalSoftmax(4, 8)
    with pytest.raises(ValueError, match="meta device"):
        layer(torch.randn(3, 4), torch.zeros(3, dtype=torch.long, device="meta"))


@pytest.mark.parametrize(
    "counts",
    [
        [1e-300, 1e-300, 2e-300, 3e-300],
        [1e300, 1e300, 2e300, 3e300],
        [1.0, 1.0 + 1e-12, 1.0 + 2e-12, 3.0],  # ties in float32, not in float64
    ],
)
def test_counts_are_read_in_float64_like_huffman_tree(counts):
    layer = HierarchicalSoftmax(4, 4, counts=counts)
    assert torch.equal(layer.node_children, huffman_tree(counts))


# ------------------------------------------------------------------ trees of your own


def _relabel_internal(children, generator):
    """The same tree with internal nodes 1..N-2 renamed at random (the root stays 0)."""
    num_internal = children.shape[0]
    names = torch.cat([torch.zeros(1, dtype=torch.int64),
                       1 + torch.randperm(num_internal - 1, generator=generator)])  # fmt: skip
    renamed = torch.where(children < num_internal, names[children.clamp_max(num_internal - 1)],
                          children)  # fmt: skip
    table = torch.empty_like(children)
    table[names] = renamed
    return table


def test_random_tree_is_a_valid_reproducible_tree():
    from actlib.trees import check_tree, random_tree

    a = random_tree(200, torch.Generator().manual_seed(0))
    b = random_tree(200, torch.Generator().manual_seed(0))
    c = random_tree(200, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(check_tree(a, 200), a)  # already breadth-first
    _, signs = tree_paths(a)
    assert (signs != 0).sum(1).min() >= 1
    assert sorted(a.reshape(-1).tolist()) == list(range(1, 2 * 200 - 1))


def test_any_numbering_of_internal_nodes_is_accepted_and_renumbered():
    from actlib.trees import check_tree, random_tree

    tree = random_tree(50, torch.Generator().manual_seed(2))
    shuffled = _relabel_internal(tree, torch.Generator().manual_seed(3))
    assert not torch.equal(shuffled, tree)
    renumbered = check_tree(shuffled, 50)
    # the same tree: every class has the same sequence of left/right turns
    torch.testing.assert_close(tree_paths(renumbered)[1], tree_paths(tree)[1], rtol=0, atol=0)
    internal = renumbered < 49
    parents = torch.arange(49).unsqueeze(1).expand(-1, 2)
    assert (renumbered[internal] > parents[internal]).all()  # breadth-first: children after parents


@pytest.mark.parametrize("seed", [0, 1])
def test_hierarchical_softmax_over_a_given_tree(seed):
    from actlib.trees import random_tree

    tree = random_tree(37, torch.Generator().manual_seed(seed))
    hsm = HierarchicalSoftmax(5, 37, children=tree).double()
    assert torch.equal(hsm.node_children, tree)
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    log_p = hsm.log_prob(x)
    torch.testing.assert_close(log_p.logsumexp(-1), torch.zeros(6, dtype=torch.float64))
    assert torch.equal(hsm.predict(x), log_p.argmax(-1))
    target = torch.arange(6)
    torch.testing.assert_close(hsm(x, target).output, log_p[torch.arange(6), target])


@pytest.mark.parametrize(
    ("children", "error", "message"),
    [
        ([[1, 2], [3, 4]], ValueError, r"shape \(3, 2\) for 4 classes"),
        (
            [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
            TypeError,
            "integer node ids, got dtype torch.float",
        ),
        ([[1, 2], [0, 4], [5, 6]], ValueError, r"ids must lie in \[1, 6\]"),
        ([[1, 2], [3, 4], [5, 7]], ValueError, r"ids must lie in \[1, 6\]"),
        ([[1, 2], [3, 3], [5, 6]], ValueError, "node 3 is the child of more than one"),
        ([[3, 4], [2, 5], [1, 6]], ValueError, r"internal nodes \[1, 2\] are not reachable"),
    ],
)
def test_bad_trees_are_named(children, error, message):
    with pytest.raises(error, match=message):
        HierarchicalSoftmax(4, 4, children=torch.tensor(children))


def test_counts_and_children_together_are_refused():
    with pytest.raises(ValueError, match="counts .* or children .*, not both"):
        HierarchicalSoftmax(4, 3, counts=[1, 2, 3], children=balanced_tree(3))


# -- regressions from the adversarial review ------------------------------------------


def _state(layer):
    return {key: value.clone() for key, value in layer.state_dict().items()}


def _set(key, index, value):
    def edit(state):
        state[key][index] = value

    return edit


def _swap_internal_nodes_1_and_2(state):
    """The same tree with internal nodes 1 and 2 renamed: valid, but not breadth-first."""
    children = state["node_children"]
    rows = children[[0, 2, 1, 3, 4]]
    state["node_children"] = torch.where(rows == 1, 2, torch.where(rows == 2, 1, rows))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("path_nodes", (0, 0), 10**9), "path_nodes must be internal nodes in"),
        (_set("path_nodes", (0, 0), -1), "path_nodes must be internal nodes in"),
        (_set("path_nodes", (0, 1), 4), "not the paths of node_children"),  # a wrong node
        (_set("path_nodes", (0, 0), 1), "must start at the root"),
        (_set("path_signs", (0, 0), 2), "path_signs must be"),
        (_set("path_signs", (0, 0), 0), "padding at the end"),
        (_set("path_signs", (0, 1), -1), "not the paths of node_children"),  # a wrong turn
        (_set("node_children", (0, 0), 10**9), "node_children ids must lie in"),
        (_set("node_children", (1, 0), 1), "exactly one parent"),
        (_swap_internal_nodes_1_and_2, "not numbered breadth-first"),
    ],
)
def test_load_state_dict_rejects_tree_buffers_that_are_not_a_tree(edit, message):
    """An out-of-range path node used to be read unchecked: a segfault in forward."""
    layer = HierarchicalSoftmax(4, 6)
    before = {name: buffer.clone() for name, buffer in layer.named_buffers()}
    state = _state(layer)
    edit(state)
    with pytest.raises(RuntimeError, match=f"invalid tree buffers.*{message}"):
        layer.load_state_dict(state)
    for name, buffer in layer.named_buffers():  # the valid tree stays
        assert torch.equal(buffer, before[name]), name
    x, y = torch.randn(2, 4), torch.tensor([0, 5])
    assert torch.isfinite(layer(x, y).loss)


def test_a_loaded_tree_is_checked_and_kept_by_reset_parameters():
    children = balanced_tree(6)
    children = torch.where(children == 5, 10, torch.where(children == 10, 5, children))
    # classes 0 and 5 have swapped leaves
    source = HierarchicalSoftmax(4, 6, children=children)
    layer = HierarchicalSoftmax(4, 6)
    assert not torch.equal(layer.path_nodes, source.path_nodes)
    layer.load_state_dict(source.state_dict())
    layer.reset_parameters()
    for name, buffer in source.named_buffers():
        assert torch.equal(dict(layer.named_buffers())[name], buffer), name


def test_deferred_initialisation_on_meta_rebuilds_the_tree():
    reference = HierarchicalSoftmax(4, 6)
    layer = HierarchicalSoftmax(4, 6, device="meta")
    layer.to_empty(device="cpu")  # parameters and buffers: uninitialised memory
    layer.reset_parameters()
    for name, buffer in reference.named_buffers():
        assert torch.equal(dict(layer.named_buffers())[name], buffer), name
    # the same numbers as the layer built on the CPU, given the same parameters
    layer.load_state_dict(reference.state_dict())
    x, y = torch.randn(4, 4), torch.tensor([0, 2, 3, 5])
    torch.testing.assert_close(layer(x, y).output, reference(x, y).output, rtol=0, atol=0)
    torch.testing.assert_close(layer.log_prob(x), reference.log_prob(x), rtol=0, atol=0)


@pytest.mark.parametrize("old_format", [False, True])
def test_a_bias_in_the_state_dict_of_a_layer_without_bias_is_unexpected(old_format):
    state = dict(HierarchicalSoftmax(4, 6).state_dict())
    if old_format:  # saved before the parameters moved into the node tables
        state["weight"] = state.pop("node_vectors.weight")
        state["bias"] = state.pop("node_biases.weight")
    key = "bias" if old_format else "node_biases.weight"
    layer = HierarchicalSoftmax(4, 6, bias=False)
    with pytest.raises(RuntimeError, match=f'Unexpected key\\(s\\) in state_dict: "{key}"'):
        layer.load_state_dict(state)
    result = HierarchicalSoftmax(4, 6, bias=False).load_state_dict(state, strict=False)
    assert result.unexpected_keys == [key] and result.missing_keys == []


@pytest.mark.parametrize("value", ["no", 0, 1, None])
def test_sparse_must_be_a_bool(value):
    with pytest.raises(TypeError, match="sparse must be a bool"):
        HierarchicalSoftmax(4, 6, sparse=value)
    layer = HierarchicalSoftmax(4, 6)
    with pytest.raises(TypeError, match="sparse must be a bool"):
        layer.sparse = value
    assert layer.sparse is False


def test_assigning_a_plain_tensor_or_none_behaves_as_for_nn_linear():
    layer = HierarchicalSoftmax(3, 5)
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'weight'"):
        layer.weight = torch.ones(4, 3)
    assert isinstance(layer.weight, torch.nn.Parameter)
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'bias'"):
        layer.bias = torch.zeros(4)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    layer.bias = None  # as nn.Linear: no bias from now on
    assert layer.bias is None and layer.node_biases is None
    assert list(layer.state_dict()) == ["node_children", "path_nodes", "path_signs",
                                        "node_vectors.weight"]  # fmt: skip
    x = torch.randn(2, 3)
    # class 0 of the balanced tree over 5 classes: left at the root, then right; no bias
    expected = F.logsigmoid(x.sum(-1, keepdim=True) * torch.tensor([1.0, -1.0])).sum(-1)
    torch.testing.assert_close(layer(x, torch.tensor([0, 0])).output, expected)
    with pytest.raises(TypeError, match="weight cannot be None"):
        layer.weight = None
    # torch.func.functional_call still swaps plain tensors in under the old names
    zeros = {"weight": torch.zeros(4, 3)}
    out = torch.func.functional_call(layer, zeros, (x, torch.tensor([0, 0]))).output
    torch.testing.assert_close(out, torch.full((2,), 2 * math.log(0.5)))
    assert isinstance(layer.weight, torch.nn.Parameter) and layer.weight.sum() == 12


@pytest.mark.parametrize("num_classes", [2, 3, 50, 257])
def test_any_valid_tree_loads_and_gives_the_same_log_probabilities(num_classes):
    """The vectorised buffer check accepts every tree that check_tree and tree_paths make."""
    from actlib.trees import random_tree

    source = HierarchicalSoftmax(
        3,
        num_classes,
        children=random_tree(num_classes, torch.Generator().manual_seed(num_classes)),
    )
    layer = HierarchicalSoftmax(3, num_classes)
    if layer.path_nodes.shape != source.path_nodes.shape:
        layer = HierarchicalSoftmax(3, num_classes, children=source.node_children)
    layer.load_state_dict(source.state_dict())
    x = torch.randn(4, 3)
    torch.testing.assert_close(layer.log_prob(x), source.log_prob(x), rtol=0, atol=0)
