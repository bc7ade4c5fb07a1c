"""Greedy decoding (BERT UniLM, GPT-2 LM) with and without the KV cache.

Builds randomly initialised BERT UniLM models (no download) and, for each,
encodes a 64- and a 256-token source and generates 64 tokens greedily (beam
search with topk=1) with full recomputation every step (`use_cache=False`; on
TensorFlow the forward pass is traced once, on JAX and PyTorch it runs
eagerly, as lengths change every step) and with the KV cache (the default:
the one-token step traced once on TensorFlow, `jax.jit`-compiled once on
JAX, eager on PyTorch). The backend is Keras's (`KERAS_BACKEND`). Sizes:

* `base`: BERT-base shape (12 layers, hidden 768, vocab 21128), the usual
  UniLM seq2seq model; the `--target` applies to it. At batch 1 a cached
  step reads every weight once (about 400 MB in float32), so memory
  bandwidth, not arithmetic, sets its floor; recomputation grows with the
  source length, and so does the speedup.
* `small`: 4 layers, hidden 256, vocab 5000. A one-token step is about
  0.01 GFLOP here, so its time is the framework's per-op overhead and the
  speedup shows that floor rather than the cache's saving.

`--models unilm,gpt2` (the default) adds the same rows for a GPT-2 LM
(`kerasnlp4su.models.GPT2`, CPM-LM's layout: pre-LN, final norm, token ids
only) of the same sizes continuing a prompt of the source length with
`LMDecoder`.

Optional extra rows: the cache with an eager step (`--eager`) and a
bert4keras-style subclass calling `last_token(model).predict` every step
(`--bert4keras`). Asserts that every variant produces identical ids
(`--strict` also turns a base-size speedup below `--target` into exit 1).

    python benchmarks/bench_decoding.py [--models unilm,gpt2] [--sizes base,small]
        [--source 64,256] [--steps 64]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasnlp4su.decoding import AutoRegressiveDecoder, LMDecoder, Seq2SeqDecoder  # noqa: E402
from kerasnlp4su.models import BERT, GPT2  # noqa: E402

END_ID = 3
SIZES = {
    "base": dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072),
    "small": dict(vocab_size=5000, hidden_size=256, num_hidden_layers=4,
                  num_attention_heads=4, intermediate_size=1024),
}


def timed(decoders, inputs, repeats):
    """Best-of-`repeats` wall time per decoder, interleaved so load changes hit all alike."""
    ids = {name: d.beam_search(inputs, topk=1) for name, d in decoders.items()}  # trace / warm up
    best = {name: [float("inf")] * 2 for name in decoders}
    for _ in range(repeats):
        for name, d in decoders.items():
            wall, cpu = time.perf_counter(), time.process_time()
            ids[name] = d.beam_search(inputs, topk=1)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    return {name: (*best[name], ids[name]) for name in decoders}


class Bert4kerasStyle(AutoRegressiveDecoder):
    """What a bert4keras user writes: `last_token(model).predict` on the whole sequence."""

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    @AutoRegressiveDecoder.wraps(default_rtype="probas")
    def predict(self, inputs, output_ids, states):
        token_ids = np.concatenate([inputs[0], output_ids], 1)
        if len(self.model.inputs) == 1:  # an LM on token ids only (GPT-2)
            return self.last_token(self.model).predict(token_ids, verbose=0)
        segment_ids = np.concatenate([inputs[1], np.ones_like(output_ids)], 1)
        return self.last_token(self.model).predict([token_ids, segment_ids], verbose=0)


#: what each `--models` entry decodes: (title, builder class, application, decoder class).
MODELS = {
    "unilm": ("BERT UniLM seq2seq", BERT, "unilm", Seq2SeqDecoder),
    "gpt2": ("GPT-2 LM", GPT2, "lm", LMDecoder),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="unilm,gpt2", help=f"comma list of {sorted(MODELS)}")
    parser.add_argument("--sizes", default="base,small", help=f"comma list of {sorted(SIZES)}")
    parser.add_argument("--source", default="64,256",
                        help="comma list of source lengths (tokens, with [CLS] and [SEP])")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bert4keras", action="store_true",
                        help="also time a bert4keras-style decoder calling model.predict")
    parser.add_argument("--eager", action="store_true",
                        help="also time the KV cache with the step run eagerly (slow)")
    parser.add_argument("--target", type=float, default=5.0)
    parser.add_argument("--strict", action="store_true", help="exit 1 when below --target")
    args = parser.parse_args()

    print(f"{args.steps} generated tokens, greedy, best of {args.repeats}, "
          f"CPU threads={os.cpu_count()}, backend {keras.backend.backend()}")
    missed = False
    for kind in args.models.split(","):
        for size in args.sizes.split(","):
            for source in map(int, args.source.split(",")):
                speedup = run_size(kind, size, source, args)
                missed |= size == "base" and speedup < args.target
    if args.strict and missed:
        sys.exit(1)


def run_size(kind, size, source, args):
    title, model_cls, application, decoder_cls = MODELS[kind]
    config = SIZES[size]
    # A wider init than BERT's 0.02 makes the random model's next-token
    # distribution peaked enough that greedy ids do not hinge on float noise.
    transformer = model_cls(**config, max_position=512, application=application,
                            initializer_range=0.1)
    transformer.build()
    rng = np.random.default_rng(0)
    vocab = config["vocab_size"]
    token_ids = np.concatenate([[2], rng.integers(10, vocab, source - 2), [END_ID]])
    if application == "lm":  # a prompt to continue, not a closed source
        token_ids = token_ids[:-1]
    inputs = [token_ids, np.zeros_like(token_ids)]

    def decoder(**kwargs):
        # end_id outside the vocabulary: always generate exactly `steps` tokens.
        return decoder_cls(transformer, end_id=-1, maxlen=args.steps, **kwargs)

    recompute = "recompute (traced)" if keras.backend.backend() == "tensorflow" else "recompute (eager)"
    runs = {recompute: decoder(use_cache=False), "KV cache (default)": decoder()}
    if args.eager:
        runs["KV cache, eager step"] = decoder(compile_step=False)
    if args.bert4keras:
        runs["bert4keras-style predict"] = Bert4kerasStyle(
            transformer.model, start_id=None, end_id=-1, maxlen=args.steps)
    results = timed(runs, inputs, args.repeats)
    base, base_cpu, reference = results[recompute]
    # CPU time (all threads) is reported too: on a shared machine it moves
    # much less with other processes' load than wall time does.
    print(f"{title}, {size}: {config['num_hidden_layers']} layers, hidden "
          f"{config['hidden_size']}, vocab {vocab}; source {len(token_ids)} tokens", flush=True)
    for name, (wall, cpu, _) in results.items():
        print(f"  {name:26s} wall {wall:7.3f} s  {1000 * wall / args.steps:7.2f} ms/token "
              f"({base / wall:4.1f}x)   cpu {cpu:7.3f} s ({base_cpu / cpu:4.1f}x)")
    for name, (_, _, ids) in results.items():
        assert np.array_equal(ids, reference), f"{size}: {name} produced different ids"
    speedup = base / results["KV cache (default)"][0]
    if size == "base":
        verdict = "meets" if speedup >= args.target else "is BELOW"
        print(f"  identical ids; cache speedup {speedup:.1f}x {verdict} the {args.target}x target")
    else:
        print(f"  identical ids; cache speedup {speedup:.1f}x (overhead-bound size, no target)")
    sys.stdout.flush()
    return speedup


if __name__ == "__main__":
    main()
