"""Make book/data/hierarchical_softmax_training.csv, the cached training runs of the
hierarchical-softmax chapter.

The problem: 128 classes with Zipf frequencies (count proportional to 1/rank), each a
cluster in R^16 (centre 1.5 N(0, I), unit Gaussian noise); 50,000 training and 10,000 test
examples, drawn afresh for every seed. A shared hidden layer (Linear(16, 128) + tanh) feeds
one of four output layers:

- ``full``: a full softmax, Linear(128, 128) + cross-entropy;
- ``huffman``: actlib's HierarchicalSoftmax over the Huffman tree of the training counts;
- ``balanced``: the same over the balanced tree (classes in rank order, so siblings are
  classes of neighbouring frequency, unrelated in space);
- ``similar``: the balanced tree over the classes reordered by recursive halving of their
  centres along the principal axis, so every subtree holds classes that lie close together.
  It is an oracle (it reads the true centres), the best case for a tree built from
  similarity.

Adam (lr 0.01, cosine decay to 0 over the run), batches of 256, for a budget of 1,500 or
3,000 steps, five seeds each. Data, parameters and example order come from the seed's
``data``, ``parameters`` and ``order`` streams (actlib.device.stream_generator); every
output layer of a seed starts from the same hidden layer. Every 250 steps the run records,
on the test set: the NLL, the accuracy, and for the hierarchical layers the accuracy of
greedy descent, how often greedy and exact prediction differ, and the mean back-propagated
factor sigma(-z) on the path steps that the model gets right (z > 0) and wrong (z < 0);
plus the training NLL on the first 10,000 training examples. One row per checkpoint.

    .venv/bin/python book/data/make_hierarchical_softmax_training.py
    # 5 minutes of CPU time on 1 core (torch 2.13, AVX-512); it took 45 minutes of wall
    # time on a 2-core machine shared with about ten other jobs
"""

import csv
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from actlib.device import stream_generator, stream_seed
from actlib.hierarchical import HierarchicalSoftmax, balanced_tree, tree_paths

OUT = Path(__file__).with_name("hierarchical_softmax_training.csv")
NUM_CLASSES, DIM_IN, DIM_HIDDEN = 128, 16, 128
N_TRAIN, N_TEST, N_TRAIN_EVAL = 50_000, 10_000, 10_000
HEADS = ["full", "huffman", "balanced", "similar"]
BUDGETS = [1500, 3000]
SEEDS = range(5)
BATCH, LR, EVERY = 256, 0.01, 250
FIELDS = [
    "head", "budget", "seed", "step", "test_nll", "test_accuracy", "greedy_accuracy",
    "greedy_differs", "factor_right", "factor_wrong", "train_nll", "torch", "cpu",
]  # fmt: skip


def make_data(seed):
    """Centres, (x, y) for training and test, and the training counts of one seed."""
    generator = stream_generator("data", seed)
    centres = 1.5 * torch.randn(NUM_CLASSES, DIM_IN, generator=generator)
    zipf = 1.0 / torch.arange(1, NUM_CLASSES + 1, dtype=torch.float64)

    def sample(n):
        labels = torch.multinomial(zipf, n, replacement=True, generator=generator)
        return centres[labels] + torch.randn(n, DIM_IN, generator=generator), labels

    x_train, y_train = sample(N_TRAIN)
    x_test, y_test = sample(N_TEST)
    return centres, x_train, y_train, x_test, y_test


def similarity_order(centres, classes=None):
    """Classes ordered by recursive halving along the principal axis of their centres."""
    if classes is None:
        classes = torch.arange(len(centres))
    if len(classes) == 1:
        return classes
    c = centres[classes] - centres[classes].mean(dim=0)
    _, _, vh = torch.linalg.svd(c.double(), full_matrices=False)
    ordered = classes[torch.argsort(c.double() @ vh[0], stable=True)]
    half = len(classes) // 2
    return torch.cat(
        [similarity_order(centres, ordered[:half]), similarity_order(centres, ordered[half:])]
    )


def relabelling(centres):
    """``relabel[c]``: the leaf of class c in the balanced tree when similar classes are siblings."""
    order = similarity_order(centres)
    relabel = torch.empty(NUM_CLASSES, dtype=torch.int64)
    relabel[order] = torch.arange(NUM_CLASSES)
    return relabel


def build(head_name, seed, counts):
    """The hidden layer and the output layer, from the seed's parameter stream."""
    torch.manual_seed(stream_seed("parameters", seed))
    body = nn.Sequential(nn.Linear(DIM_IN, DIM_HIDDEN), nn.Tanh())
    if head_name == "full":
        head = nn.Linear(DIM_HIDDEN, NUM_CLASSES)
    elif head_name == "huffman":
        head = HierarchicalSoftmax(DIM_HIDDEN, NUM_CLASSES, counts=counts)
    else:  # balanced and similar: the same tree, the classes in a different order
        head = HierarchicalSoftmax(DIM_HIDDEN, NUM_CLASSES)
    return body, head


def loss_of(head_name, body, head, x, y):
    h = body(x)
    if head_name == "full":
        return F.cross_entropy(head(h), y)
    return head(h, y).loss


@torch.no_grad()
def evaluate(head_name, body, head, x_test, y_test, x_train, y_train):
    """The checkpoint's measurements (targets already relabelled for the ``similar`` tree)."""
    h = body(x_test)
    row = {"train_nll": loss_of(head_name, body, head, x_train, y_train).item()}
    if head_name == "full":
        logits = head(h)
        row["test_nll"] = F.cross_entropy(logits, y_test).item()
        row["test_accuracy"] = (logits.argmax(-1) == y_test).double().mean().item()
        return row
    row["test_nll"] = head(h, y_test).loss.item()
    exact, greedy = head.predict(h), head.predict_greedy(h)
    row["test_accuracy"] = (exact == y_test).double().mean().item()
    row["greedy_accuracy"] = (greedy == y_test).double().mean().item()
    row["greedy_differs"] = (greedy != exact).double().mean().item()
    nodes, signs = head.path_nodes[y_test], head.path_signs[y_test]
    scores = (head.weight[nodes] * h[:, None, :]).sum(-1) + head.bias[nodes]
    z = (signs.to(scores.dtype) * scores)[signs != 0]
    factor = torch.sigmoid(-z)
    row["factor_right"] = factor[z > 0].mean().item()
    row["factor_wrong"] = factor[z < 0].mean().item()
    return row


def run(head_name, budget, seed, data, on_checkpoint=None, stop=None):
    """One training run, as the notebook repeats it for its first ``stop`` steps."""
    centres, x_train, y_train, x_test, y_test = data
    if head_name == "similar":
        relabel = relabelling(centres)
        y_train, y_test = relabel[y_train], relabel[y_test]
    body, head = build(head_name, seed, torch.bincount(y_train, minlength=NUM_CLASSES))
    optimizer = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, budget)
    order = stream_generator("order", seed)
    for step in range(1, (stop or budget) + 1):
        index = torch.randint(0, N_TRAIN, (BATCH,), generator=order)
        loss = loss_of(head_name, body, head, x_train[index], y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if on_checkpoint is not None and step % EVERY == 0:
            on_checkpoint(step, evaluate(
                head_name, body, head, x_test, y_test, x_train[:N_TRAIN_EVAL], y_train[:N_TRAIN_EVAL]
            ))  # fmt: skip
    return body, head


def check_balanced_tree_is_in_order():
    """The ``similar`` head relies on it: in balanced_tree(128) every subtree is a run of
    consecutive classes, so siblings in the similarity order are siblings in the tree."""
    _, signs = tree_paths(balanced_tree(NUM_CLASSES))
    bits = (signs == -1).long()  # right = 1, read from the root
    depth = bits.shape[1]
    value = (bits * 2 ** torch.arange(depth - 1, -1, -1)).sum(dim=1)
    assert torch.equal(value, torch.arange(NUM_CLASSES)), "balanced tree leaves out of order"


def main():
    torch.set_num_threads(1)
    check_balanced_tree_is_in_order()
    start = time.time()
    environment = {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for seed in SEEDS:
            data = make_data(seed)
            for budget in BUDGETS:
                for head_name in HEADS:

                    def record(step, row, head_name=head_name, budget=budget, seed=seed):
                        out = {"head": head_name, "budget": budget, "seed": seed, "step": step}
                        out.update({k: f"{v:.5f}" for k, v in row.items()}, **environment)
                        writer.writerow(out)

                    run(head_name, budget, seed, data, on_checkpoint=record)
                    handle.flush()
                    print(
                        f"seed {seed} budget {budget} {head_name:8s} {time.time() - start:5.0f} s",
                        flush=True,
                    )
    print(f"done in {time.time() - start:.0f} s ({time.process_time():.0f} s CPU)")


if __name__ == "__main__":
    main()
