"""Binary trees over classes, for :class:`actlib.HierarchicalSoftmax`.

A tree over ``N`` classes is one ``(N - 1, 2)`` integer tensor ``children``: row ``i``
holds the left and the right child of internal node ``i``. Ids below ``N - 1`` are
internal nodes, id ``N - 1 + c`` is the leaf of class ``c``. Node ``0`` is the root and
internal nodes are numbered breadth-first, so every child id is larger than its
parent's and a path read from the root visits increasing ids.

Every internal node has exactly two children, so the tree has exactly ``N`` leaves:
there are no phantom leaves that would take probability mass from the real classes.
"""

import math
import operator
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


def _check_num_classes(num_classes) -> int:
    """``num_classes`` as an int (numpy's and torch's integers too; not a bool or a float), >= 2."""
    try:
        if isinstance(num_classes, bool):
            raise TypeError
        num_classes = operator.index(num_classes)
    except TypeError:
        raise TypeError(f"num_classes must be an int, got {num_classes!r}") from None
    if num_classes < 2:
        raise ValueError(f"a tree needs at least 2 classes, got num_classes={num_classes}")
    if num_classes > 2**62:  # node ids 0 .. 2N - 2 must fit in int64
        raise ValueError(f"num_classes={num_classes} is too large: node ids must fit in int64")
    return num_classes


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
    num_classes = _check_num_classes(num_classes)
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
    num_classes = _check_num_classes(weights.numel())
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

    With ``size`` subtrees left, the pair is drawn as ``i = ⌊u·size⌋`` and
    ``j = ⌊v·(size − 1)⌋``, ``j += j >= i``, from uniform float64 ``u, v`` (all drawn in one
    call): O(N) in all.

    Args:
        num_classes: the number of leaves :math:`N \ge 2`.
        generator: the ``torch.Generator`` to draw from (reproducible); the global one
            if ``None``.

    Returns:
        ``children``, an int64 tensor of shape ``(N - 1, 2)``, numbered breadth-first.
    """
    num_classes = _check_num_classes(num_classes)
    num_internal = num_classes - 1
    sizes = torch.arange(num_classes, 1, -1, dtype=torch.float64)
    uniform = torch.rand(2, num_internal, generator=generator, dtype=torch.float64)
    firsts = torch.minimum((uniform[0] * sizes).long(), sizes.long() - 1).tolist()
    seconds = torch.minimum((uniform[1] * (sizes - 1)).long(), sizes.long() - 2).tolist()
    # Subtree ids as in huffman_tree: leaves their final ids, merge j as -(j + 1).
    pool = list(range(num_internal, num_internal + num_classes))
    merged_children: list[tuple[int, int]] = []
    for first, second in zip(firsts, seconds, strict=True):
        second += second >= first  # a second index different from the first, uniformly
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
    num_classes = _check_num_classes(num_classes)
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
    rows = table.tolist()  # one conversion: indexing the tensor per node is ~100x slower
    seen, queue = {0}, [0]
    for node in queue:  # breadth-first; with one parent each, no node is reached twice
        for child in rows[node]:
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
        row = rows[node]
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
    set gets the score :math:`s_c = \lVert e_c - \mu_1\rVert^2 - \lVert e_c - \mu_2\rVert^2`;
    the :math:`\lceil n/2 \rceil` classes of smallest score form the left child and the rest the
    right one, or, for odd :math:`n`, the :math:`\lceil n/2 \rceil` of largest score, whichever
    of the two splits has the smaller within-cluster sum of squares
    :math:`\sum_c \lVert e_c\rVert^2 - \lVert S_L\rVert^2 / n_L - \lVert S_R\rVert^2 / n_R` (:math:`S` the
    sums of the halves), so the larger half is not forced onto :math:`\mu_1`'s side. The
    centroids are then recomputed as the means of the two halves, up to ``iterations`` times
    or until no class changes sides. The first centroids are a random class of the set and
    the class farthest from it. Every path therefore has :math:`\lfloor \log_2 N \rfloor` or
    :math:`\lceil \log_2 N \rceil` steps, as in :func:`balanced_tree`, but a node's decision now
    separates groups of similar classes, which is easier to learn than an arbitrary split.

    All the sets of one depth are split at once, by segment operations over the ``N`` rows,
    rather than by a Python loop over the nodes: the sets of one depth differ in size by at
    most one, so they are padded into one block and every update is a batched matrix
    product (scores, and the sums of each set's lowest :math:`\lfloor n/2 \rfloor` scores, its
    middle one and the rest, from which both candidate splits follow).

    Args:
        embeddings: an ``(N, D)`` real tensor (or array), one row per class, ``N >= 2``,
            ``D >= 1``, finite; used on the CPU, in float32 if it is float32, else in float64.
        iterations: the most 2-means updates per split, an int ``>= 1``.
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
    if points.shape[1] == 0:
        raise ValueError("embeddings must have at least one column (D >= 1), got shape "
                         f"{tuple(points.shape)}")  # fmt: skip
    dtype = torch.float32 if points.dtype == torch.float32 else torch.float64
    points = points.to("cpu", dtype)
    num_classes = _check_num_classes(points.shape[0])
    if not torch.isfinite(points).all():
        raise ValueError("embeddings must be finite")
    try:
        if isinstance(iterations, bool):
            raise TypeError
        iterations = operator.index(iterations)
    except TypeError:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}") from None
    if iterations < 1:
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
        num_sets, width = sizes.numel(), int(sizes.max())
        starts = torch.cumsum(sizes, 0) - sizes
        half = (sizes + 1) // 2  # the left child's size (the larger half)
        rest = sizes - half
        # The sets of this depth differ in size by at most one: pad them into one
        # (sets, width, D) block, so that every update is a batched matrix product.
        slot = torch.arange(width)
        valid = slot < sizes[:, None]
        members = order[torch.minimum(starts[:, None] + slot, starts[:, None] + sizes[:, None] - 1)]
        x = points[members] * valid[..., None]

        # First centroids: a random member and the member farthest from it (the first such).
        first = (torch.rand(num_sets, generator=generator, dtype=torch.float64) * sizes).long()
        first = torch.minimum(first, sizes - 1)
        sets = torch.arange(num_sets)
        distance = (x - x[sets, first][:, None]).pow(2).sum(2).masked_fill(~valid, -1.0)
        mu_left, mu_right = x[sets, first], x[sets, distance.argmax(1)]

        left = None
        # sets of two: {a} | {b} whatever the centroids (the first member goes left)
        for _ in range(iterations if width > 2 else 0):
            # ||x - mu_l||^2 - ||x - mu_r||^2, without forming x - mu per row
            offset = mu_left.pow(2).sum(1) - mu_right.pow(2).sum(1)
            score = offset[:, None] - 2 * torch.bmm(x, (mu_left - mu_right)[:, :, None])[..., 0]
            score = score.masked_fill(~valid, math.inf)  # padding ranks last
            rank = torch.empty_like(slot.expand(num_sets, -1)).scatter_(
                1, torch.argsort(score, dim=1, stable=True), slot.expand(num_sets, -1)
            )
            # Sums per set of the ranks [0, floor(n/2)), the middle one (odd n), the rest.
            part = (rank >= rest[:, None]).long() + (rank >= half[:, None]).long()
            one_hot = (part[:, None, :] == torch.arange(3)[None, :, None]) & valid[:, None, :]
            parts = torch.bmm(one_hot.to(x.dtype), x)
            low_rest, low_half, total = parts[:, 0], parts[:, :2].sum(1), parts.sum(1)
            # Either the ceil(n/2) smallest scores go left (a), or the ceil(n/2) largest (b):
            # keep the larger ||S_L||²/n_L + ||S_R||²/n_R, i.e. the smaller within-cluster SS.
            gain_a = low_half.pow(2).sum(1) / half + (total - low_half).pow(2).sum(1) / rest
            gain_b = (total - low_rest).pow(2).sum(1) / half + low_rest.pow(2).sum(1) / rest
            flip = (gain_b > gain_a)[:, None]
            now_left = torch.where(flip, rank >= rest[:, None], rank < half[:, None]) & valid
            if left is not None and torch.equal(now_left, left):
                break
            left = now_left
            mu_left = torch.where(flip, total - low_rest, low_half) / half[:, None]
            mu_right = torch.where(flip, low_rest, total - low_half) / rest[:, None]
        if left is None:
            left = slot.expand(num_sets, -1) == 0
        # Each set's members, left child first (stable: in their order), padding last.
        side = torch.argsort((~left).long() + 2 * (~valid).long(), dim=1, stable=True)
        order = members.gather(1, side)[valid]

        # Children of every set: left then right, in breadth-first order.
        child_sizes = torch.stack([half, rest], dim=1).reshape(-1)
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
