"""actlib: activation functions as hand-derived ``torch.autograd.Function``\\ s.

Every activation comes in three forms, named as in PyTorch:

* a Function (``actlib.elementwise.SigmoidFunction`` …) with a hand-derived backward,
* a functional wrapper with ``torch.nn.functional``'s signature (``actlib.sigmoid``),
* an ``nn.Module`` (``actlib.Sigmoid``).

``actlib.catalog.CATALOG`` holds one record per activation (formula, derivative,
properties), from which the tests and the book are generated. ``actlib.HierarchicalSoftmax``
(trees in ``actlib.trees``) replaces a full softmax over many classes, and
``actlib.analysis`` holds the measurements the book's experiments share.
"""

from . import analysis, catalog, plotting
from .device import pick_device, seeded_randn
from .elementwise import (
    elu,
    gelu,
    leaky_relu,
    mish,
    prelu,
    relu,
    selu,
    sigmoid,
    silu,
    softplus,
    softsign,
    tanh,
)
from .hierarchical import HierarchicalSoftmax
from .maxout import maxout
from .modules import (
    ELU,
    GELU,
    SELU,
    Argmax,
    LeakyReLU,
    LogSoftmax,
    Maxout,
    Mish,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
)
from .softmax import argmax, log_softmax, softmax
from .trees import balanced_tree, huffman_tree, tree_paths

__version__ = "0.1.0"
