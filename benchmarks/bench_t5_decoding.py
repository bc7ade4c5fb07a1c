"""Greedy T5 seq2seq decoding: KV cache vs recomputation vs `transformers`' `generate`.

Builds randomly initialised T5 1.1 models (no download), encodes a source
of `--source` tokens and generates `--steps` tokens greedily (beam search
with topk=1) three ways:

* `recompute`: `EncoderDecoderDecoder(use_cache=False)`, encoder and decoder
  rerun on everything every step (what bert4keras's T5 examples do; traced
  once on TensorFlow);
* `kv cache`: the encoder once, cross-attention keys/values projected once,
  one decoder token per step (traced once on TensorFlow, `jax.jit` on JAX);
* `hf generate` (`--hf`): the same weights exported with `save_weights_as_hf`
  and run by `T5ForConditionalGeneration.generate(num_beams=1, do_sample=False)`
  in PyTorch (its own KV cache), on the same CPU threads.

The end token is forbidden until `--steps` tokens exist in every row, so all
three do the same work; ids are compared (cache vs recompute must be equal).
Sizes: `base` (T5 1.1 base shape: 12 + 12 layers, d_model 768, d_ff 2048,
vocab 32128), `small` (4 + 4 layers, 256, 1024, vocab 5000).

    python benchmarks/bench_t5_decoding.py [--sizes base,small] [--source 64,256] [--steps 64] [--hf]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasnlp4su.decoding import EncoderDecoderDecoder  # noqa: E402
from kerasnlp4su.models import build_transformer_model  # noqa: E402

END_ID = 1
SIZES = {
    "base": dict(vocab_size=32128, d_model=768, d_ff=2048, num_layers=12, num_heads=12, d_kv=64),
    "small": dict(vocab_size=5000, d_model=256, d_ff=1024, num_layers=4, num_heads=4, d_kv=64),
}


def best_time(fn, repeats):
    result = fn()  # trace / warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, np.asarray(result)


def random_t5_1_1(size):
    """A T5 1.1 builder of `SIZES[size]` with seeded T5-like weights, and its config.

    Unit-variance embeddings and 1/sqrt(fan-in) kernels, so activations stay
    in a trained model's range (bench_generation.py uses it too).
    """
    config = dict(SIZES[size], feed_forward_proj="gated-gelu")
    t5 = build_transformer_model(model="t5.1.1", return_keras_model=False, **config)
    for variable in t5.model.weights:
        shape = tuple(variable.shape)
        scale = 1.0 if "Embedding-Token" in variable.path else 1 / np.sqrt(shape[0])
        variable.assign(np.random.default_rng(0).normal(0, scale, shape).astype("float32"))
    return t5, config


def run(size, source_length, args):
    t5, config = random_t5_1_1(size)
    source = np.random.default_rng(1).integers(2, config["vocab_size"], source_length)
    minlen = args.steps + 2  # start token + steps, the end token allowed after
    rows = {}
    for name, use_cache in (("recompute", False), ("kv cache", True)):
        decoder = EncoderDecoderDecoder(t5, end_id=END_ID, maxlen=args.steps, minlen=minlen,
                                        use_cache=use_cache)
        rows[name] = best_time(lambda d=decoder: d.beam_search([source], topk=1), args.repeats)
    np.testing.assert_array_equal(rows["recompute"][1], rows["kv cache"][1])
    if args.hf:
        import torch
        import transformers

        from kerasnlp4su.models.hf import save_weights_as_hf

        with tempfile.TemporaryDirectory() as directory:
            save_weights_as_hf(t5, directory)
            hf = transformers.T5ForConditionalGeneration.from_pretrained(directory).eval()
        ids = torch.tensor(source[None], dtype=torch.long)

        def generate():
            with torch.no_grad():
                return hf.generate(ids, num_beams=1, do_sample=False, max_new_tokens=args.steps,
                                   min_new_tokens=args.steps)[0].numpy()

        rows["hf generate"] = best_time(generate, args.repeats)
    for name, (seconds, ids) in rows.items():
        same = np.array_equal(ids[:len(rows["kv cache"][1])], rows["kv cache"][1])
        print(f"| {size} | {source_length} | {name} | {1000 * seconds / args.steps:.1f} ms/token "
              f"| ids {'equal' if same else 'DIFFER'} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="base,small", help=f"comma list of {sorted(SIZES)}")
    parser.add_argument("--source", default="64,256", help="comma list of source lengths")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hf", action="store_true", help="add transformers' generate (PyTorch)")
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, greedy, {args.steps} generated tokens, "
          f"best of {args.repeats}")
    print("| size | source tokens | decoder | time | ids vs kv cache |\n| --- | --- | --- | --- | --- |")
    for size in args.sizes.split(","):
        for source_length in (int(n) for n in args.source.split(",")):
            run(size, source_length, args)


if __name__ == "__main__":
    main()
