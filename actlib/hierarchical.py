r"""Hierarchical softmax: a log-probability over :math:`N` classes in :math:`O(\log N)`.

The classes are the leaves of a binary tree (:mod:`actlib.trees`). Internal node
:math:`n` has a weight vector :math:`w_n` and bias :math:`b_n`; at input :math:`x` it
sends the walk left with probability :math:`\sigma(s_n)` and right with
:math:`\sigma(-s_n)`, where :math:`s_n = w_n^\top x + b_n`. A class's probability is the
product along its root-to-leaf path, so with :math:`\pm 1` codes :math:`c_l` for
left/right

.. math::

    \log p(y \mid x) = \sum_{l=1}^{L_y} \log \sigma\!\left(c_l \, s_{n_l}(x)\right),
    \qquad \log\sigma(z) = \min(z, 0) - \log\!\left(1 + e^{-|z|}\right).

The probabilities of the two children of a node add up to their parent's, so the leaves
always sum to one, and a training step touches only the :math:`L_y \approx \log_2 N`
nodes on each target's path instead of all :math:`N` output rows.

Summing log-sigmoids, never multiplying probabilities, keeps every term finite: a
product of sigmoids along a deep path underflows in float32 (twenty factors of
:math:`\sigma(-6)` make :math:`10^{-52}`), and adding an epsilon inside the logarithm
then silently changes the model and its gradient.
"""

import os
import sys
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import check_bool, check_feature_input, check_int, eager_only_jvp
from .trees import balanced_tree, check_tree, huffman_tree, random_tree, tree_paths

# The tree builders are re-exported so that this module is the one import for all of it.
__all__ = [
    "HierarchicalSoftmax",
    "HierarchicalSoftmaxOutput",
    "TopK",
    "balanced_tree",
    "check_tree",
    "huffman_tree",
    "random_tree",
    "tree_paths",
]

# log_prob works on blocks of about this many (example, class) pairs at a time, so
# its temporaries stay at a few hundred megabytes whatever the batch size.
_LOG_PROB_BLOCK = 2**23


class HierarchicalSoftmaxOutput(NamedTuple):
    """What :meth:`HierarchicalSoftmax.forward` returns, as AdaptiveLogSoftmaxWithLoss does."""

    output: Tensor  #: log-probability of each target, shaped like the target
    loss: Tensor  #: mean negative log-likelihood of the batch (a scalar)


class TopK(NamedTuple):
    """What ``topk`` of HierarchicalSoftmax and of the sampled layers returns, as :func:`torch.topk` does."""

    values: Tensor  #: log-probabilities, in descending order along the last dimension
    indices: Tensor  #: their classes


def _opmath(tensor: Tensor) -> Tensor:
    """float16/bfloat16 → float32 for arithmetic, as PyTorch's own kernels do."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def _path_scores(input: Tensor, weight: Tensor, nodes: Tensor, on_path: Tensor) -> Tensor:
    r"""``s[b, l] = weight[nodes[b, l]] · input[b]`` in the opmath dtype (padding: any value).

    On the CPU, float32/float64 use a sampled dense-dense matmul (SDDMM): it takes the
    dot products straight from the weight rows instead of first copying the ``B × L``
    rows into a ``(B, L, D)`` tensor and reading that copy back, about half the time
    of gather-then-dot on a 2-core CPU. Elsewhere (CUDA, and half precision, which the
    CPU sampled_addmm does not take) the rows are gathered and then dotted, widened to
    float32 first when they are half precision.
    """
    if input.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64):
        crow = torch.zeros(input.shape[0] + 1, dtype=torch.int64)
        torch.cumsum(on_path.sum(dim=1), dim=0, out=crow[1:])
        columns = nodes[on_path]
        with warnings.catch_warnings():  # the CSR layout is marked beta; this use is plain
            warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
            pattern = torch.sparse_csr_tensor(
                crow,
                columns,
                input.new_zeros(columns.shape),
                (input.shape[0], weight.shape[0]),
                check_invariants=False,
            )
        values = torch.sparse.sampled_addmm(pattern, input, weight.t()).values()
        return input.new_zeros(on_path.shape).masked_scatter_(on_path, values)
    rows = F.embedding(nodes, weight)
    return torch.linalg.vecdot(_opmath(rows), _opmath(input).unsqueeze(-2))


def _gradient_rows(indices: Tensor, rows: Tensor, parameter: Tensor, sparse: bool) -> Tensor:
    """Sum ``rows`` into a zero gradient for ``parameter`` at ``indices`` (dense or sparse COO).

    A dense gradient is a fresh tensor laid out like the parameter (its strides, not a
    broadcast view with zero strides), which is the layout autograd's gradient contract
    and DistributedDataParallel's gradient buckets expect.
    """
    if sparse:  # like nn.Embedding(sparse=True): uncoalesced; the optimiser sums repeats
        return torch.sparse_coo_tensor(
            indices.unsqueeze(0), rows, parameter.shape, check_invariants=False
        )
    return torch.zeros_like(parameter, dtype=rows.dtype).index_add_(0, indices, rows)


def _called_by_torch_reparametrization() -> bool:
    """True when torch's named-member accessor (torch.func.functional_call) sets an attribute."""
    frame = sys._getframe(2)  # our caller's caller: __setattr__ is called by setattr's caller
    return frame.f_code.co_filename.endswith(
        os.path.join("torch", "nn", "utils", "_named_member_accessor.py")
    )


def _is_transformed(tensor: Tensor) -> bool:
    """True for a tensor wrapped by a torch.func transform (vmap, grad, jacrev …)."""
    return torch._C._functorch.is_functorch_wrapped_tensor(tensor)


def _gathered_path_scores(input: Tensor, weight: Tensor, bias: Tensor | None, nodes: Tensor):
    """``s = w_node · x + b_node`` by gather then dot: differentiable, and fine under vmap."""
    scores = torch.linalg.vecdot(_opmath(F.embedding(nodes, weight)), _opmath(input).unsqueeze(-2))
    if bias is not None:
        scores = scores + _opmath(bias)[nodes]
    return scores


def _check_tree_buffers(children: Tensor, nodes: Tensor, signs: Tensor) -> Tensor:
    """``children`` as int64 if the three buffers are a tree and its paths, else a ValueError.

    The same as comparing with ``tree_paths(check_tree(children))``, but vectorised
    (several times faster than check_tree's loop over the nodes): ids in range,
    every node but the root the child of exactly one internal node, internal nodes
    numbered breadth-first (they appear as children in the order 1, 2, …, reading the
    table row by row), and each class's path a walk from the root down the table to its
    own leaf, its signs the turns taken, padded with node 0 and sign 0. A table that
    passes holds no cycle: unreachable internal nodes would need twice as many child
    slots as there are unreachable nodes to fill them.
    """
    for name, table in (("node_children", children), ("path_nodes", nodes), ("path_signs", signs)):
        if table.is_floating_point() or table.is_complex() or table.dtype == torch.bool:
            raise ValueError(f"{name} must hold integers, got {table.dtype}")
    children, nodes, signs = children.long(), nodes.long(), signs.long()
    num_internal = children.shape[0]
    num_nodes = 2 * num_internal + 1
    if ((children < 1) | (children >= num_nodes)).any():
        raise ValueError(f"node_children ids must lie in [1, {num_nodes - 1}] (node 0 is the root)")
    if not (torch.bincount(children.reshape(-1), minlength=num_nodes)[1:] == 1).all():
        raise ValueError("node_children: every node but the root must have exactly one parent")
    flat = children.reshape(-1)
    if not torch.equal(flat[flat < num_internal], torch.arange(1, num_internal)):
        raise ValueError("node_children is not numbered breadth-first")
    if not ((signs == 1) | (signs == 0) | (signs == -1)).all():
        raise ValueError("path_signs must be +1 (left), -1 (right) or 0 (padding)")
    lengths = (signs != 0).sum(dim=1, keepdim=True)
    on_path = torch.arange(signs.shape[1]) < lengths
    if not torch.equal(signs != 0, on_path) or not (lengths >= 1).all():
        raise ValueError("path_signs: each path must be non-empty, with its padding at the end")
    if ((nodes < 0) | (nodes >= num_internal)).any() or ((nodes != 0) & ~on_path).any():
        raise ValueError(
            f"path_nodes must be internal nodes in [0, {num_internal - 1}], and 0 on padding"
        )
    if (nodes[:, 0] != 0).any():
        raise ValueError("path_nodes: every path must start at the root 0")
    # The child each step turns to: the next node on the path, the class's leaf at the end.
    taken = children.reshape(-1).take(2 * nodes + (signs == -1))
    expected = torch.cat([nodes[:, 1:], nodes.new_zeros(nodes.shape[0], 1)], dim=1)
    last = (lengths - 1).clamp(min=0)
    leaves = num_internal + torch.arange(nodes.shape[0]).unsqueeze(1)
    expected = expected.scatter(1, last, leaves)
    if not ((taken == expected) | ~on_path).all():  # (no boolean indexing: slow)
        raise ValueError(
            "path_nodes and path_signs are not the paths of node_children down to each class's leaf"
        )
    return children


class _PathLogLikelihood(torch.autograd.Function):
    r"""``log p(target) = Σ_l log σ(c_l s_l)`` along each example's padded path.

    Backward: :math:`\partial \log\sigma(z)/\partial z = \sigma(-z)` and
    :math:`z = c\,s`, so :math:`g_s = g \, c \, \sigma(-z)`, zero on padding where
    :math:`c = 0`. Then :math:`\nabla x = \sum_l g_{s_l} w_{n_l}` (one fused
    ``embedding_bag``), and row :math:`n` of :math:`\nabla W` is the sum of
    :math:`g_{s_l} x` over the steps that visit :math:`n` (one ``index_add_``, or a sparse
    tensor), rather than autograd scattering back through a ``(B, L, D)`` gather.

    When the backward is itself differentiated (``create_graph=True``, hessians) or runs
    under a torch.func transform (per-example gradients with ``vmap(grad(...))``), the
    same formulas are evaluated with differentiable, batchable ops, with ``z`` recomputed
    from the inputs so that its dependence on them is part of the graph.

    Forward mode (``jvp``): :math:`\dot s_l = \dot w_{n_l} \cdot x + w_{n_l} \cdot \dot x
    + \dot b_{n_l}` and :math:`\dot{\log p} = \sum_l \sigma(-z_l)\, c_l\, \dot s_l`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, weight, bias, nodes, signs, sparse):
        on_path = signs != 0
        if _is_transformed(input) or _is_transformed(weight):
            scores = _gathered_path_scores(input, weight, bias, nodes)
        else:
            scores = _path_scores(input, weight, nodes, on_path)
            if bias is not None:
                scores = scores + _opmath(bias)[nodes]
        z = signs.to(scores.dtype) * scores
        log_prob = (F.logsigmoid(z) * on_path).sum(dim=1)
        return log_prob, z

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, nodes, signs, sparse = inputs
        z = output[1]
        ctx.mark_non_differentiable(z)
        ctx.save_for_backward(input, weight, bias, nodes, signs, z)
        ctx.save_for_forward(input, weight, bias, nodes, signs, z)
        ctx.sparse = sparse

    @staticmethod
    def backward(ctx, grad_log_prob, _grad_z):
        input, weight, bias, nodes, signs, z = ctx.saved_tensors
        differentiable = torch.is_grad_enabled() or _is_transformed(grad_log_prob)
        if differentiable and ctx.sparse and any(ctx.needs_input_grad[1:3]):
            raise RuntimeError(
                "HierarchicalSoftmax(sparse=True): a sparse weight gradient cannot be "
                "differentiated again (create_graph=True, hessians) or batched per example "
                "(torch.func.vmap); build the layer with sparse=False for that"
            )
        if differentiable:
            # z again, from the inputs, so that the graph sees how it depends on them.
            z = signs.to(z.dtype) * _gathered_path_scores(input, weight, bias, nodes)
        grad_z = grad_log_prob.to(z.dtype).unsqueeze(1) * torch.sigmoid(-z)
        grad_scores = grad_z * signs.to(z.dtype)
        grad_input = grad_weight = grad_bias = None
        flat_nodes = nodes.reshape(-1)
        if ctx.needs_input_grad[0]:
            if differentiable:
                rows = F.embedding(nodes, weight)
                grad_input = torch.linalg.vecdot(
                    rows, grad_scores.to(weight.dtype).unsqueeze(-1), dim=1
                )
            else:
                grad_input = F.embedding_bag(
                    nodes, weight, per_sample_weights=grad_scores.to(weight.dtype), mode="sum"
                )
        if ctx.needs_input_grad[1]:
            rows = grad_scores.unsqueeze(2) * input.unsqueeze(1)
            rows = rows.to(weight.dtype).reshape(-1, weight.shape[1])
            if differentiable:
                grad_weight = torch.zeros_like(weight).index_add(0, flat_nodes, rows)
            else:
                grad_weight = _gradient_rows(flat_nodes, rows, weight, ctx.sparse)
        if bias is not None and ctx.needs_input_grad[2]:
            rows = grad_scores.reshape(-1).to(weight.dtype)
            if differentiable:
                grad_bias = torch.zeros_like(bias).index_add(0, flat_nodes, rows)
            else:
                grad_bias = _gradient_rows(flat_nodes, rows, bias, ctx.sparse)
        return grad_input, grad_weight, grad_bias, None, None, None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, input_tangent, weight_tangent, bias_tangent, *_):
        input, weight, bias, nodes, signs, z = ctx.saved_tensors
        score_tangent = torch.zeros_like(z)
        if input_tangent is not None:
            score_tangent = score_tangent + _gathered_path_scores(
                input_tangent, weight, None, nodes
            )
        if weight_tangent is not None:
            score_tangent = score_tangent + _gathered_path_scores(
                input, weight_tangent, None, nodes
            )
        if bias_tangent is not None:
            score_tangent = score_tangent + _opmath(bias_tangent)[nodes]
        tangent = (torch.sigmoid(-z) * signs.to(z.dtype) * score_tangent).sum(dim=1)
        return tangent, None


# Each parameter lives in a node table of its own (a submodule); HierarchicalSoftmax's
# ``weight`` and ``bias`` are the ``weight`` of these tables.
_TABLES = {"weight": "node_vectors", "bias": "node_biases"}


class _NodeTable(nn.Embedding):
    r"""One entry per internal node: the vectors :math:`w_n` (``(N - 1, D)``) or the biases
    :math:`b_n` (``(N - 1)``, one-dimensional), as the ``weight`` of an ``nn.Embedding``.

    An ``nn.Embedding`` for one reason: :class:`~torch.nn.parallel.DistributedDataParallel`
    expects sparse gradients only from the parameters of ``nn.Embedding`` and
    ``nn.EmbeddingBag`` modules built with ``sparse=True``. Any other parameter gets a
    dense gradient bucket, and a sparse gradient arriving there first draws the warning
    "Grad strides do not match bucket view strides" (a sparse tensor reports strides
    ``[0, 0]``) and then fails with "Cannot access storage of SparseTensorImpl". The
    table is never called: :class:`HierarchicalSoftmax` reads ``weight`` and computes its
    gradient itself (``_PathLogLikelihood``).
    """

    def __init__(self, shape: tuple[int, ...], bound: float, sparse: bool, **factory) -> None:
        # Not nn.Embedding.__init__, which would draw N(0, 1) weights first and so shift
        # the random stream; these are the attributes nn.Embedding's methods read.
        nn.Module.__init__(self)
        self.num_embeddings = shape[0]
        self.embedding_dim = shape[1] if len(shape) == 2 else 1
        self.padding_idx = None
        self.max_norm = None
        self.norm_type = 2.0
        self.scale_grad_by_freq = False
        self.sparse = sparse
        self.bound = bound
        self.weight = nn.Parameter(torch.empty(shape, **factory))  # drawn by the layer

    def reset_parameters(self) -> None:
        r""":math:`\mathcal{U}(-1/\sqrt{D}, 1/\sqrt{D})`, as ``nn.Linear`` initialises."""
        nn.init.uniform_(self.weight, -self.bound, self.bound)

    def forward(self, input: Tensor) -> Tensor:
        raise NotImplementedError(
            "a node table of HierarchicalSoftmax is not called: the layer reads its weight"
        )

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, sparse={self.sparse}"


class HierarchicalSoftmax(nn.Module):
    r"""Hierarchical softmax over a balanced or a Huffman tree, with exact prediction.

    .. math::

        \log p(y \mid x) = \sum_{l=1}^{L_y} \log\sigma\!\left(c_{y,l}\,
        (w_{n_{y,l}}^\top x + b_{n_{y,l}})\right)

    where :math:`n_{y,1}, \dots, n_{y,L_y}` are the internal nodes from the root to
    class :math:`y`'s leaf and :math:`c_{y,l} = +1` when the path turns left there,
    :math:`-1` when it turns right. The API follows
    :class:`torch.nn.AdaptiveLogSoftmaxWithLoss`.

    Args:
        in_features: size of each input sample, :math:`D`.
        num_classes: number of classes :math:`N \ge 2`.
        counts: optional class counts or frequencies (length :math:`N`, non-negative).
            Given, the tree is :func:`~actlib.huffman_tree` of them, so frequent classes
            get short paths; otherwise it is :func:`~actlib.balanced_tree`, with paths
            of :math:`\lfloor\log_2 N\rfloor` or :math:`\lceil\log_2 N\rceil` steps.
        children: optional tree of your own, an :math:`(N - 1, 2)` table of child ids as
            in :mod:`actlib.trees` (e.g. :func:`~actlib.trees.random_tree`, or one built
            from clustered class embeddings); validated by
            :func:`~actlib.trees.check_tree`, which renumbers its internal nodes
            breadth-first. Give ``counts`` or ``children``, not both.
        bias: learn a bias per internal node.
        sparse: return the weight and bias gradients as sparse COO tensors with one row
            per path step, as ``nn.Embedding(sparse=True)`` does. A dense gradient is an
            :math:`(N - 1) \times D` tensor that the backward pass must allocate and
            zero every step, which costs more than the rest of the step at large
            :math:`N`; :class:`torch.optim.SGD`, :class:`~torch.optim.SparseAdam` and
            :class:`~torch.optim.Adagrad` take sparse gradients. For an optimiser that
            needs a dense ``.grad`` (Adam), create it once (``p.grad =
            torch.zeros_like(p)``) and clear it with ``zero_grad(set_to_none=False)``:
            the sparse rows are then added into it in place, with no new allocation.

    Attributes:
        weight: :math:`(N - 1, D)`, one row per internal node, initialised like
            ``nn.Linear``: :math:`\mathcal{U}(-1/\sqrt{D}, 1/\sqrt{D})`. It is the
            ``weight`` of the submodule ``node_vectors``, an ``nn.Embedding``.
        bias: :math:`(N - 1)`, initialised the same way: the one-dimensional ``weight``
            of ``node_biases`` (``None``, and ``node_biases`` ``None``, for
            ``bias=False``). Both are ordinary leaf parameters with their own ``.grad``.
            Assigning an ``nn.Parameter`` to them sets the tables' ``weight``; anything
            else is a ``TypeError``, as for ``nn.Linear``, except ``bias = None``, which
            removes the bias as it does for ``nn.Linear``. Giving ``{"weight": ...,
            "bias": ...}`` to :func:`torch.func.functional_call` swaps plain tensors in.
        node_children, path_nodes, path_signs: the tree, as buffers, so they move with
            ``.to(device)`` and travel in ``state_dict``. :meth:`load_state_dict` checks
            them (the children table must be a tree numbered breadth-first, the paths
            its paths) and keeps the current tree when they are not; ``to_empty``
            from the meta device fills them with the tree, so deferred initialisation
            works: ``device="meta"``, then ``to_empty(device=...)`` and
            ``reset_parameters()``.

    Changed: the parameters moved from the layer itself into the node tables
    ``node_vectors`` and ``node_biases`` (``nn.Embedding`` subclasses, see below). Tools
    that look a parameter up on the module that owns it now take the table and the name
    ``"weight"``: ``torch.nn.utils.parametrize.register_parametrization(h.node_vectors,
    "weight", m)``, ``torch.nn.utils.parametrizations.weight_norm(h.node_vectors,
    "weight")``, ``torch.nn.utils.prune.l1_unstructured(h.node_vectors, "weight", 0.5)``
    (the bias likewise on ``h.node_biases``); on ``h`` with ``"weight"`` they fail. An
    initialisation hook run by ``model.apply(init)`` that tests ``isinstance(m,
    nn.Embedding)`` now also sees, and re-initialises, the node tables; test
    ``type(m) is nn.Embedding`` or skip ``actlib.hierarchical._NodeTable`` to leave them
    alone.

    Distributed training: the parameters live in ``nn.Embedding`` submodules because
    :class:`~torch.nn.parallel.DistributedDataParallel` accepts sparse gradients only
    from those, so ``sparse=True`` works under DDP with a backend that all-reduces
    sparse tensors (gloo; PyTorch's NCCL backend has no sparse all-reduce, so on GPUs
    with NCCL use ``sparse=False``). Every dense gradient is a fresh tensor with the
    parameter's strides, as DDP's gradient buckets expect. The ``state_dict`` keys are
    therefore ``node_vectors.weight`` and ``node_biases.weight``; a state dict saved by
    earlier versions, with the keys ``weight`` and ``bias``, still loads
    (:meth:`_load_from_state_dict` renames them).

    Shape:
        - input: :math:`(*, D)`, any number of leading dimensions, as for ``nn.Linear``;
          cast to the parameters' dtype. float16/bfloat16 parameters are fine: the
          sums of log-sigmoids are taken in float32 and the results cast back.
        - target: :math:`(*)`, integer class indices in :math:`[0, N)`.
        - output: :math:`(*)`; loss: scalar, ``NaN`` for an empty batch, like
          ``F.cross_entropy``'s mean.

    Examples:
        >>> hsm = HierarchicalSoftmax(16, 1000)
        >>> x, y = torch.randn(8, 16), torch.randint(0, 1000, (8,))
        >>> out = hsm(x, y)
        >>> out.output.shape, out.loss.shape
        (torch.Size([8]), torch.Size([]))
        >>> bool((hsm.predict(x) == hsm.log_prob(x).argmax(-1)).all())
        True
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        counts: Sequence[float] | Tensor | None = None,
        bias: bool = True,
        sparse: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        children: Tensor | None = None,
    ) -> None:
        super().__init__()
        check_int(in_features, "in_features", 1)
        check_int(num_classes, "num_classes", 2)
        check_bool(bias, "bias")
        check_bool(sparse, "sparse")
        if children is not None and counts is not None:
            raise ValueError("give counts (for a Huffman tree) or children (a tree), not both")
        if children is not None:
            children = check_tree(children, num_classes)
        elif counts is None:
            children = balanced_tree(num_classes)
        else:
            # float64, as huffman_tree reads them: float32 would flush counts of 1e-300 to
            # 0, reject 1e300 as infinite and break near-ties differently.
            counts = torch.as_tensor(counts, dtype=torch.float64, device="cpu")
            if counts.shape != (num_classes,):
                raise ValueError(
                    f"counts must hold one count per class: expected shape ({num_classes},), "
                    f"got {tuple(counts.shape)}"
                )
            children = huffman_tree(counts)
        nodes, signs = tree_paths(children)
        self.in_features = in_features
        self.num_classes = num_classes
        self.register_buffer("node_children", children.to(device))
        self.register_buffer("path_nodes", nodes.to(device))
        self.register_buffer("path_signs", signs.to(device))
        # A CPU copy of the tree (not a buffer: .to() leaves it, state_dict omits it), from
        # which reset_parameters rebuilds the buffers after meta → to_empty, which leaves
        # them uninitialised (deferred initialisation).
        self._tree = children
        factory = {"device": device, "dtype": dtype}
        bound = in_features**-0.5
        # The tables draw nothing when built; reset_parameters draws the weight, then
        # the bias, from the global generator, as nn.Linear does.
        num_internal = num_classes - 1
        self.node_vectors = _NodeTable((num_internal, in_features), bound, sparse, **factory)
        if bias:
            self.node_biases = _NodeTable((num_internal,), bound, sparse, **factory)
        else:
            self.register_module("node_biases", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weight, then the bias, from the global generator, as ``nn.Linear`` does."""
        self.node_vectors.reset_parameters()
        if self.node_biases is not None:
            self.node_biases.reset_parameters()

    def _apply(self, fn, recurse=True):
        # From the meta device to a real one (to_empty, for deferred initialisation) the
        # buffers come out uninitialised: rebuild the tree in them from the CPU copy.
        was_meta = self.path_nodes.device.type == "meta"
        result = super()._apply(fn, recurse)
        tree = self.__dict__.get("_tree")  # absent in a layer pickled by an earlier version
        if was_meta and self.path_nodes.device.type != "meta" and tree is not None:
            nodes, signs = tree_paths(tree)
            with torch.no_grad():
                self.node_children.copy_(tree)
                self.path_nodes.copy_(nodes)
                self.path_signs.copy_(signs)
        return result

    @property
    def sparse(self) -> bool:
        """Sparse weight and bias gradients; set it before wrapping the layer in DDP."""
        return self.node_vectors.sparse

    @sparse.setter
    def sparse(self, value: bool) -> None:
        check_bool(value, "sparse")
        for table in (self.node_vectors, self.node_biases):
            if table is not None:
                table.sparse = value

    @property
    def weight(self) -> nn.Parameter:
        """The node vectors :math:`w_n`, shape :math:`(N - 1, D)` (``node_vectors.weight``)."""
        return self.node_vectors.weight

    @property
    def bias(self) -> nn.Parameter | None:
        """The node biases :math:`b_n`, shape :math:`(N - 1)` (``node_biases.weight``)."""
        table = self.node_biases
        return None if table is None else table.weight

    def __setattr__(self, name: str, value) -> None:
        table_name = _TABLES.get(name)
        if table_name is None or table_name not in self.__dict__.get("_modules", {}):
            super().__setattr__(name, value)
            return
        table = self._modules[table_name]
        if value is None:
            if name == "weight":
                raise TypeError("weight cannot be None: the layer needs its node vectors")
            self._modules[table_name] = None  # as nn.Linear's bias = None: no bias from now on
        elif table is None:  # bias=False
            raise AttributeError(
                "this HierarchicalSoftmax has no bias (built with bias=False, or its bias "
                "set to None); build one with bias=True"
            )
        elif isinstance(value, nn.Parameter):
            table.weight = value
        elif isinstance(value, Tensor) and _called_by_torch_reparametrization():
            # torch.func.functional_call swaps a plain tensor in (and the original back).
            table._parameters["weight"] = value
        else:
            raise TypeError(
                f"cannot assign {type(value).__name__} as parameter {name!r} "
                f"(torch.nn.Parameter or None expected), as for nn.Linear"
            )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:  # fmt: skip
        # State dicts saved before the parameters moved into the node tables say
        # "weight" and "bias"; load_state_dict hands each module a copy it may edit.
        for name, table_name in _TABLES.items():
            if self._modules[table_name] is None:
                continue  # bias=False: a "bias" key stays, and torch reports it unexpected
            old, new = prefix + name, f"{prefix}{table_name}.weight"
            if old in state_dict and new not in state_dict:
                state_dict[new] = state_dict.pop(old)
        if self.node_biases is None and strict:
            # register_module("node_biases", None) makes torch skip these keys.
            unexpected_keys.extend(
                key for key in state_dict if key.startswith(prefix + "node_biases.")
            )
        tree = self._loaded_tree(state_dict, prefix, error_msgs)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)  # fmt: skip
        if tree is not None:
            self._tree = tree

    def _loaded_tree(self, state_dict, prefix, error_msgs) -> Tensor | None:
        """The tree of the buffers in ``state_dict``, validated; None when it brings none.

        The path buffers index the weight rows without further checks (an out-of-range
        node would read outside memory), so they must be the paths of a valid tree,
        numbered breadth-first (:func:`_check_tree_buffers`). On failure the error is
        reported through ``load_state_dict`` and the current tree buffers are kept.
        """
        names = ("node_children", "path_nodes", "path_signs")
        keys = [prefix + name for name in names]
        if not any(key in state_dict for key in keys):
            return None
        given = {}
        for name, key in zip(names, keys, strict=True):
            value = state_dict.get(key, self._buffers[name])
            if not isinstance(value, Tensor) or value.device.type == "meta":
                return None  # nothing to check (torch reports a non-tensor itself)
            if value.shape != self._buffers[name].shape:
                return None  # torch reports the shape mismatch itself
            given[name] = value.detach().cpu()
        try:
            children = _check_tree_buffers(
                given["node_children"], given["path_nodes"], given["path_signs"]
            )
        except (TypeError, ValueError) as error:
            error_msgs.append(f"invalid tree buffers for {type(self).__name__}: {error}")
            for name, key in zip(names, keys, strict=True):  # keep the current tree
                if key in state_dict:
                    state_dict[key] = self._buffers[name]
            return None
        return children

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"max_depth={self.path_nodes.shape[1]}, bias={self.bias is not None}, "
            f"sparse={self.sparse}"
        )

    @property
    def path_lengths(self) -> Tensor:
        """Number of binary decisions on each class's path, shape :math:`(N)`."""
        return (self.path_signs != 0).sum(dim=1)

    # -- input checks -----------------------------------------------------------------

    def _flatten_input(self, input: Tensor) -> tuple[Tensor, torch.Size]:
        check_feature_input(input, self.in_features)
        x = input.reshape(-1, self.in_features).to(self.weight.dtype)
        return x, input.shape[:-1]

    def _flatten_target(self, target: Tensor, batch_shape: torch.Size) -> Tensor:
        if not isinstance(target, Tensor):
            raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, got {target.dtype}")
        if target.shape != batch_shape:
            raise ValueError(
                f"input batch shape {tuple(batch_shape)} and target shape "
                f"{tuple(target.shape)} differ"
            )
        tree_device = self.path_nodes.device
        if target.device != tree_device and target.device.type == "meta":
            raise ValueError(
                f"target is on the meta device, which holds no class indices to look up; "
                f"give it on {tree_device}, the device of the layer"
            )
        # Under a torch.func transform (vmap for per-example gradients) the values cannot
        # be read back; an index out of range still fails in the lookup below.
        if target.numel() and tree_device.type != "meta" and not _is_transformed(target):
            # int64 first: aminmax has no kernel for uint16/32/64.
            low, high = (int(v) for v in torch.aminmax(target.long()))
            if low < 0 or high >= self.num_classes:
                raise ValueError(
                    f"target values must lie in [0, {self.num_classes - 1}], "
                    f"found values in [{low}, {high}]"
                )
        return target.reshape(-1).long()

    # -- training -----------------------------------------------------------------------

    def forward(self, input: Tensor, target: Tensor) -> HierarchicalSoftmaxOutput:
        """Log-probability of each target and the mean negative log-likelihood.

        Costs :math:`O(B \\log N \\cdot D)`: only the nodes on the targets' paths are
        touched, all examples at once, padding of shorter paths masked out.
        """
        x, batch_shape = self._flatten_input(input)
        flat_target = self._flatten_target(target, batch_shape)
        log_prob, _ = _PathLogLikelihood.apply(
            x,
            self.weight,
            self.bias,
            self.path_nodes[flat_target],
            self.path_signs[flat_target],
            self.sparse,
        )
        loss = -log_prob.mean()  # in float32 when the parameters are half precision
        dtype = self.weight.dtype
        return HierarchicalSoftmaxOutput(log_prob.to(dtype).reshape(batch_shape), loss.to(dtype))

    # -- every class --------------------------------------------------------------------

    def log_prob(self, input: Tensor) -> Tensor:
        """Log-probabilities of all classes, shape :math:`(*, N)`; differentiable.

        Costs a full :math:`(N - 1) \\times D` matmul per example, like a plain softmax:
        it is for evaluation and checks, not for training.
        """
        x, batch_shape = self._flatten_input(input)
        rows_per_block = max(1, _LOG_PROB_BLOCK // self.num_classes)
        blocks = [self._log_prob_2d(block) for block in x.split(rows_per_block) if len(block)]
        log_prob = torch.cat(blocks) if blocks else x.new_empty(0, self.num_classes)
        return log_prob.to(self.weight.dtype).reshape(*batch_shape, self.num_classes)

    def _log_prob_2d(self, x: Tensor) -> Tensor:
        # Top-down, one depth at a time: a child's log-probability is its parent's plus
        # log σ(±s_parent), so each node costs one addition per example after the
        # matmul, O(N B) in all rather than O(N B L) for summing every path anew. The
        # layout is (node, example): a depth's internal nodes are a block of rows, as
        # they are numbered breadth-first (see actlib.trees).
        num_internal = self.num_classes - 1
        scores = self.weight @ x.t()
        if self.bias is not None:
            scores = scores + self.bias.unsqueeze(1)
        scores = _opmath(scores)
        log_left = F.logsigmoid(scores)
        log_right = log_left - scores  # log σ(-s) = log σ(s) - s: no second logarithm
        leaf_classes, leaf_log_probs = [], []
        level = scores.new_zeros(1, x.shape[0])  # the root, reached with probability 1
        start = 0
        while level.shape[0]:
            stop = start + level.shape[0]
            children = self.node_children[start:stop].reshape(-1)
            log_probs = torch.stack(
                [level + log_left[start:stop], level + log_right[start:stop]], dim=1
            ).flatten(0, 1)
            leaf = children >= num_internal
            if leaf.any():
                leaf_classes.append(children[leaf] - num_internal)
                leaf_log_probs.append(log_probs[leaf])
                log_probs = log_probs[~leaf]
            level, start = log_probs, stop  # the next depth's internal nodes, in order
        order = torch.argsort(torch.cat(leaf_classes))
        return torch.cat(leaf_log_probs)[order].t()

    # -- prediction ---------------------------------------------------------------------

    def predict(self, input: Tensor) -> Tensor:
        """The most probable class, exactly ``log_prob(input).argmax(-1)``, shape :math:`(*)`.

        Found by a pruned search (see :meth:`topk`), not by greedy descent. Among classes
        of exactly equal log-probability (ties, e.g. all-zero weights) it may return
        another one than ``argmax``'s first, as :meth:`topk` says.
        """
        return self.topk(input, 1).indices.squeeze(-1)

    @torch.no_grad()
    def topk(self, input: Tensor, k: int) -> TopK:
        r"""The ``k`` most probable classes, exactly ``log_prob(input).topk(k)``.

        Every partial sum of log-sigmoids along a path is an upper bound on the
        log-probability of all leaves below it, because :math:`\log\sigma \le 0`. So:

        1. a beam search of width ``k`` (greedy descent for ``k = 1``) finds ``k``
           leaves; the ``k``-th best of their log-probabilities is a lower bound
           :math:`\beta` on the true ``k``-th best;
        2. every subtree the beam dropped on its way down is bounded by the partial sum
           at its root. Those below :math:`\beta` (minus a rounding slack) are never
           opened; the others are searched breadth-first, all examples at once, cutting
           every node below :math:`\beta` the same way. No leaf of the true top ``k``
           can be cut, since its ancestors' partial sums are at least its own
           log-probability.

        When node decisions are confident, nearly every dropped subtree falls below
        :math:`\beta` at once and ``predict`` costs little more than the greedy descent,
        about :math:`\log_2 N` weight rows per example instead of :math:`N`. An example
        whose open nodes outgrow a budget (an untrained model, or near-even decisions)
        is finished by the dense :meth:`log_prob` instead, so the result is exact
        either way. Ties, which have
        probability zero for continuous inputs, may be broken either way. The values
        carry no gradient: use :meth:`log_prob` for that.

        Returns:
            ``TopK(values, indices)``, each of shape :math:`(*, k)`, values descending.
        """
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int, got {k!r} ({type(k).__name__})")
        if not 1 <= k <= self.num_classes:
            raise ValueError(f"k must lie in [1, {self.num_classes}], got {k}")
        x, batch_shape = self._flatten_input(input)
        if x.shape[0] == 0:
            values = x.new_empty(0, k)
            indices = torch.empty(0, k, dtype=torch.int64, device=x.device)
        else:
            values, indices = self._exact_topk(x, k)
        return TopK(
            values.to(self.weight.dtype).reshape(*batch_shape, k),
            indices.reshape(*batch_shape, k),
        )

    @torch.no_grad()
    def predict_greedy(self, input: Tensor) -> Tensor:
        """An APPROXIMATE prediction: descend taking the likelier child at every node.

        Reads one weight row per level, but the leaf it ends at need not be the most
        probable class (a confident first turn can lead to a subtree of poor leaves).
        Kept for comparison; :meth:`predict` is exact at nearly the same cost once a
        model is trained.
        """
        x, batch_shape = self._flatten_input(input)
        return self._beam(x, 1)[1].reshape(batch_shape)

    def _node_scores(self, x: Tensor, nodes: Tensor) -> Tensor:
        """``s = w_node · x + b_node`` for broadcastable ``x (…, D)`` and ``nodes (…)``."""
        scores = torch.linalg.vecdot(_opmath(F.embedding(nodes, self.weight)), _opmath(x))
        if self.bias is not None:
            scores = scores + _opmath(self.bias)[nodes]
        return scores

    def _beam(self, x: Tensor, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Beam search of ``width``, and every subtree it let go.

        Each round expands the beam's internal nodes into a pool of children (a leaf
        stays in the pool as itself) and keeps the ``width`` best partial sums; before
        the beam has filled, empty slots hold score -inf. After as many rounds as the
        deepest path every slot holds a leaf.

        Returns:
            ``(scores, leaves, dropped_nodes, dropped_scores)``: the beam's leaves and
            their log-probabilities, best first, shape ``(B, width)``; and the pool
            entries the beam dropped, shape ``(B, P)``, each the root of a subtree
            nobody looked into, with its partial sum, which bounds the log-probability
            of every leaf below it. Beam and dropped subtrees hold every leaf once.
        """
        num_internal = self.num_classes - 1
        batch = x.shape[0]
        nodes = torch.zeros(batch, 1, dtype=torch.int64, device=x.device)
        scores = torch.zeros(batch, 1, dtype=_opmath(x).dtype, device=x.device)
        dropped_nodes, dropped_scores = [], []
        for _ in range(self.path_nodes.shape[1]):
            internal = nodes < num_internal
            at = nodes.where(internal, 0)
            s = self._node_scores(x.unsqueeze(1), at)
            children = self.node_children[at]
            left = children[..., 0].where(internal, nodes)
            right = children[..., 1].where(internal, num_internal)
            left_score = (scores + F.logsigmoid(s)).where(internal, scores)
            right_score = (scores + F.logsigmoid(-s)).where(internal, -torch.inf)
            pool_scores, order = torch.cat([left_score, right_score], dim=1).sort(
                dim=1, descending=True
            )
            pool_nodes = torch.cat([left, right], dim=1).gather(1, order)
            scores, nodes = pool_scores[:, :width], pool_nodes[:, :width]
            dropped_nodes.append(pool_nodes[:, width:])
            dropped_scores.append(pool_scores[:, width:])
        return (
            scores,
            nodes - num_internal,
            torch.cat(dropped_nodes, dim=1),
            torch.cat(dropped_scores, dim=1),
        )

    def _frontier_budget(self, k: int) -> int:
        # Past about this many open nodes per level, reading weight rows one by one for
        # every level costs more than the dense matmul of log_prob, which reads all
        # N - 1 rows at matmul speed. A confident model leaves almost nothing open.
        return max(4 * k, 16, self.num_classes // (64 * self.path_nodes.shape[1]))

    def _exact_topk(self, x: Tensor, k: int) -> tuple[Tensor, Tensor]:
        num_internal = self.num_classes - 1
        batch = x.shape[0]
        every_row = torch.arange(batch, device=x.device)
        beam_scores, beam_leaves, dropped_nodes, dropped_scores = self._beam(x, k)
        lower = beam_scores[:, k - 1]
        # The search adds up path scores in another order than the beam did; the slack
        # keeps it from cutting a leaf whose score rounds a hair below the beam's.
        cutoff = lower - torch.finfo(lower.dtype).eps ** 0.5 * 4 * (1 + lower.abs())
        use_dense = ~torch.isfinite(lower)  # NaN or inf scores: let log_prob say
        budget = self._frontier_budget(k)

        # Only dropped subtrees whose bound reaches the cutoff can hold a better leaf.
        promising = dropped_scores >= cutoff.unsqueeze(1)
        rows = every_row.unsqueeze(1).expand_as(dropped_nodes)[promising]
        nodes, partial = dropped_nodes[promising], dropped_scores[promising]
        found_rows = [every_row.repeat_interleave(k)]
        found_classes, found_scores = [beam_leaves.reshape(-1)], [beam_scores.reshape(-1)]
        while True:
            leaf = nodes >= num_internal
            found_rows.append(rows[leaf])
            found_classes.append(nodes[leaf] - num_internal)
            found_scores.append(partial[leaf])
            rows, nodes, partial = rows[~leaf], nodes[~leaf], partial[~leaf]
            crowded = torch.bincount(rows, minlength=batch) > budget
            if crowded.any():
                use_dense |= crowded
                stay = ~crowded[rows]
                rows, nodes, partial = rows[stay], nodes[stay], partial[stay]
            if not rows.numel():
                break
            # Expand the open nodes of all examples at once; keep children above cutoff.
            s = self._node_scores(x[rows], nodes)
            children = self.node_children[nodes]
            child_scores = torch.stack(
                [partial + F.logsigmoid(s), partial + F.logsigmoid(-s)], dim=1
            )
            child_rows = rows.unsqueeze(1).expand_as(children)
            keep = child_scores >= cutoff[child_rows]
            rows, nodes, partial = child_rows[keep], children[keep], child_scores[keep]

        rows, classes, scores = (
            torch.cat(found_rows),
            torch.cat(found_classes),
            torch.cat(found_scores),
        )
        searched = ~use_dense[rows]
        rows, classes, scores = rows[searched], classes[searched], scores[searched]
        # Group by example, best first within each group, and take each group's first k.
        order = torch.argsort(scores, descending=True, stable=True)
        order = order[torch.argsort(rows[order], stable=True)]
        group_size = torch.bincount(rows, minlength=batch)
        group_start = torch.cumsum(group_size, dim=0) - group_size
        take = order[group_start[~use_dense].unsqueeze(1) + torch.arange(k, device=x.device)]

        values = torch.empty(batch, k, dtype=lower.dtype, device=x.device)
        indices = torch.empty(batch, k, dtype=torch.int64, device=x.device)
        values[~use_dense], indices[~use_dense] = scores[take], classes[take]
        if use_dense.any():
            dense_values, dense_indices = self.log_prob(x[use_dense]).topk(k, dim=-1)
            values[use_dense], indices[use_dense] = _opmath(dense_values), dense_indices
        return values, indices
