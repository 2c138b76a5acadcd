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

__all__ = [
    "balanced_tree",
    "check_tree",
    "clustered_tree",
    "huffman_tree",
    "random_tree",
    "tree_paths",
]


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


def random_tree(num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    r"""A random binary tree over ``num_classes`` leaves: merge two random subtrees until one is left.

    Starting from the :math:`N` leaves, each of the :math:`N - 1` steps joins two subtrees
    chosen uniformly at random (Kingman's coalescent), the first drawn becoming the left
    child. The classes land in random places and the paths have about
    :math:`2 \ln N` steps on average (a balanced tree has :math:`\log_2 N`), so it is the
    baseline a tree built from class frequencies or similarities must beat.

    Args:
        num_classes: the number of leaves :math:`N \ge 2`.
        generator: the ``torch.Generator`` to draw from (reproducible); the global one
            if ``None``.

    Returns:
        ``children``, an int64 tensor of shape ``(N - 1, 2)``, numbered breadth-first.
    """
    _check_num_classes(num_classes)
    num_internal = num_classes - 1
    # Subtree ids as in huffman_tree: leaves their final ids, merge j as -(j + 1).
    pool = list(range(num_internal, num_internal + num_classes))
    merged_children: list[tuple[int, int]] = []
    for size in range(num_classes, 1, -1):
        first, second = torch.randperm(size, generator=generator)[:2].tolist()
        left, right = pool[first], pool[second]
        for index in sorted((first, second), reverse=True):
            pool[index] = pool[-1]  # remove by swapping with the last, O(1)
            pool.pop()
        merged_children.append((left, right))
        pool.append(-len(merged_children))
    return _renumber_breadth_first(merged_children)


def check_tree(children, num_classes: int) -> Tensor:
    r"""``children`` validated as a tree over ``num_classes`` leaves, numbered breadth-first.

    Any rooted binary tree with the conventions of this module is accepted: an
    ``(N - 1, 2)`` table of integers, root ``0``, leaf of class ``c`` at ``N - 1 + c``, every
    node except the root the child of exactly one internal node, and every node reachable
    from the root. Internal nodes may be numbered in any order: they are renumbered
    breadth-first (what :func:`tree_paths` and the searches of
    :class:`~actlib.HierarchicalSoftmax` rely on). Each violation is a ``ValueError`` (or a
    ``TypeError`` for a non-integer table) that names it.
    """
    _check_num_classes(num_classes)
    table = torch.as_tensor(children, device="cpu")
    if table.is_floating_point() or table.is_complex() or table.dtype == torch.bool:
        raise TypeError(f"children must hold integer node ids, got dtype {table.dtype}")
    num_internal = num_classes - 1
    if table.shape != (num_internal, 2):
        raise ValueError(
            f"children must have shape ({num_internal}, 2) for {num_classes} classes (one row "
            f"of two children per internal node), got {tuple(table.shape)}"
        )
    table = table.to(torch.int64)
    num_nodes = 2 * num_internal + 1
    if (table < 1).any() or (table >= num_nodes).any():
        raise ValueError(
            f"children ids must lie in [1, {num_nodes - 1}] (node 0 is the root, which is "
            f"nobody's child; ids from {num_internal} on are the leaves of classes 0..{num_classes - 1})"
        )
    counts = torch.bincount(table.reshape(-1), minlength=num_nodes)
    twice = (counts[1:] > 1).nonzero().flatten() + 1
    if twice.numel():
        raise ValueError(f"node {twice[0].item()} is the child of more than one internal node")
    # Now every node but the root has exactly one parent; a walk from the root that
    # misses some internal node means a cycle among the others (it cannot reach them).
    merged: dict[int, tuple[int, int]] = {}
    seen, queue = {0}, [0]
    for node in queue:  # breadth-first; with one parent each, no node is reached twice
        for child in table[node].tolist():
            if child < num_internal:
                seen.add(child)
                queue.append(child)
    if len(seen) != num_internal:
        missing = sorted(set(range(num_internal)) - seen)[:5]
        raise ValueError(
            f"internal nodes {missing} are not reachable from the root 0 (a cycle): not a tree"
        )
    # Renumber breadth-first through the merge representation of huffman_tree:
    # internal node i becomes merge -(j + 1), the root the last merge.
    order = queue[::-1]  # children before parents; the root last
    merge_of = {node: j for j, node in enumerate(order)}
    for node in order:
        row = table[node].tolist()
        merged[node] = tuple(-(merge_of[c] + 1) if c < num_internal else c for c in row)
    return _renumber_breadth_first([merged[node] for node in order])


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
        children: a tree as :func:`balanced_tree`, :func:`huffman_tree`, :func:`random_tree`
            or :func:`check_tree` return it.

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


def clustered_tree(
    embeddings, iterations: int = 10, generator: torch.Generator | None = None
) -> Tensor:
    r"""A balanced tree that puts similar classes under the same internal nodes: recursive 2-means.

    Mnih and Hinton (2009) build the tree of a hierarchical language model from class
    embeddings learnt by a first model: split the classes into two clusters, then split each
    cluster again, down to single classes. Here each split is a *balanced* 2-means on the
    rows of ``embeddings``: with centroids :math:`\mu_1, \mu_2`, every class :math:`c` of the
    set gets the score :math:`s_c = \lVert e_c - \mu_1\rVert^2 - \lVert e_c - \mu_2\rVert^2`,
    the :math:`\lceil n/2 \rceil` classes of smallest score form the left child and the rest the
    right one, and the centroids are recomputed as the means of the two halves, up to
    ``iterations`` times or until no class changes sides. The first centroids are a random
    class of the set and the class farthest from it. Every path therefore has
    :math:`\lfloor \log_2 N \rfloor` or :math:`\lceil \log_2 N \rceil` steps, as in
    :func:`balanced_tree`, but a node's decision now separates groups of similar classes,
    which is easier to learn than an arbitrary split.

    All the sets of one depth are split at once, by segment operations over the ``N`` rows,
    rather than by a Python loop over the nodes.

    Args:
        embeddings: an ``(N, D)`` real tensor (or array), one row per class, ``N >= 2``,
            finite; used in float64 on the CPU.
        iterations: the most 2-means updates per split, ``>= 1``.
        generator: the ``torch.Generator`` that picks the first centroid of each split
            (reproducible); the global one if ``None``.

    Returns:
        ``children``, an int64 tensor of shape ``(N - 1, 2)``, numbered breadth-first.
    """
    points = torch.as_tensor(embeddings).detach()
    if points.is_complex() or points.dtype == torch.bool:
        raise TypeError(f"embeddings must be real numbers, got dtype {points.dtype}")
    if points.dim() != 2:
        raise ValueError(
            f"embeddings must be an (N, D) table, one row per class, got shape {tuple(points.shape)}"
        )
    points = points.to("cpu", torch.float64)
    num_classes = points.shape[0]
    _check_num_classes(num_classes)
    if not torch.isfinite(points).all():
        raise ValueError("embeddings must be finite")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")

    num_internal = num_classes - 1
    children = torch.empty(num_internal, 2, dtype=torch.int64)
    # The sets still to split, each a contiguous block of `order` (class ids), in
    # breadth-first order, with their sizes (all >= 2) and their internal node ids.
    order = torch.arange(num_classes)
    sizes = torch.tensor([num_classes])
    nodes = torch.tensor([0])
    next_node = 1
    while sizes.numel():
        num_sets = sizes.numel()
        starts = torch.cumsum(sizes, 0) - sizes
        segment = torch.repeat_interleave(torch.arange(num_sets), sizes)
        position = torch.arange(order.numel())
        half = (sizes + 1) // 2  # the left child's size
        x = points[order]

        # First centroids: a random member and the member farthest from it.
        first = starts + (torch.rand(num_sets, generator=generator, dtype=torch.float64) * sizes).long()
        first = torch.minimum(first, starts + sizes - 1)
        distance = (x - x[first][segment]).pow(2).sum(1)
        farthest = torch.zeros(num_sets, dtype=torch.float64).scatter_reduce(
            0, segment, distance, "amax", include_self=False
        )
        candidate = torch.where(distance == farthest[segment], position, order.numel())
        second = torch.full((num_sets,), order.numel()).scatter_reduce(0, segment, candidate, "amin")
        mu_left, mu_right = x[first], x[second]

        within, left = None, None
        counts = torch.stack([half, sizes - half], dim=1).reshape(-1, 1)
        for _ in range(iterations):
            # ||x - mu_l||^2 - ||x - mu_r||^2, without forming x - mu per row
            offset = mu_left.pow(2).sum(1) - mu_right.pow(2).sum(1)
            score = offset[segment] - 2 * (x * (mu_left - mu_right)[segment]).sum(1)
            # Sort by score within each set (stable sorts: by score, then by set).
            by_score = torch.argsort(score, stable=True)
            now_within = by_score[torch.argsort(segment[by_score], stable=True)]
            now_left = torch.empty(x.shape[0], dtype=torch.bool)
            now_left[now_within] = position - starts[segment] < half[segment]
            if left is not None and torch.equal(now_left, left):
                break
            within, left = now_within, now_left
            side = segment * 2 + (~left).long()
            sums = torch.zeros(2 * num_sets, x.shape[1], dtype=torch.float64).index_add_(0, side, x)
            mu_left, mu_right = (sums / counts).reshape(num_sets, 2, -1).unbind(1)
        order = order[within]

        # Children of every set: left then right, in breadth-first order.
        child_sizes = torch.stack([half, sizes - half], dim=1).reshape(-1)
        child_starts = torch.cumsum(child_sizes, 0) - child_sizes
        is_internal = child_sizes >= 2
        internal_ids = next_node + torch.cumsum(is_internal.long(), 0) - 1
        leaf_ids = num_internal + order[child_starts]
        children[nodes] = torch.where(is_internal, internal_ids, leaf_ids).reshape(num_sets, 2)
        next_node += int(is_internal.sum())

        keep = is_internal[torch.repeat_interleave(torch.arange(2 * num_sets), child_sizes)]
        order = order[keep]
        sizes, nodes = child_sizes[is_internal], internal_ids[is_internal]
    return children
