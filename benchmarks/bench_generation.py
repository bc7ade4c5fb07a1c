"""Batched generation (greedy, beam; batch 1, 16): `decoder.generate` vs `transformers`' `generate`.

T5 1.1 (random weights with T5-like scales, no download): our
`EncoderDecoderDecoder.generate` (KV cache, the whole search in one compiled
loop) and `T5ForConditionalGeneration.generate` (PyTorch, its own KV cache)
on the same weights (exported with `save_weights_as_hf`), the same sources
(random lengths between half and all of `--source`, right-padded for HF) and
the same CPU threads (`--threads`, default all). Every row generates exactly
`--steps` tokens (ours: no end token; HF: `min_new_tokens = max_new_tokens`),
so both do the same work; beam search uses `length_penalty=0`, where HF's beam
search and bert4keras's coincide without end tokens. Ids are compared: they
must be equal for greedy and beam.

`--models` may add `unilm` and `gpt2` (BERT UniLM seq2seq and a GPT-2 LM of
the same size, random weights): `generate` on the batch against the
step-by-step per-example search with recomputation (`use_cache=False`, what
bert4keras does) and with the per-step cache; no HF counterpart.

tokens/s counts generated tokens of all rows (batch x steps) per second of
wall time, best of `--repeats` after a warm-up call, the decoders timed in
turn so that load changes hit them alike. Run on a quiet machine:

    python benchmarks/bench_generation.py [--models t5,unilm,gpt2] [--sizes small,base]
        [--batches 1,16] [--beams 1,4] [--source 64] [--steps 32] [--threads N]
"""

import argparse
import functools
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="t5", help="comma list of t5, unilm, gpt2")
    parser.add_argument("--sizes", default="small", help="comma list of small, base")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--beams", default="1,4", help="beam widths (1: greedy)")
    parser.add_argument("--source", type=int, default=64, help="longest source, tokens")
    parser.add_argument("--steps", type=int, default=32, help="generated tokens per row")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    return parser.parse_args()


ARGS = parse_args()
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasnlp4su.decoding import (AutoRegressiveDecoder, EncoderDecoderDecoder,  # noqa: E402
                                  LMDecoder, Seq2SeqDecoder)
from kerasnlp4su.models import BERT, GPT2  # noqa: E402
from bench_t5_decoding import random_t5_1_1  # noqa: E402  (this script's folder is on sys.path)

BERT_SIZES = {
    "base": dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072),
    "small": dict(vocab_size=5000, hidden_size=256, num_hidden_layers=4,
                  num_attention_heads=4, intermediate_size=1024),
}


def best_times(runs, repeats):
    """`{name: (best seconds, result)}`, each run warmed up once, then timed in turn."""
    results = {name: fn() for name, fn in runs.items()}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], results[name]) for name in runs}


def sources(batch, longest, vocab, seed=1):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max(2, longest // 2), longest + 1, batch)
    return [rng.integers(5, vocab, n) for n in lengths]


def report(model, size, batch, beams, rows, steps, reference):
    label = "greedy" if beams == 1 else f"beam {beams}"
    for name, (seconds, _, same) in rows.items():
        tokens = batch * steps / seconds
        ratio = tokens * rows[reference][0] / (batch * steps)
        print(f"| {model} {size} | {batch} | {label} | {name} | {tokens:8.1f} tokens/s "
              f"| {ratio:4.2f}x | {same} |", flush=True)


def run_t5(size, args):
    import torch
    import transformers

    from kerasnlp4su.models.hf import save_weights_as_hf

    t5, config = random_t5_1_1(size)
    with tempfile.TemporaryDirectory() as directory:
        save_weights_as_hf(t5, directory)
        hf = transformers.T5ForConditionalGeneration.from_pretrained(directory).eval()
    torch.set_num_threads(args.threads)
    for batch in map(int, args.batches.split(",")):
        batch_sources = [np.append(s, 1) for s in sources(batch, args.source - 1,
                                                         config["vocab_size"])]
        padded = np.zeros((batch, max(map(len, batch_sources))), dtype="int64")
        for i, s in enumerate(batch_sources):
            padded[i, :len(s)] = s
        ids, mask = torch.tensor(padded), torch.tensor(padded != 0)
        for beams in map(int, args.beams.split(",")):
            # end_id -1: never ends, every row makes exactly `steps` tokens.
            decoder = EncoderDecoderDecoder(t5, end_id=-1, maxlen=args.steps)

            def ours(decoder=decoder, beams=beams):
                return np.stack(decoder.generate([[s] for s in batch_sources], topk=beams))

            def theirs(beams=beams):
                with torch.no_grad():
                    return hf.generate(ids, attention_mask=mask, num_beams=beams, do_sample=False,
                                       max_new_tokens=args.steps, min_new_tokens=args.steps,
                                       length_penalty=0.0).numpy()

            timed = best_times({"kerasnlp4su generate": ours, "HF generate": theirs},
                               args.repeats)
            reference = timed["HF generate"][1]
            rows = {name: (seconds, ids_, "ids equal" if np.array_equal(ids_, reference)
                           else "ids DIFFER") for name, (seconds, ids_) in timed.items()}
            report("T5 1.1", size, batch, beams, rows, args.steps, "HF generate")


def run_bert_family(kind, size, args):
    model_cls, application, decoder_cls = ((BERT, "unilm", Seq2SeqDecoder) if kind == "unilm"
                                           else (GPT2, "lm", LMDecoder))
    config = BERT_SIZES[size]
    transformer = model_cls(**config, max_position=512, application=application,
                            initializer_range=0.1)
    transformer.build()
    for batch in map(int, args.batches.split(",")):
        prompts = [np.concatenate([[2], s, [3]]) for s in sources(batch, args.source - 2,
                                                                 config["vocab_size"])]
        if application == "lm":
            batch_inputs = [[p[:-1]] for p in prompts]
        else:
            batch_inputs = [[p, np.zeros_like(p)] for p in prompts]
        for beams in map(int, args.beams.split(",")):
            def make(**kwargs):
                return decoder_cls(transformer, end_id=-1, maxlen=args.steps, **kwargs)

            batched, cached, recompute = make(), make(), make(use_cache=False)
            step_by_step = functools.partial(AutoRegressiveDecoder.beam_search, cached)

            runs = {
                "generate (batch, one loop)": lambda b=beams: np.stack(
                    batched.generate(batch_inputs, topk=b)),
                "per example, cache, per step": lambda b=beams: np.stack(
                    [step_by_step(x, topk=b) for x in batch_inputs]),
                "per example, recompute": lambda b=beams: np.stack(
                    [recompute.beam_search(x, topk=b) for x in batch_inputs]),
            }
            timed = best_times(runs, args.repeats)
            reference = timed["per example, recompute"][1]
            rows = {name: (seconds, ids_, "ids equal" if np.array_equal(ids_, reference)
                           else "ids DIFFER") for name, (seconds, ids_) in timed.items()}
            title = "BERT UniLM" if kind == "unilm" else "GPT-2 LM"
            report(title, size, batch, beams, rows, args.steps, "per example, recompute")


def main():
    args = ARGS
    print(f"backend {keras.backend.backend()}, {args.threads} threads, source up to {args.source} "
          f"tokens, {args.steps} generated tokens per row, best of {args.repeats}")
    print("| model | batch | search | decoder | speed | vs reference | ids |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for kind in args.models.split(","):
        for size in args.sizes.split(","):
            if kind == "t5":
                run_t5(size, args)
            else:
                run_bert_family(kind, size, args)


if __name__ == "__main__":
    main()
