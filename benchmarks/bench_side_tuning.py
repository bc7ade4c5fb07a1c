"""Ladder Side-Tuning vs full fine-tuning: peak memory and train-step time, side by side.

Each mode runs in a fresh subprocess on a random BERT of the given size (no
checkpoint needed), so its peak resident memory (`ru_maxrss`) is its own:

* `full`:   every weight trains, a pooled-[CLS] softmax head;
* `ladder`: `ladder_side_model(bert, reduction)`, the backbone frozen, a
            mean-pooled softmax head on the side network.

Reported per mode: trained weights, median train-step time (after warm-up
steps that trace and compile the step), the process's peak RSS, and the
growth of that peak from just before training (model built, one inference
batch run) to the end: the memory training itself added (gradients,
optimizer slots, the activations kept for the backward pass). On a GPU the
TensorFlow allocator's peak during training is reported too.

    python benchmarks/bench_side_tuning.py                       # BERT-small-ish, batch 16 x 128
    python benchmarks/bench_side_tuning.py --layers 2 --hidden 128 --steps 5   # quick
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras
from kerasnlp4su.layers import MaskedGlobalAveragePooling
from kerasnlp4su.models import build_transformer_model
from kerasnlp4su.training import ladder_side_model

opts = json.loads(sys.argv[1])
keras.utils.set_random_seed(0)
bert = build_transformer_model(
    vocab_size=opts["vocab"], hidden_size=opts["hidden"], num_hidden_layers=opts["layers"],
    num_attention_heads=opts["heads"], intermediate_size=4 * opts["hidden"],
    max_position_embeddings=max(512, opts["length"]), type_vocab_size=2, hidden_act="gelu",
    with_pool=opts["mode"] == "full")
if opts["mode"] == "full":
    features = bert.output
else:
    side = ladder_side_model(bert, reduction=opts["reduction"])
    features = MaskedGlobalAveragePooling()([side.output, bert.inputs[0]])
model = keras.Model(bert.inputs, keras.layers.Dense(2, activation="softmax")(features))
model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
ids = rng.integers(1, opts["vocab"], (opts["batch"], opts["length"])).astype("int32")
x, y = [ids, np.zeros_like(ids)], rng.integers(0, 2, opts["batch"]).astype("int32")
model.predict(x, verbose=0)
gpu = bool(keras.config.backend() == "tensorflow" and __import__("tensorflow").config.list_physical_devices("GPU"))
if gpu:
    import tensorflow as tf
    tf.config.experimental.reset_memory_stats("GPU:0")
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(opts["warmup"]):
    model.train_on_batch(x, y)
times = []
for _ in range(opts["steps"]):
    t0 = time.perf_counter(); model.train_on_batch(x, y); times.append(time.perf_counter() - t0)
rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = {"trained": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
          "total": int(model.count_params()), "step_s": float(np.median(times)),
          "peak_rss_mb": rss_after / 1024, "training_rss_mb": (rss_after - rss_before) / 1024}
if gpu:
    result["gpu_peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
print(json.dumps(result))
"""


def run(mode, args):
    options = dict(vars(args), mode=mode)
    proc = subprocess.run([sys.executable, "-c", WORKER, json.dumps(options)],
                          capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--reduction", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    results = {mode: run(mode, args) for mode in ("full", "ladder")}
    print(f"BERT {args.layers} layers, hidden {args.hidden}, batch {args.batch} x {args.length}, "
          f"side reduction {args.reduction}; median of {args.steps} train steps")
    gpu = "gpu_peak_mb" in results["full"]
    header = "| mode | trained weights | step time, s | peak RSS, MB | RSS added by training, MB |"
    print(header + (" GPU peak, MB |" if gpu else ""))
    print("|---" * (6 if gpu else 5) + "|")
    for mode, r in results.items():
        row = (f"| {mode} | {r['trained']:,} of {r['total']:,} | {r['step_s']:.4f} | "
               f"{r['peak_rss_mb']:.0f} | {r['training_rss_mb']:.0f} |")
        print(row + (f" {r['gpu_peak_mb']:.0f} |" if gpu else ""))
    full, side = results["full"], results["ladder"]
    print(f"ladder / full: step time {side['step_s'] / full['step_s']:.2f}x, RSS added by training "
          f"{side['training_rss_mb'] / max(full['training_rss_mb'], 1e-9):.2f}x")
    return results


if __name__ == "__main__":
    main()
