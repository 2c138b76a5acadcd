"""actlib.trees.clustered_tree: a valid balanced tree whose splits follow the geometry of the embeddings."""

import math

import pytest
import torch

from actlib.trees import check_tree, clustered_tree, tree_paths


def _leaves_under(children: torch.Tensor, node: int) -> set[int]:
    """The classes in the subtree of internal node ``node``, by walking the table."""
    num_internal = children.shape[0]
    stack, classes = [node], set()
    while stack:
        for child in children[stack.pop()].tolist():
            if child < num_internal:
                stack.append(child)
            else:
                classes.add(child - num_internal)
    return classes


@pytest.mark.parametrize("num_classes", [2, 3, 5, 8, 17, 100, 257])
def test_clustered_tree_is_a_valid_breadth_first_tree_with_balanced_depths(num_classes):
    embeddings = torch.randn(num_classes, 6, generator=torch.Generator().manual_seed(num_classes))
    children = clustered_tree(embeddings, generator=torch.Generator().manual_seed(0))
    assert torch.equal(check_tree(children, num_classes), children)
    _, signs = tree_paths(children)
    depth = (signs != 0).sum(1)
    assert depth.max().item() == math.ceil(math.log2(num_classes))
    assert depth.min().item() == math.floor(math.log2(num_classes))


def test_clustered_tree_separates_well_separated_groups_at_every_level():
    # Four tight groups of four classes at the corners of a square, in shuffled class order:
    # the root must split {two groups} | {two groups} along one axis and its children must
    # then split each pair of groups, so every internal node at depth 2 holds exactly one group.
    generator = torch.Generator().manual_seed(3)
    corners = torch.tensor([[10.0, 10.0], [10.0, -10.0], [-10.0, 10.0], [-10.0, -10.0]])
    group = torch.randperm(16, generator=generator) % 4
    embeddings = corners[group] + 0.1 * torch.randn(16, 2, generator=generator)
    children = clustered_tree(embeddings, generator=generator)
    groups = [set((group == g).nonzero().flatten().tolist()) for g in range(4)]
    depth_two = [c for row in children[1:3].tolist() for c in row]
    assert sorted(sorted(_leaves_under(children, node)) for node in depth_two) == sorted(
        sorted(g) for g in groups
    )
    root_left = _leaves_under(children, children[0, 0].item())
    assert sum(g <= root_left for g in groups) == 2  # two whole groups on each side


def test_clustered_tree_is_reproducible_and_depends_on_the_generator():
    embeddings = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    a = clustered_tree(embeddings, generator=torch.Generator().manual_seed(1))
    b = clustered_tree(embeddings, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    c = clustered_tree(embeddings.numpy(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, c)  # an array works like a tensor


def test_clustered_tree_splits_a_line_in_order():
    # On a line the balanced 2-means split is the median cut; recursively, every subtree
    # holds a run of consecutive points.
    positions = torch.randperm(64, generator=torch.Generator().manual_seed(5)).double().unsqueeze(1)
    children = clustered_tree(positions, generator=torch.Generator().manual_seed(0))
    for node in range(children.shape[0]):
        values = sorted(positions[list(_leaves_under(children, node)), 0].tolist())
        assert values == [values[0] + k for k in range(len(values))]


@pytest.mark.parametrize(
    ("embeddings", "kwargs", "error", "match"),
    [
        (torch.zeros(5), {}, ValueError, r"\(N, D\) table"),
        (torch.zeros(1, 3), {}, ValueError, "at least 2 classes"),
        (torch.tensor([[0.0], [math.nan]]), {}, ValueError, "finite"),
        (torch.zeros(4, 2, dtype=torch.complex64), {}, TypeError, "real"),
        (torch.zeros(4, 2), {"iterations": 0}, ValueError, "iterations"),
        (torch.zeros(4, 2), {"iterations": 2.5}, ValueError, "iterations"),
    ],
)
def test_clustered_tree_rejects_bad_input(embeddings, kwargs, error, match):
    with pytest.raises(error, match=match):
        clustered_tree(embeddings, **kwargs)


# ------------------------------------------------------------------ review fixes


def test_clustered_tree_puts_an_outlier_alone_whatever_the_first_centroid():
    # three points, one far out: the best balanced split is {0, 0.01} | {5}; with the larger
    # half forced onto the random first centroid's side, seeds that start at 0.01 got {0.01, 5} | {0}
    points = torch.tensor([[0.0], [0.01], [5.0]], dtype=torch.float64)
    for seed in range(8):
        children = clustered_tree(points, generator=torch.Generator().manual_seed(seed))
        sides = {frozenset(_leaves_under(children, c) if c < 2 else {c - 2}) for c in children[0].tolist()}
        assert sides == {frozenset({0, 1}), frozenset({2})}


def _within_ss(values, members):
    chosen = [values[i] for i in members]
    mean = sum(chosen) / len(chosen)
    return sum((v - mean) ** 2 for v in chosen)


@pytest.mark.parametrize("n", [3, 5, 7, 9])
def test_clustered_tree_root_split_on_a_line_is_the_best_balanced_split(n):
    # On a line the scores are monotone in the position, and both orientations of an odd
    # split are tried, so the root split is optimal: compare with brute force over all splits.
    import itertools

    for seed in range(10):
        values = torch.randn(n, generator=torch.Generator().manual_seed(100 * n + seed)).double()
        children = clustered_tree(values[:, None], generator=torch.Generator().manual_seed(seed))
        big = (n + 1) // 2
        everyone = set(range(n))
        best = min(_within_ss(values.tolist(), c) + _within_ss(values.tolist(), everyone - set(c))
                   for c in itertools.combinations(range(n), big))
        left = _leaves_under(children, children[0, 0].item())
        got = _within_ss(values.tolist(), left) + _within_ss(values.tolist(), everyone - left)
        assert got == pytest.approx(best, rel=1e-12, abs=1e-15)


def test_random_tree_is_linear_time():
    import time

    from actlib.trees import random_tree

    start = time.perf_counter()
    children = random_tree(2**16, generator=torch.Generator().manual_seed(0))
    assert time.perf_counter() - start < 10.0  # O(N) (O(N^2) before: 45 to 520 s)
    assert children.shape == (2**16 - 1, 2)


def test_random_tree_shapes_follow_the_coalescent():
    # Kingman's coalescent on 4 leaves: the second merge joins two of the three subtrees
    # uniformly, so the balanced shape (the two single leaves merge) has probability 1/3.
    from actlib.trees import random_tree

    trials = 3000
    generator = torch.Generator().manual_seed(0)
    balanced = sum(int((tree_paths(random_tree(4, generator))[1] != 0).sum(1).max()) == 2
                   for _ in range(trials))
    assert abs(balanced / trials - 1 / 3) < 4 * math.sqrt(2 / 9 / trials)


@pytest.mark.parametrize("bad", [2.0, 3.0, "3", True, 2.5])
def test_num_classes_must_be_an_int(bad):
    from actlib.trees import balanced_tree, random_tree

    for make in (balanced_tree, random_tree):
        with pytest.raises(TypeError, match="num_classes must be an int"):
            make(bad)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        check_tree(torch.tensor([[1, 2]]), bad)


def test_num_classes_accepts_numpy_ints_and_refuses_huge_ones():
    np = pytest.importorskip("numpy")
    from actlib.trees import balanced_tree

    assert torch.equal(balanced_tree(np.int64(3)), torch.tensor([[1, 2], [3, 4]]))
    assert torch.equal(check_tree(torch.tensor([[1, 2], [3, 4]]), np.int32(3)), torch.tensor([[1, 2], [3, 4]]))
    with pytest.raises(ValueError, match="too large"):
        balanced_tree(2**70)


def test_clustered_tree_refuses_zero_columns_and_takes_numpy_iterations():
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError, match="at least one column"):
        clustered_tree(torch.zeros(4, 0))
    embeddings = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    a = clustered_tree(embeddings, iterations=np.int64(3), generator=torch.Generator().manual_seed(0))
    b = clustered_tree(embeddings, iterations=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
