r"""Sampled output layers: negative sampling and sampled softmax, with exact evaluation.

Both layers hold one output vector :math:`u_c` (and optionally a bias :math:`b_c`) per
class, so a class's score at input :math:`h` is :math:`s_c = u_c^\top h + b_c`, as in a
plain softmax layer. Training touches only the target's row and a few sampled rows;
evaluation (:meth:`log_prob`, :meth:`predict`, :meth:`topk`) uses the exact normalised
log-softmax over all :math:`N` classes of those same scores.

* :class:`NegativeSampling` (Mikolov et al. 2013, word2vec's SGNS): a logistic loss that
  tells the target apart from :math:`K` noise classes per example,

  .. math::

      \ell = -\log\sigma(s_y) - \sum_{k=1}^{K} \log\sigma(-s_{n_k}),
      \qquad n_k \sim q, \quad q(c) \propto f_c^{3/4}.

* :class:`SampledSoftmax` (Bengio & Senécal 2008, Jean et al. 2015): a softmax over the
  target and :math:`S` classes drawn from a proposal :math:`Q`, whose logits are
  corrected by :math:`-\log` of their expected count in the sample (the log-Q
  correction), so that the normaliser is an importance-sampling estimate of the full
  partition function.

The output vectors and biases live in :class:`torch.nn.Embedding` submodules and every
lookup goes through :func:`torch.nn.functional.embedding`: with ``sparse=True`` autograd
returns sparse row gradients, and :class:`~torch.nn.parallel.DistributedDataParallel`,
which expects sparse gradients only from ``nn.Embedding``/``nn.EmbeddingBag``
parameters, recognises them.

Sampling is reproducible: every draw takes a ``generator=`` (a CPU
:class:`torch.Generator`; the global CPU generator when omitted), and ``forward`` also
takes the samples themselves, so that a test, or the ranks of a distributed run, can fix
them. Classes are drawn by inverse-CDF lookup in an integer table: class :math:`c` gets
:math:`m_c \approx 2^{53} q_c` units (at least one when :math:`f_c > 0`), a uniform
integer below :math:`\sum_c m_c` is drawn and looked up with :func:`torch.searchsorted`.
The sampling probabilities are then exactly :math:`m_c / \sum m`, which is what the log-Q
correction and :attr:`sampling_probs` use, and each draw costs :math:`O(\log N)`
whatever :math:`N`.
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import check_bool, check_feature_input, check_int
from .hierarchical import TopK

__all__ = ["Candidates", "NegativeSampling", "SampledOutput", "SampledSoftmax", "TopK"]

# predict/topk work on blocks of about this many (example, class) scores at a time.
_SCORE_BLOCK = 2**23
# Integer units of probability in the sampling table (float64 resolves 2^-53).
_TABLE_UNITS = 2**53
# The unique sampler gives up after this many draws (a proposal with almost all its mass
# on fewer than num_samples classes would otherwise take practically forever).
_MAX_UNIQUE_DRAWS = 2**26
_REDUCTIONS = ("mean", "sum", "none")


class SampledOutput(NamedTuple):
    """What the sampled layers' ``forward`` returns, as HierarchicalSoftmax's does."""

    output: Tensor  #: minus each example's sampled loss (an estimate, not log p), like the target
    loss: Tensor  #: the batch's loss, reduced as ``reduction`` says (mean by default)


class Candidates(NamedTuple):
    """A sampled set of classes for :class:`SampledSoftmax`, shared by the whole batch."""

    classes: Tensor  #: the sampled class indices, shape ``(S,)``
    log_expected_count: Tensor  #: log of each one's expected count in a sample, shape ``(S,)``
    num_tries: int  #: draws made: ``S`` with replacement, more without


# -- argument checks --------------------------------------------------------------------


def _check_power(power) -> float:
    if isinstance(power, bool) or not isinstance(power, int | float):
        raise TypeError(f"power must be a real number, got {power!r} ({type(power).__name__})")
    if not math.isfinite(power) or power < 0:
        raise ValueError(f"power must be finite and non-negative, got {power}")
    return float(power)


def _sampling_table(frequencies, num_classes: int, power: float, allow_zero: bool) -> Tensor:
    """Integer units per class, ``m_c ≈ 2^53 f_c^power / Σ f^power`` (≥ 1 where f_c > 0)."""
    if frequencies is None:
        return torch.full((num_classes,), _TABLE_UNITS // num_classes, dtype=torch.int64)
    if isinstance(frequencies, Tensor):
        if frequencies.is_complex() or frequencies.dtype == torch.bool:
            raise TypeError(f"frequencies must be real numbers, got {frequencies.dtype}")
        freq = frequencies.detach().to("cpu", torch.float64)
    else:
        try:
            freq = torch.as_tensor(frequencies, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"frequencies must be a sequence of numbers or a tensor: {error}"
            ) from None
    if freq.shape != (num_classes,):
        raise ValueError(
            f"frequencies must hold one value per class: expected shape ({num_classes},), "
            f"got {tuple(freq.shape)}"
        )
    if not torch.isfinite(freq).all():
        raise ValueError("frequencies must be finite (found NaN or infinity)")
    if (freq < 0).any():
        raise ValueError(f"frequencies must be non-negative, found {freq.min().item():g}")
    if not allow_zero and (freq == 0).any():
        zeros = int((freq == 0).sum())
        raise ValueError(
            f"frequencies must be positive: {zeros} class(es) have frequency 0, so the "
            f"proposal could never draw them and the importance-sampling estimate of the "
            f"normaliser would leave them out; add a pseudo-count (e.g. frequencies + 1)"
        )
    positive = freq > 0
    if not positive.any():
        raise ValueError("frequencies must not all be zero")
    # In logarithms, relative to the largest: f^power overflows for f = 1e308 or
    # power = 2 and f = 1e300, and underflows to 0 for f = 1e-200. A class of frequency 0
    # gets weight 0 (also for power 0, where 0^0 would be 1).
    log_weights = torch.where(
        positive, power * (torch.log(freq) - torch.log(freq.max())), -torch.inf
    )
    probs = torch.softmax(log_weights, dim=0)
    units = torch.round(probs * _TABLE_UNITS).to(torch.int64)
    # At least one unit for every class of positive frequency, however small its share.
    return torch.where(positive, units.clamp_min(1), 0)


def _is_transformed(tensor: Tensor) -> bool:
    """True for a tensor wrapped by a torch.func transform (vmap, grad, jacrev …)."""
    if torch.compiler.is_compiling():  # dynamo cannot trace the check (a graph break)
        return False
    return torch._C._functorch.is_functorch_wrapped_tensor(tensor)


class _SampledLayer(nn.Module):
    """What both sampled layers share: the class vectors, the sampler, exact evaluation."""

    def __init__(self, in_features, num_classes, frequencies, power, allow_zero, bias,
                 sparse, reduction, device, dtype) -> None:  # fmt: skip
        super().__init__()
        check_int(in_features, "in_features", 1)
        check_int(num_classes, "num_classes", 2)
        check_bool(bias, "bias")
        check_bool(sparse, "sparse")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        units = _sampling_table(frequencies, num_classes, _check_power(power), allow_zero)
        self.in_features = in_features
        self.num_classes = num_classes
        self.reduction = reduction
        factory = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(num_classes, in_features, sparse=sparse, **factory)
        self.bias_embedding = (
            nn.Embedding(num_classes, 1, sparse=sparse, **factory) if bias else None
        )
        # Integer buffers: .float()/.double() leave them alone, .to(device) moves them.
        self.register_buffer("sampling_units", units.to(device))
        self.register_buffer("sampling_cdf", torch.cumsum(units, 0).to(device))
        # A CPU copy of the table (not a buffer: .to() leaves it, state_dict omits it),
        # from which _apply rebuilds the buffers after meta → to_empty.
        self._units = units
        self._allow_zero = allow_zero
        self.reset_parameters()

    def _apply(self, fn, recurse=True):
        # From the meta device to a real one (to_empty, for deferred initialisation) the
        # buffers come out uninitialised: rebuild the table in them from the CPU copy.
        was_meta = self.sampling_units.device.type == "meta"
        result = super()._apply(fn, recurse)
        units = self.__dict__.get("_units")  # absent in a layer pickled by an earlier version
        if was_meta and self.sampling_units.device.type != "meta" and units is not None:
            with torch.no_grad():
                self.sampling_units.copy_(units)
                self.sampling_cdf.copy_(torch.cumsum(units, 0))
        return result

    def reset_parameters(self) -> None:
        """:math:`\\mathcal{U}(-1/\\sqrt{D}, 1/\\sqrt{D})`, as ``nn.Linear`` and HierarchicalSoftmax."""
        bound = self.in_features**-0.5
        nn.init.uniform_(self.embedding.weight, -bound, bound)
        if self.bias_embedding is not None:
            nn.init.uniform_(self.bias_embedding.weight, -bound, bound)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:  # fmt: skip
        units = self._loaded_table(state_dict, prefix, error_msgs)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)  # fmt: skip
        if units is not None:
            self._units = units

    def _loaded_table(self, state_dict, prefix, error_msgs) -> Tensor | None:
        """The sampling table in ``state_dict``, validated; None when it brings none.

        ``sampling_units`` must be non-negative integers, not all zero (all positive for
        SampledSoftmax), summing to at most 2^62, and ``sampling_cdf`` their running sum;
        otherwise the error is reported through ``load_state_dict`` and the current
        table kept.
        """
        names = ("sampling_units", "sampling_cdf")
        keys = [prefix + name for name in names]
        if not any(key in state_dict for key in keys):
            return None
        given = {}
        for name, key in zip(names, keys, strict=True):
            value = state_dict.get(key, self._buffers[name])
            if not isinstance(value, Tensor) or value.device.type == "meta":
                return None
            if value.shape != self._buffers[name].shape:
                return None  # torch reports the shape mismatch itself
            given[name] = value.detach().cpu()
        units, cdf = given["sampling_units"], given["sampling_cdf"]
        problem = None
        if units.is_floating_point() or units.is_complex() or units.dtype == torch.bool:
            problem = f"sampling_units must hold integers, got {units.dtype}"
        elif (units < 0).any():
            problem = "sampling_units must be non-negative"
        elif not self.__dict__.get("_allow_zero", True) and (units == 0).any():
            problem = "sampling_units must be positive: the proposal must draw every class"
        elif not (units > 0).any():
            problem = "sampling_units must not all be zero"
        elif units.double().sum() > 2**62:
            problem = "sampling_units must sum to at most 2**62"
        elif not torch.equal(torch.cumsum(units.long(), 0), cdf.long()) or (
            cdf.is_floating_point()
        ):
            problem = "sampling_cdf must be the running sum of sampling_units"
        if problem is not None:
            error_msgs.append(f"invalid sampling table for {type(self).__name__}: {problem}")
            for name, key in zip(names, keys, strict=True):  # keep the current table
                if key in state_dict:
                    state_dict[key] = self._buffers[name]
            return None
        return units.long()

    @property
    def sparse(self) -> bool:
        """Sparse row gradients (the embeddings' ``sparse``); set it before wrapping in DDP."""
        return self.embedding.sparse

    @sparse.setter
    def sparse(self, value: bool) -> None:
        check_bool(value, "sparse")
        for table in (self.embedding, self.bias_embedding):
            if table is not None:
                table.sparse = value

    @property
    def weight(self) -> Tensor:
        """The output vectors :math:`u_c`, shape :math:`(N, D)` (``embedding.weight``)."""
        return self.embedding.weight

    @property
    def bias(self) -> Tensor | None:
        """The biases :math:`b_c`, shape :math:`(N)`: a view of ``bias_embedding.weight``."""
        return None if self.bias_embedding is None else self.bias_embedding.weight[:, 0]

    @property
    def sampling_probs(self) -> Tensor:
        """The exact probabilities the sampler draws with, float64 on the CPU, shape :math:`(N)`."""
        units = self.sampling_units.cpu().double()
        return units / units.sum()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"bias={self.bias_embedding is not None}, sparse={self.sparse}, "
            f"reduction={self.reduction!r}"
        )

    # -- sampling ---------------------------------------------------------------------

    def _draw(self, count: int, generator: torch.Generator | None) -> Tensor:
        """``count`` classes drawn independently from the sampling distribution."""
        if generator is not None:
            if not isinstance(generator, torch.Generator):
                raise TypeError(
                    f"generator must be a torch.Generator, got {type(generator).__name__}"
                )
            if generator.device.type != "cpu":
                raise ValueError(
                    f"generator must be a CPU torch.Generator (draws are made on the CPU "
                    f"and moved, so every device sees the same classes), got one on "
                    f"{generator.device}"
                )
        total = int(self.sampling_cdf[-1])
        u = torch.randint(0, total, (count,), generator=generator, dtype=torch.int64)
        return torch.searchsorted(self.sampling_cdf, u.to(self.sampling_cdf.device), right=True)

    def _log_probs_of(self, classes: Tensor, dtype: torch.dtype) -> Tensor:
        """log Q(c), in float32 at least: the integer units overflow float16."""
        if dtype in (torch.float16, torch.bfloat16):
            dtype = torch.float32
        total = float(self.sampling_cdf[-1])
        return torch.log(self.sampling_units[classes].to(dtype)) - math.log(total)

    # -- input checks -------------------------------------------------------------------

    def _flatten_input(self, input: Tensor) -> tuple[Tensor, torch.Size]:
        check_feature_input(input, self.in_features)
        if input.dtype != self.weight.dtype and torch.is_autocast_enabled(input.device.type):
            # Under autocast the previous layer hands over its autocast dtype (bfloat16
            # from nn.Linear); compute in the parameters' dtype, as HierarchicalSoftmax does.
            input = input.to(self.weight.dtype)
        elif input.dtype != self.weight.dtype:
            raise TypeError(
                f"input dtype {input.dtype} differs from the layer's dtype "
                f"{self.weight.dtype}; convert one of them (input.to(dtype) or "
                f"layer.to(dtype)), as nn.Linear requires"
            )
        return input.reshape(-1, self.in_features), input.shape[:-1]

    def _check_classes(self, classes, name: str) -> Tensor:
        """Integer class indices in range, flattened to int64 on the layer's device."""
        if not isinstance(classes, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(classes).__name__}")
        if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class indices, got {classes.dtype}")
        if classes.device.type == "meta":
            raise ValueError(f"{name} is on the meta device, which holds no class indices")
        # Under a torch.func transform (vmap for per-example gradients) the values cannot
        # be read back; an index out of range still fails in the embedding lookup.
        if classes.numel() and not _is_transformed(classes):
            low, high = (int(v) for v in torch.aminmax(classes.long()))
            if low < 0 or high >= self.num_classes:
                raise ValueError(
                    f"{name} values must lie in [0, {self.num_classes - 1}], "
                    f"found values in [{low}, {high}]"
                )
        return classes.reshape(-1).long().to(self.weight.device)

    def _flatten_target(self, target: Tensor, batch_shape: torch.Size) -> Tensor:
        if isinstance(target, Tensor) and target.shape != batch_shape:
            raise ValueError(
                f"input batch shape {tuple(batch_shape)} and target shape "
                f"{tuple(target.shape)} differ"
            )
        return self._check_classes(target, "target")

    # -- scores and the loss ------------------------------------------------------------

    def _scores(self, x: Tensor, classes: Tensor) -> Tensor:
        """``s = u_c · x + b_c`` for rows of ``x`` (B, D) and ``classes`` (B,) or (B, K)."""
        rows = F.embedding(classes, self.weight, sparse=self.sparse)
        if classes.dim() == 1:
            scores = torch.linalg.vecdot(rows, x)
        else:  # (B, K, D) @ (B, D, 1): one batched matmul, no (B, K, D) product temporary
            scores = torch.bmm(rows, x.unsqueeze(-1)).squeeze(-1)
        return scores + self._biases(classes)

    def _biases(self, classes: Tensor) -> Tensor | float:
        if self.bias_embedding is None:
            return 0.0
        return F.embedding(classes, self.bias_embedding.weight, sparse=self.sparse)[..., 0]

    def _reduce(self, losses: Tensor, batch_shape: torch.Size) -> SampledOutput:
        if self.reduction == "mean":
            loss = losses.mean()  # NaN for an empty batch, like F.cross_entropy
        elif self.reduction == "sum":
            loss = losses.sum()
        else:
            loss = losses.reshape(batch_shape)
        return SampledOutput((-losses).reshape(batch_shape), loss)

    # -- exact evaluation ---------------------------------------------------------------

    def logits(self, input: Tensor) -> Tensor:
        """The scores of all classes, :math:`h U^\\top + b`, shape :math:`(*, N)`."""
        x, batch_shape = self._flatten_input(input)
        return self._logits_2d(x).reshape(*batch_shape, self.num_classes)

    def _logits_2d(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def log_prob(self, input: Tensor) -> Tensor:
        """Exact log-probabilities of all classes, ``log_softmax`` of :meth:`logits`; differentiable.

        Costs a full :math:`N \\times D` matmul per example, like a plain softmax: it is for
        evaluation and checks, not for training.
        """
        return torch.log_softmax(self.logits(input), dim=-1)

    @torch.no_grad()
    def predict(self, input: Tensor) -> Tensor:
        """The most probable class, ``log_prob(input).argmax(-1)``, shape :math:`(*)`.

        As :func:`torch.argmax`, the first of equally probable classes (all-zero weights
        give class 0). Works through the batch in blocks, like :meth:`topk`.
        """
        x, batch_shape = self._flatten_input(input)
        rows_per_block = max(1, _SCORE_BLOCK // self.num_classes)
        indices = [
            torch.log_softmax(self._logits_2d(block), dim=-1).argmax(dim=-1)
            for block in x.split(rows_per_block)
        ]
        if not indices:
            return torch.empty(batch_shape, dtype=torch.int64, device=x.device)
        return torch.cat(indices).reshape(batch_shape)

    @torch.no_grad()
    def topk(self, input: Tensor, k: int) -> TopK:
        """The ``k`` most probable classes and their exact log-probabilities, shape :math:`(*, k)`.

        Works through the batch in blocks, so the :math:`B \\times N` scores are never all
        held at once. The values are exactly those of :meth:`log_prob` (a ``log_softmax``,
        which float16/bfloat16 kernels accumulate in float32), so they agree with it also in
        half precision. The order of equally probable classes is :func:`torch.topk`'s,
        which need not be the first-index order of :meth:`predict`.
        """
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int, got {k!r} ({type(k).__name__})")
        if not 1 <= k <= self.num_classes:
            raise ValueError(f"k must lie in [1, {self.num_classes}], got {k}")
        x, batch_shape = self._flatten_input(input)
        rows_per_block = max(1, _SCORE_BLOCK // self.num_classes)
        values, indices = [], []
        for block in x.split(rows_per_block):
            top = torch.log_softmax(self._logits_2d(block), dim=-1).topk(k, dim=-1)
            values.append(top.values)
            indices.append(top.indices)
        if not values:
            return TopK(
                x.new_empty(*batch_shape, k),
                torch.empty(*batch_shape, k, dtype=torch.int64, device=x.device),
            )
        return TopK(
            torch.cat(values).reshape(*batch_shape, k), torch.cat(indices).reshape(*batch_shape, k)
        )


class NegativeSampling(_SampledLayer):
    r"""Skip-gram negative sampling (Mikolov et al. 2013) as an output layer.

    For an example with input :math:`h` and target :math:`y`, with :math:`K` noise classes
    :math:`n_1, \dots, n_K` drawn independently from the noise distribution
    :math:`q(c) \propto f_c^{\,p}` (:math:`p = 3/4`, word2vec's unigram\ :sup:`3/4`),

    .. math::

        \ell(h, y) = -\log\sigma(s_y) - \sum_{k=1}^{K} [n_k \ne y]\, \log\sigma(-s_{n_k}),
        \qquad s_c = u_c^\top h + b_c.

    **Negatives are drawn per example** (shape ``(*, K)``), as in word2vec, with
    replacement. **A negative equal to the target** is dropped from the sum (the bracket
    above) when ``remove_accidental_hits=True``, the default: word2vec's C code does the
    same (``if (target == word) continue;``, without drawing a replacement), and so does
    gensim. With ``remove_accidental_hits=False`` it is kept, and the same row is then
    pushed towards both labels.

    **Bias**: word2vec's output vectors (``syn1neg``) have none, so ``bias=False`` is the
    default; ``bias=True`` adds a learned :math:`b_c` per class, which can absorb the
    :math:`\log q(c)` offset that the objective builds into the scores.

    **Evaluation**: :meth:`log_prob`, :meth:`predict` and :meth:`topk` use the exact
    normalised ``log_softmax`` over all :math:`N` classes of the learned scores
    :math:`s_c`. Those scores are trained for a different objective: at its optimum
    :math:`s_c \approx \log p(c \mid h) - \log q(c) - \log K` (Levy & Goldberg 2014,
    shifted PMI), so the normalised distribution is :math:`\propto p(c \mid h) / q(c)`,
    not :math:`p(c \mid h)`. It is evaluated by the same exact normalisation as every
    other output layer, which is the honest comparison; expect a worse NLL than a layer
    trained for it.

    Args:
        in_features: size of each input sample, :math:`D`.
        num_classes: number of classes :math:`N \ge 2`.
        frequencies: class counts or frequencies (length :math:`N`, finite,
            non-negative, not all zero); a class of frequency 0 is never drawn. ``None``:
            a uniform noise distribution.
        num_negatives: :math:`K`, noise classes per example when ``forward`` draws them.
        power: exponent :math:`p` of the noise distribution (0.75 in word2vec; 1 is the
            unigram, 0 uniform over the classes of positive frequency).
        remove_accidental_hits: drop negatives that equal the example's target.
        bias: learn a bias per class.
        sparse: sparse COO row gradients for the output vectors and biases, as
            ``nn.Embedding(sparse=True)`` (they are ``nn.Embedding`` submodules); for
            :class:`torch.optim.SGD`, :class:`~torch.optim.SparseAdam`,
            :class:`~torch.optim.Adagrad`, and ``DistributedDataParallel``.
        reduction: ``"mean"`` (over the examples, the default), ``"sum"`` or ``"none"``.

    Attributes:
        embedding: ``nn.Embedding(N, D)``, the output vectors; ``weight`` is its weight.
        bias_embedding: ``nn.Embedding(N, 1)`` or ``None``; ``bias`` is an :math:`(N)`
            view of its weight.
        sampling_units, sampling_cdf: the integer sampling table, as buffers;
            :meth:`load_state_dict` checks them (non-negative units, not all zero, the cdf
            their running sum) and keeps the current table when they are not, and
            ``to_empty`` from the meta device fills them with the table.

    Shape:
        - input: :math:`(*, D)`, of the parameters' dtype (under :func:`torch.autocast`
          any floating dtype, cast to the parameters'); target: :math:`(*)` integer.
        - negatives (optional): :math:`(*, K')` integer class indices, any :math:`K' \ge 1`.
        - output: :math:`(*)`, minus each example's loss; loss: as ``reduction`` says.

    Examples:
        >>> counts = torch.arange(1000, 0, -1).double()
        >>> ns = NegativeSampling(16, 1000, counts, num_negatives=5)
        >>> x, y = torch.randn(8, 16), torch.randint(0, 1000, (8,))
        >>> out = ns(x, y, generator=torch.Generator().manual_seed(0))
        >>> out.output.shape, out.loss.shape
        (torch.Size([8]), torch.Size([]))
        >>> ns.log_prob(x).shape
        torch.Size([8, 1000])
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        frequencies: Sequence[float] | Tensor | None,
        num_negatives: int = 5,
        power: float = 0.75,
        remove_accidental_hits: bool = True,
        bias: bool = False,
        sparse: bool = False,
        reduction: str = "mean",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_int(num_negatives, "num_negatives", 1)
        check_bool(remove_accidental_hits, "remove_accidental_hits")
        super().__init__(in_features, num_classes, frequencies, power, True, bias, sparse,
                         reduction, device, dtype)  # fmt: skip
        self.num_negatives = num_negatives
        self.power = float(power)
        self.remove_accidental_hits = remove_accidental_hits

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, num_negatives={self.num_negatives}, power={self.power}, "
            f"remove_accidental_hits={self.remove_accidental_hits}"
        )

    def sample(
        self, shape: Sequence[int] | torch.Size, generator: torch.Generator | None = None
    ) -> Tensor:
        """Noise classes of ``shape`` (e.g. ``(*batch, K)``), drawn independently from :math:`q`."""
        shape = tuple(shape)
        return self._draw(math.prod(shape), generator).reshape(shape)

    def forward(
        self,
        input: Tensor,
        target: Tensor,
        negatives: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> SampledOutput:
        """The SGNS loss of each example, with ``negatives`` given or drawn (per example).

        Costs :math:`O(B (K + 1) D)`. Give ``negatives`` of shape :math:`(*, K')` to fix
        them (a test, or ranks of a distributed run each taking their slice); otherwise
        :math:`K` are drawn per example with ``generator``.
        """
        x, batch_shape = self._flatten_input(input)
        flat_target = self._flatten_target(target, batch_shape)
        if negatives is None:
            flat_negatives = self._draw(x.shape[0] * self.num_negatives, generator)
            flat_negatives = flat_negatives.reshape(x.shape[0], self.num_negatives)
        else:
            if isinstance(negatives, Tensor) and (
                negatives.dim() != len(batch_shape) + 1
                or negatives.shape[:-1] != batch_shape
                or negatives.shape[-1] == 0
            ):
                raise ValueError(
                    f"negatives must have shape (*batch, K) with batch shape "
                    f"{tuple(batch_shape)} and K >= 1, got {tuple(negatives.shape)}"
                )
            flat_negatives = self._check_classes(negatives, "negatives")
            flat_negatives = flat_negatives.reshape(x.shape[0], -1)
        positive = self._scores(x, flat_target)
        negative = self._scores(x, flat_negatives)
        noise_terms = F.logsigmoid(-negative)
        if self.remove_accidental_hits:
            noise_terms = noise_terms.masked_fill(flat_negatives == flat_target.unsqueeze(1), 0.0)
        losses = -F.logsigmoid(positive) - noise_terms.sum(dim=1)
        return self._reduce(losses, batch_shape)


class SampledSoftmax(_SampledLayer):
    r"""Sampled softmax with the log-Q correction (Bengio & Senécal 2008, Jean et al. 2015).

    One set of :math:`S` classes :math:`n_1, \dots, n_S` is drawn from the proposal
    :math:`Q(c) \propto f_c^{\,p}` **for the whole batch** (as TensorFlow's
    ``sampled_softmax_loss`` does; the shared rows make one :math:`B \times S` matmul).
    Each example's loss is the cross-entropy of its target among the candidates,

    .. math::

        \ell(h, y) = -s_y + \log\Big( e^{s_y}
            + \sum_{k:\, n_k \ne y} e^{\,s_{n_k} - \log E[n_k]} \Big),

    where :math:`E[c]` is class :math:`c`'s expected count in the sample:

    * with replacement (the default), :math:`E[c] = S\,Q(c)`, exactly;
    * without replacement (``replacement=False``, TensorFlow's ``unique=True``): draws
      are made with replacement and repeats rejected until :math:`S` distinct classes
      are found, after :math:`T` draws; :math:`E[c]` is then the probability that
      :math:`c` is in the set, taken as :math:`1 - (1 - Q(c))^T` as TensorFlow's
      candidate samplers do. That value is an approximation (it ignores that :math:`T`
      depends on the sample), so the estimate below holds only approximately: for 16
      of 40 Zipfian classes it is off by at most 0.024 in probability, but for a skewed
      proposal by far more (4 of 8 classes with :math:`Q` halving from one class to
      the next, :math:`Q = 1/2, 1/4, \dots`: about 0.12, the third class being in
      the set 82 % of the time against 71 % predicted).

    **Why the target gets no correction.** The target is in the candidate set with
    certainty, so its "expected count" is 1 and :math:`\log 1 = 0`. Sampled classes equal
    to the target (**accidental hits**) are removed (``remove_accidental_hits=True``,
    the default), because the target is already counted exactly. Then the normaliser
    :math:`\hat Z = e^{s_y} + \sum_{k: n_k \ne y} e^{s_{n_k}} / E[n_k]` is an unbiased
    importance-sampling estimate of the partition function :math:`Z = \sum_c e^{s_c}`
    with replacement, so the loss converges to the full softmax's :math:`-\log p(y \mid
    h)` and its gradient to the full gradient as :math:`S` grows (for finite :math:`S`
    the loss underestimates it on average, by Jensen's inequality). TensorFlow also
    subtracts :math:`\log(S\,Q(y))` from the target's logit; with hits removed, the
    target's weight then vanishes as :math:`S` grows and the gradient tends to the full
    one divided by :math:`1 - p(y \mid h)` instead. With
    ``remove_accidental_hits=False`` the hits stay in the sum with their correction, and
    :math:`\hat Z` overestimates :math:`Z` by :math:`e^{s_y}` on average.

    Evaluation (:meth:`log_prob`, :meth:`predict`, :meth:`topk`) is the exact full
    softmax over the learned scores :math:`s_c = u_c^\top h + b_c`.

    Args:
        in_features: size of each input sample, :math:`D`.
        num_classes: number of classes :math:`N \ge 2`.
        frequencies: class counts, frequencies or a proposal distribution (length
            :math:`N`, finite, all positive: a class the proposal never draws would be
            missing from every estimate of the normaliser); ``None``: uniform.
        num_samples: :math:`S`, classes drawn per batch; without replacement it must be
            below :math:`N`.
        power: exponent :math:`p` applied to ``frequencies`` (1: the unigram
            distribution itself; 0.75 flattens it as word2vec's noise).
        replacement: draw with replacement (exact log-Q correction) or distinct classes.
        remove_accidental_hits: drop sampled classes equal to an example's target.
        bias: learn a bias per class (TensorFlow's layer has one).
        sparse: sparse COO row gradients for the output vectors and biases (they are
            ``nn.Embedding`` submodules), for SGD/SparseAdam/Adagrad and DDP.
        reduction: ``"mean"`` (over the examples, the default), ``"sum"`` or ``"none"``.

    Shape:
        - input: :math:`(*, D)`, of the parameters' dtype (under :func:`torch.autocast`
          any floating dtype, cast to the parameters'); target: :math:`(*)` integer.
        - samples (optional): a :class:`Candidates` from :meth:`sample`, or, with
          replacement, a 1-D integer tensor of :math:`S' \ge 1` classes (its correction is
          then :math:`\log(S' Q(c))`). A given :class:`Candidates` is checked: classes in
          range, a finite floating-point ``log_expected_count`` of the same shape, and
          without replacement no class twice.
        - output: :math:`(*)`, minus each example's loss (the sampled estimate of
          :math:`\log p(y \mid h)`); loss: as ``reduction`` says.

    Examples:
        >>> counts = torch.arange(1000, 0, -1).double()
        >>> ss = SampledSoftmax(16, 1000, counts, num_samples=64)
        >>> x, y = torch.randn(8, 16), torch.randint(0, 1000, (8,))
        >>> out = ss(x, y, generator=torch.Generator().manual_seed(0))
        >>> out.loss.shape, ss.predict(x).shape
        (torch.Size([]), torch.Size([8]))
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        frequencies: Sequence[float] | Tensor | None = None,
        num_samples: int = 64,
        power: float = 1.0,
        replacement: bool = True,
        remove_accidental_hits: bool = True,
        bias: bool = True,
        sparse: bool = False,
        reduction: str = "mean",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_int(num_classes, "num_classes", 2)
        check_int(num_samples, "num_samples", 1)
        check_bool(replacement, "replacement")
        check_bool(remove_accidental_hits, "remove_accidental_hits")
        if not replacement and num_samples >= num_classes:
            raise ValueError(
                f"num_samples={num_samples} distinct classes out of num_classes="
                f"{num_classes}: without replacement num_samples must be below "
                f"num_classes (the sample would be every class; use a full softmax)"
            )
        super().__init__(in_features, num_classes, frequencies, power, False, bias, sparse,
                         reduction, device, dtype)  # fmt: skip
        self.num_samples = num_samples
        self.power = float(power)
        self.replacement = replacement
        self.remove_accidental_hits = remove_accidental_hits

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, num_samples={self.num_samples}, power={self.power}, "
            f"replacement={self.replacement}, "
            f"remove_accidental_hits={self.remove_accidental_hits}"
        )

    def sample(self, generator: torch.Generator | None = None) -> Candidates:
        """Draw one candidate set of ``num_samples`` classes, with its log expected counts."""
        dtype = self.weight.dtype
        if self.replacement:
            classes = self._draw(self.num_samples, generator)
            log_count = self._log_probs_of(classes, dtype) + math.log(self.num_samples)
            return Candidates(classes, log_count.to(dtype), self.num_samples)
        draws = self._draw(2 * self.num_samples, generator)
        while True:
            unique, inverse = torch.unique(draws, return_inverse=True)
            if len(unique) >= self.num_samples:
                break
            if len(draws) >= _MAX_UNIQUE_DRAWS:
                raise RuntimeError(
                    f"SampledSoftmax(replacement=False): {len(draws)} draws found only "
                    f"{len(unique)} distinct classes of the {self.num_samples} asked for; "
                    f"the proposal puts almost all its mass on a few classes"
                )
            draws = torch.cat([draws, self._draw(len(draws), generator)])
        positions = torch.arange(len(draws), device=draws.device)
        first = torch.full((len(unique),), len(draws), dtype=torch.int64, device=draws.device)
        first = first.scatter_reduce(0, inverse, positions, reduce="amin")
        first = first.sort().values[: self.num_samples]
        classes = draws[first]
        num_tries = int(first[-1]) + 1
        log_q = self._log_probs_of(classes, dtype)
        # log(1 - (1 - Q)^T) = log(-expm1(T log1p(-Q))), accurate for small and large Q.
        log_count = torch.log(-torch.expm1(num_tries * torch.log1p(-torch.exp(log_q))))
        return Candidates(classes, log_count.to(dtype), num_tries)

    def _candidates(self, samples) -> Candidates:
        if isinstance(samples, Candidates):
            classes = self._check_classes(samples.classes, "samples.classes")
            if samples.classes.dim() != 1 or classes.numel() == 0:
                raise ValueError(
                    f"samples.classes must be 1-D and non-empty, got shape "
                    f"{tuple(samples.classes.shape)}"
                )
            log_count = samples.log_expected_count
            if not isinstance(log_count, Tensor) or log_count.shape != samples.classes.shape:
                raise ValueError(
                    "samples.log_expected_count must be a tensor shaped like samples.classes"
                )
            if not log_count.is_floating_point():
                raise TypeError(
                    f"samples.log_expected_count must be floating point, got {log_count.dtype}"
                )
            if not _is_transformed(log_count) and not torch.isfinite(log_count).all():
                raise ValueError(
                    "samples.log_expected_count must be finite (found NaN or infinity): the "
                    "log-Q correction would make the loss NaN"
                )
            if not self.replacement and not _is_transformed(classes):
                if torch.unique(classes).numel() != classes.numel():
                    raise ValueError(
                        "samples.classes repeat a class, but SampledSoftmax(replacement="
                        "False) draws distinct classes: give the Candidates of .sample()"
                    )
            return Candidates(classes, log_count.to(self.weight), samples.num_tries)
        if not self.replacement:
            raise ValueError(
                "SampledSoftmax(replacement=False) needs the Candidates from .sample(), "
                "which carry the number of draws the log-Q correction depends on, not a "
                "plain tensor of classes"
            )
        if isinstance(samples, Tensor) and samples.dim() != 1:
            raise ValueError(
                f"samples must be a 1-D tensor of classes, got shape {tuple(samples.shape)}"
            )
        classes = self._check_classes(samples, "samples")
        if classes.numel() == 0:
            raise ValueError("samples must hold at least one class")
        log_count = self._log_probs_of(classes, self.weight.dtype) + math.log(classes.numel())
        return Candidates(classes, log_count.to(self.weight.dtype), classes.numel())

    def forward(
        self,
        input: Tensor,
        target: Tensor,
        samples: Candidates | Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> SampledOutput:
        """The sampled-softmax loss of each example; one candidate set for the batch.

        Costs :math:`O(B S D)`. Give ``samples`` (a :class:`Candidates` from
        :meth:`sample`, or with replacement a 1-D class tensor) to fix them, e.g. the same
        on every rank of a distributed run; otherwise they are drawn with ``generator``.
        """
        x, batch_shape = self._flatten_input(input)
        flat_target = self._flatten_target(target, batch_shape)
        candidates = self.sample(generator) if samples is None else self._candidates(samples)
        classes = candidates.classes
        target_logit = self._scores(x, flat_target)
        rows = F.embedding(classes, self.weight, sparse=self.sparse)
        sampled_logits = x @ rows.t() + self._biases(classes) - candidates.log_expected_count
        if self.remove_accidental_hits:
            hits = classes.unsqueeze(0) == flat_target.unsqueeze(1)
            sampled_logits = sampled_logits.masked_fill(hits, -torch.inf)
        logits = torch.cat([target_logit.unsqueeze(1), sampled_logits], dim=1)
        losses = torch.logsumexp(logits, dim=1) - target_logit
        return self._reduce(losses, batch_shape)
