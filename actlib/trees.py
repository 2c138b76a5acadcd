"""Binary trees over classes, for :class:`actlib.HierarchicalSoftmax`.

A tree over ``N`` classes is one ``(N - 1, 2)`` integer tensor ``children``: row ``i``
holds the left and the right child of internal node ``i``. Ids below ``N - 1`` are
internal nodes, id ``N - 1 + c`` is the leaf of class ``c``. Node ``0`` is the root and
internal nodes are numbered breadth-first, so every child id is larger than its
parent's and a path read from the root visits increasing ids.

Every internal node has exactly two children, so the tree has exactly ``N`` leaves:
there are no phantom leaves that would take probability mass from the real classes.
"""

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["balanced_tree", "huffman_tree", "tree_paths"]


def _check_num_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"a tree needs at least 2 classes, got num_classes={num_classes}")


def balanced_tree(num_classes: int) -> Tensor:
    r"""The complete binary tree over ``num_classes`` leaves, heap-indexed.

    Internal node :math:`i` has children :math:`2i + 1` and :math:`2i + 2`; with
    :math:`N - 1` internal nodes the ids :math:`N - 1, \dots, 2N - 2` are exactly the
    leaves, so class :math:`c` sits at node :math:`N - 1 + c`. Every path has
    :math:`\lfloor \log_2 N \rfloor` or :math:`\lceil \log_2 N \rceil` steps, for any
    :math:`N \ge 2`, not only powers of two.

    Args:
        num_classes: the number of leaves :math:`N \ge 2`.

    Returns:
        ``children``, an int64 tensor of shape ``(N - 1, 2)``.

    Examples:
        >>> balanced_tree(3)
        tensor([[1, 2],
                [3, 4]])
    """
    _check_num_classes(num_classes)
    internal = torch.arange(num_classes - 1)
    return torch.stack([2 * internal + 1, 2 * internal + 2], dim=1)


def huffman_tree(counts: Sequence[float] | Tensor) -> Tensor:
    r"""The Huffman tree of the class counts, as word2vec and fastText build it.

    Repeatedly merges the two lightest subtrees, so a class of frequency :math:`p_c`
    ends at depth about :math:`-\log_2 p_c`, and the count-weighted mean path length
    is at most the entropy of the counts plus one bit. Uses the two-queue construction
    (sort once, then :math:`O(N)` merges); ties go to the leaf queue and then to the
    smaller class index, which keeps the longest path as short as possible and the
    result deterministic. The lighter subtree of each merge becomes the left child.

    Counts of zero are allowed: such classes get the deepest leaves but, like every
    class, a probability the model learns; the counts only shape the tree.

    Args:
        counts: ``N >= 2`` non-negative, finite counts (or frequencies), one per class.

    Returns:
        ``children``, an int64 tensor of shape ``(N - 1, 2)``.

    Raises:
        ValueError: fewer than two counts, not one-dimensional, negative or non-finite.
    """
    weights = torch.as_tensor(counts, dtype=torch.float64, device="cpu")
    if weights.dim() != 1:
        raise ValueError(f"counts must be one-dimensional, got shape {tuple(weights.shape)}")
    num_classes = weights.numel()
    _check_num_classes(num_classes)
    if not torch.isfinite(weights).all():
        raise ValueError("counts must be finite")
    if (weights < 0).any():
        raise ValueError("counts must be non-negative")

    leaf_order = torch.argsort(weights, stable=True).tolist()
    weight = weights.tolist()
    num_internal = num_classes - 1
    # Merged subtrees are created in non-decreasing weight order, so a second plain
    # queue of them stays sorted: no heap is needed. Merge j is recorded as id -(j + 1)
    # until the breadth-first renumbering below; leaves already have their final ids.
    merged_weight: list[float] = []
    merged_children: list[tuple[int, int]] = []
    next_leaf = next_merged = 0

    def pop_lightest() -> tuple[int, float]:
        nonlocal next_leaf, next_merged
        take_merged = next_merged < len(merged_weight) and (
            next_leaf == num_classes or merged_weight[next_merged] < weight[leaf_order[next_leaf]]
        )
        if take_merged:
            next_merged += 1
            return -next_merged, merged_weight[next_merged - 1]
        cls = leaf_order[next_leaf]
        next_leaf += 1
        return num_internal + cls, weight[cls]

    for _ in range(num_internal):
        left, left_weight = pop_lightest()
        right, right_weight = pop_lightest()
        merged_children.append((left, right))
        merged_weight.append(left_weight + right_weight)
    return _renumber_breadth_first(merged_children)


def _renumber_breadth_first(merged_children: list[tuple[int, int]]) -> Tensor:
    """Children table with the root (the last merge) as node 0, ids breadth-first."""
    num_internal = len(merged_children)
    order = [num_internal - 1]  # merge indices in breadth-first order
    new_id = {num_internal - 1: 0}
    children = []
    for merge in order:  # `order` grows while it is walked: a queue
        row = []
        for child in merged_children[merge]:
            if child < 0:
                new_id[-child - 1] = len(order)
                order.append(-child - 1)
                row.append(new_id[-child - 1])
            else:
                row.append(child)
        children.append(row)
    return torch.tensor(children, dtype=torch.int64)


def tree_paths(children: Tensor) -> tuple[Tensor, Tensor]:
    r"""Every class's root-to-leaf path, padded to the longest.

    Args:
        children: a tree as :func:`balanced_tree` or :func:`huffman_tree` return it.

    Returns:
        ``(nodes, signs)``, both of shape ``(N, L)`` with ``L`` the longest path.
        ``nodes[c, l]`` is the internal node at step ``l`` of class ``c``'s path
        (int64); ``signs[c, l]`` (int8) is ``+1`` where the path goes left, ``-1``
        where it goes right and ``0`` on padding, whose node is the root. With node
        scores :math:`s`, :math:`\log p(c) = \sum_l \log\sigma(\mathrm{signs}[c, l]
        \, s_{\mathrm{nodes}[c, l]})` over the non-padding steps.
    """
    num_internal = children.shape[0]
    num_nodes = 2 * num_internal + 1
    internal = torch.arange(num_internal)
    parent = torch.zeros(num_nodes, dtype=torch.int64)
    side = torch.zeros(num_nodes, dtype=torch.int8)
    parent[children[:, 0]] = internal
    parent[children[:, 1]] = internal
    side[children[:, 0]] = 1
    side[children[:, 1]] = -1

    # Walk up from all leaves at once; a walk that has reached the root keeps
    # producing (root, 0) padding.
    current = torch.arange(num_internal, num_nodes)
    up_nodes, up_signs = [], []
    while (current != 0).any():
        up_signs.append(side[current])
        current = parent[current]
        up_nodes.append(current)
    up_nodes_t = torch.stack(up_nodes, dim=1)
    up_signs_t = torch.stack(up_signs, dim=1)

    # Reverse each path to root-first order, keeping padding at the end.
    lengths = (up_signs_t != 0).sum(dim=1, keepdim=True)
    step = torch.arange(up_nodes_t.shape[1])
    from_leaf = (lengths - 1 - step).clamp(min=0)
    on_path = step < lengths
    nodes = torch.where(on_path, up_nodes_t.gather(1, from_leaf), 0)
    signs = torch.where(on_path, up_signs_t.gather(1, from_leaf), 0).to(torch.int8)
    return nodes, signs
