"""actlib: activation functions as hand-derived ``torch.autograd.Function``\\ s.

Every activation comes in three forms, named as in PyTorch:

* a Function (``actlib.elementwise.SigmoidFunction`` …) with a hand-derived backward,
* a functional wrapper with ``torch.nn.functional``'s signature (``actlib.sigmoid``),
* an ``nn.Module`` (``actlib.Sigmoid``).

``actlib.catalog.CATALOG`` holds one record per activation (formula, derivative,
properties), from which the tests and the book are generated. ``actlib.GatedFeedForward``
and ``actlib.FeedForward`` are transformer feed-forward blocks; ``actlib.HierarchicalSoftmax``
(trees in ``actlib.trees``), ``actlib.NegativeSampling`` and ``actlib.SampledSoftmax``
replace a full softmax over many classes, and
``actlib.analysis`` holds the measurements the book's experiments share.
"""

from . import analysis, catalog, meanfield, monitor, plotting
from .device import pick_device, seeded_randn
from .elementwise import (
    celu,
    elu,
    gelu,
    leaky_relu,
    mish,
    prelu,
    quick_gelu,
    relu,
    rrelu,
    selu,
    sigmoid,
    silu,
    softplus,
    softsign,
    squared_relu,
    tanh,
)
from .feedforward import FeedForward, GatedFeedForward, gated_hidden_size
from .gated import gated, geglu, glu, reglu, swiglu
from .hard import hardsigmoid, hardswish, hardtanh, relu6
from .hierarchical import HierarchicalSoftmax
from .maxout import maxout
from .modules import (
    CELU,
    ELU,
    GEGLU,
    GELU,
    GLU,
    SELU,
    Argmax,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSoftmax,
    Maxout,
    Mish,
    PReLU,
    QuickGELU,
    ReGLU,
    ReLU,
    ReLU6,
    RReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    SquaredReLU,
    SwiGLU,
    Tanh,
)
from .monitor import TrainingMonitor
from .sampled import NegativeSampling, SampledSoftmax
from .softmax import argmax, log_softmax, softmax
from .trees import balanced_tree, check_tree, clustered_tree, huffman_tree, random_tree, tree_paths

__version__ = "0.1.0"
