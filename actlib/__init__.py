"""actlib: activation functions as hand-derived ``torch.autograd.Function``\\ s.

Every activation comes in three forms, named as in PyTorch:

* a Function (``actlib.elementwise.SigmoidFunction`` …) with a hand-derived backward,
* a functional wrapper with ``torch.nn.functional``'s signature (``actlib.sigmoid``),
* an ``nn.Module`` (``actlib.Sigmoid``).

``actlib.catalog.CATALOG`` holds one record per activation (formula, derivative,
properties), from which the tests and the book are generated.
"""

from . import catalog, plotting
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

__version__ = "0.1.0"
from . import analysis
from .hierarchical import HierarchicalSoftmax, balanced_tree, huffman_tree, tree_paths
