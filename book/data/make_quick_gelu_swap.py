"""Make book/data/quick_gelu_swap.csv: what happens when a network trained with one GELU
form is run with another (the GELU chapter's QuickGELU pitfall).

An MLP (``actlib.analysis.build_mlp(64, 64, depth, 10, activation, init="he", seed=seed)``,
float32) is trained on scikit-learn's handwritten digits
(``actlib.analysis.load_digits_tensors()``: 1348 training and 449 test images, the split of
seed 0) for 25 epochs of SGD with momentum 0.9, learning rate 0.02 and batches of 64
(``actlib.analysis.train``), once with QuickGELU, x σ(1.702 x) (``"quick_gelu"``), and once
with exact GELU, x Φ(x) (``"gelu"``), for depths 1, 2, 4 and 8 hidden layers and seeds 0 to 5
(the seed sets the initial weights and the order of the examples). After training, the same
weights are evaluated on the test set with every activation module replaced by another form:
a QuickGELU-trained network with exact GELU (``actlib.GELU()``) and with the tanh GELU
(``actlib.GELU(approximate="tanh")``), a GELU-trained one with QuickGELU and with the tanh
GELU. The unswapped network is evaluated too (``swap_to`` equal to ``trained_with``).

One row per (trained_with, depth, seed, swap_to):

- ``test_loss``, ``test_accuracy``: mean cross-entropy and accuracy on the 449 test images;
- ``train_loss``: mean cross-entropy on the training set;
- ``max_logit_diff``: the largest |logit(swapped) − logit(trained form)| over the test set
  and the 10 classes (0 for the unswapped rows);
- ``max_abs_logit``: the largest |logit| of the unswapped network on the test set (the scale
  the difference is to be compared with);
- ``changed_predictions``: test images whose predicted class the swap changes;
- ``logit_norm_ratio``: the mean over the test images of ‖logits(swapped)‖ / ‖logits(trained
  form)‖ (above 1: the swap makes the network more confident).

    nice .venv/bin/python book/data/make_quick_gelu_swap.py

About 1 minute of CPU time on one thread (2 to 4 minutes of wall-clock time on a busy
2-core machine); a second run on the same machine gave the same numbers.
"""

import copy
import csv
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import actlib
from actlib import analysis

OUT = Path(__file__).with_name("quick_gelu_swap.csv")
DEPTHS = (1, 2, 4, 8)
SEEDS = range(6)
WIDTH, EPOCHS, LR, BATCH = 64, 25, 0.02, 64
FORMS = {
    "quick_gelu": actlib.QuickGELU,
    "gelu": actlib.GELU,
    "gelu_tanh": lambda: actlib.GELU(approximate="tanh"),
}
SWAPS = {
    "quick_gelu": ("quick_gelu", "gelu", "gelu_tanh"),
    "gelu": ("gelu", "quick_gelu", "gelu_tanh"),
}
FIELDS = [
    "trained_with", "depth", "seed", "swap_to", "test_loss", "test_accuracy", "train_loss",
    "max_logit_diff", "max_abs_logit", "changed_predictions", "logit_norm_ratio",
]


def swapped(model, form):
    """A copy of ``model`` with every activation module replaced by ``FORMS[form]()``."""
    copy_ = copy.deepcopy(model)
    for index, child in enumerate(copy_):
        if not isinstance(child, torch.nn.Linear):
            copy_[index] = FORMS[form]()
    return copy_


def run(trained_with, depth, seed, data):
    """Train one network and evaluate it with each form: a list of CSV rows."""
    x, y, x_test, y_test = data
    model = analysis.build_mlp(64, WIDTH, depth, 10, trained_with, init="he", seed=seed)
    curve = analysis.train(model, x, y, epochs=EPOCHS, lr=LR, batch_size=BATCH, seed=seed)
    if curve.diverged:
        raise RuntimeError(f"{trained_with}, depth {depth}, seed {seed} diverged")
    model.eval()
    with torch.no_grad():
        reference = model(x_test)
        rows = []
        for form in SWAPS[trained_with]:
            other = swapped(model, form)
            logits = other(x_test)
            rows.append({
                "trained_with": trained_with, "depth": depth, "seed": seed, "swap_to": form,
                "test_loss": float(F.cross_entropy(logits, y_test)),
                "test_accuracy": float((logits.argmax(1) == y_test).float().mean()),
                "train_loss": float(F.cross_entropy(other(x), y)),
                "max_logit_diff": float((logits - reference).abs().max()),
                "max_abs_logit": float(reference.abs().max()),
                "changed_predictions": int((logits.argmax(1) != reference.argmax(1)).sum()),
                "logit_norm_ratio": float((logits.norm(dim=1) / reference.norm(dim=1)).mean()),
            })
    return rows


def main():
    torch.set_num_threads(1)
    data = analysis.load_digits_tensors()
    start = time.perf_counter()
    rows = []
    for trained_with in SWAPS:
        for depth in DEPTHS:
            for seed in SEEDS:
                rows += run(trained_with, depth, seed, data)
            print(f"{trained_with:10s} depth {depth}: {time.perf_counter() - start:.0f} s", flush=True)
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    print(f"wrote {len(rows)} rows to {OUT} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
