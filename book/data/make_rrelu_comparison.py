"""Make book/data/rrelu_comparison.csv: train and test error of five rectifiers on digits.

The comparison of Xu et al. (2015), shrunk to a size that runs on a laptop CPU: the same
perceptron (64 → 2 × 128 → 10, He initialisation) is trained on scikit-learn's digits
(1348 training and 449 test images, ``analysis.load_digits_tensors``) with SGD + momentum
0.9, learning rate 0.03, batches of 32, for 25 epochs, no weight decay and no other
regularisation, so that it overfits: the training loss goes to almost 0 while the test loss
stops falling. The hidden activation is one of

* ``relu``;
* ``leaky`` (slope 0.01, Xu et al.'s "leaky ReLU", a = 100 in their notation x / a);
* ``very_leaky`` (slope 1/5.5, their "very leaky ReLU", the slope RReLU uses at test time
  in their paper);
* ``prelu`` (one learnable slope per hidden unit, starting at 0.25, no weight decay on it);
* ``rrelu`` (``actlib.RReLU`` with torch's defaults: slopes ~ U(1/8, 1/3) in training, the
  mean slope 11/48 in evaluation).

Eight seeds (0 to 7); the seed sets the train/test split (data stream), the weights
(parameter stream), the order of the examples (order stream) and, for RReLU, the global
generator the training slopes are drawn from (``torch.manual_seed(1000 + seed)``). Every
evaluation is in eval mode (RReLU with its mean slope). One row per run, measured after the
last epoch: ``train_errors`` and ``test_errors`` (misclassified images, out of 1348 and
449), ``train_loss`` and ``test_loss`` (mean cross-entropy), and ``best_test_loss`` with
``best_epoch``, the lowest test loss over the 25 epochs and when it was reached.

    nice .venv/bin/python book/data/make_rrelu_comparison.py   # 55 s of CPU time (2.5 min wall, busy machine)

The leaky ReLU chapter (book/rectifiers/leaky_relu.ipynb) reads the CSV.
"""

import csv
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import actlib
from actlib import analysis

OUT = Path(__file__).with_name("rrelu_comparison.csv")
WIDTH, DEPTH, EPOCHS, LR, BATCH, MOMENTUM = 128, 2, 25, 0.03, 32, 0.9
SEEDS = range(8)
ACTIVATIONS = {
    "relu": lambda: actlib.ReLU(),
    "leaky": lambda: actlib.LeakyReLU(0.01),
    "very_leaky": lambda: actlib.LeakyReLU(1 / 5.5),
    "prelu": lambda: actlib.PReLU(WIDTH),
    "rrelu": lambda: actlib.RReLU(),
}
FIELDS = ["activation", "seed", "train_errors", "test_errors", "train_loss", "test_loss",
          "best_test_loss", "best_epoch"]  # fmt: skip


def run(name, seed):
    """One training run; returns the CSV row."""
    x, y, x_test, y_test = analysis.load_digits_tensors(seed=seed)
    model = analysis.build_mlp(64, WIDTH, DEPTH, 10, ACTIVATIONS[name], init="he", seed=seed)
    test_losses = []

    def on_eval(model, epoch):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            test_losses.append(float(F.cross_entropy(model(x_test), y_test)))
        model.train(was_training)

    torch.manual_seed(1000 + seed)  # RReLU's training slopes come from the global generator
    curve = analysis.train(model, x, y, epochs=EPOCHS, lr=LR, batch_size=BATCH,
                           momentum=MOMENTUM, seed=seed, x_test=x_test, y_test=y_test,
                           on_eval=on_eval)  # fmt: skip
    best = min(range(len(test_losses)), key=test_losses.__getitem__)
    return {
        "activation": name, "seed": seed,
        "train_errors": round(curve.error[-1] * len(x)),
        "test_errors": round(curve.test_error[-1] * len(x_test)),
        "train_loss": f"{curve.loss[-1]:.4g}", "test_loss": f"{test_losses[-1]:.4g}",
        "best_test_loss": f"{test_losses[best]:.4g}", "best_epoch": round(curve.epoch[best]),
    }  # fmt: skip


def main():
    torch.set_num_threads(1)
    start = time.time()
    rows = []
    for seed in SEEDS:
        for name in ACTIVATIONS:
            rows.append(run(name, seed))
            print(rows[-1], f"{time.time() - start:.0f} s", flush=True)
    with OUT.open("w", newline="") as file:
        writer = csv.DictWriter(file, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT} ({len(rows)} rows) in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
