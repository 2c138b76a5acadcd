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
