"""Data-parallel fine-tuning on several devices with an existing engine.

* TensorFlow backend: `tf.distribute.MirroredStrategy` (one machine, many
  GPUs; use `MultiWorkerMirroredStrategy` with `TF_CONFIG` for several hosts).
* JAX backend: `keras.distribution.DataParallel` (all local devices; on a
  multi-host setup call `keras.distribution.initialize()` first).

Without GPUs the script splits the CPU into `--devices` logical devices, so
the same code path runs anywhere:

    KERAS_BACKEND=tensorflow python examples/distributed_training.py --devices 2
    KERAS_BACKEND=jax        python examples/distributed_training.py --devices 2

It fine-tunes a sentiment classifier (pooled [CLS] -> softmax) on the first
`batch_size * steps` sentences of `examples/data/sentiment.tsv` for a few SGD
steps and prints the final loss and a weight checksum; `--devices 1` gives the
single-device result to compare (they agree to float rounding), and `--compare` runs
both in one process and prints both. It is a check
of the data-parallel plumbing, not a benchmark: train longer with `--steps`.
For a real model pass an official release with `--config/--checkpoint/--vocab`.
"""

import argparse
import csv
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch size")
    parser.add_argument("--config", default=os.path.join(TINY, "bert_config.json"))
    parser.add_argument("--checkpoint", default=os.path.join(TINY, "bert_model.ckpt"))
    parser.add_argument("--vocab", default=os.path.join(TINY, "vocab.txt"))
    parser.add_argument("--model", default="bert")
    parser.add_argument("--data", default=os.path.join(HERE, "data", "sentiment.tsv"))
    parser.add_argument("--maxlen", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--compare", action="store_true",
                        help="also train on one device in the same process and report both runs")
    return parser.parse_args(argv)


def setup_devices(n):
    """Make `n` devices visible before the backend initialises; return a factory of scopes:
    `scope(True)` spans the `n` devices, `scope(False)` is one device."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "jax" and n > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={n}").strip()
    import contextlib

    import keras

    if backend not in ("jax", "tensorflow") and n > 1:
        sys.exit(f"data parallelism on the {backend} backend: use torch.distributed (DDP) directly")
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) >= n > 1:
            strategy = tf.distribute.MirroredStrategy([f"GPU:{i}" for i in range(n)])
        elif n > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
            strategy = tf.distribute.MirroredStrategy([f"CPU:{i}" for i in range(n)])
        else:
            strategy = None
        return lambda parallel: strategy.scope() if parallel and strategy else contextlib.nullcontext()

    @contextlib.contextmanager
    def jax_scope(parallel):
        if not (parallel and n > 1):
            yield
            return
        devices = keras.distribution.list_devices()[:n]
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield
        finally:
            keras.distribution.set_distribution(None)

    return jax_scope


def replica_count():
    """How many devices the active strategy/distribution really spans."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.get_strategy().num_replicas_in_sync
    distribution = keras.distribution.distribution()
    return 1 if distribution is None else int(np.prod(distribution.device_mesh.shape))


def train(args, scope, token_ids, labels):
    """A few SGD steps of the classifier inside `scope`; the final loss and a weight checksum."""
    import keras

    from kerasnlp4su.models import build_transformer_model

    with scope:
        # No dropout: the single- and multi-device runs must see the same function.
        bert = build_transformer_model(args.config, args.checkpoint, model=args.model,
                                       with_pool=True, dropout_rate=0.0, attention_dropout_rate=0.0)
        probs = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros")(bert.output)
        model = keras.Model(bert.inputs, probs)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        replicas = replica_count()
        history = model.fit([token_ids, np.zeros_like(token_ids)], labels, batch_size=args.batch_size,
                            epochs=1, shuffle=False, verbose=0)
    checksum = float(sum(np.abs(keras.ops.convert_to_numpy(w)).sum() for w in model.weights))
    return {"backend": keras.backend.backend(), "devices": replicas, "replicas": replicas,
            "loss": float(history.history["loss"][-1]), "checksum": checksum}


def main(argv=None):
    args = parse_args(argv)
    scope = setup_devices(args.devices)

    from kerasnlp4su.snippets import sequence_padding
    from kerasnlp4su.tokenizers import Tokenizer

    tokenizer = Tokenizer(args.vocab, do_lower_case=True)
    with open(args.data, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:args.batch_size * args.steps]
    token_ids, _ = zip(*(tokenizer.encode(row["text"], maxlen=args.maxlen) for row in rows))
    token_ids = sequence_padding(token_ids, length=args.maxlen).astype("int32")
    labels = np.array([int(row["label"]) for row in rows], "int32")
    runs = {"parallel": train(args, scope(True), token_ids, labels)}
    if args.compare:
        runs["single"] = train(args, scope(False), token_ids, labels)
    for run in runs.values():
        if not args.json:
            print(f"{run['backend']} on {run['replicas']} device(s): loss {run['loss']:.6f}, "
                  f"weight checksum {run['checksum']:.6f}")
    if args.json:
        print(json.dumps(runs if args.compare else runs["parallel"]))
    return runs if args.compare else runs["parallel"]


if __name__ == "__main__":
    main()
