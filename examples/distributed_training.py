"""Data-parallel fine-tuning on several devices with an existing engine.

* TensorFlow backend: `tf.distribute.MirroredStrategy` (one machine, many
  GPUs; use `MultiWorkerMirroredStrategy` with `TF_CONFIG` for several hosts).
* JAX backend: `keras.distribution.DataParallel` (all local devices; on a
  multi-host setup call `keras.distribution.initialize()` first).

Without GPUs the script splits the CPU into `--devices` logical devices, so
the same code path runs anywhere:

    KERAS_BACKEND=tensorflow python examples/distributed_training.py --devices 2
    KERAS_BACKEND=jax        python examples/distributed_training.py --devices 2

It trains the tiny BERT for a few SGD steps and prints the final loss and a
weight checksum; `--devices 1` gives the single-device result to compare.
"""

import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch size")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def setup_devices(n):
    """Make `n` devices visible before the backend initialises; return a scope."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "jax" and n > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={n}").strip()
    import contextlib

    import keras

    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) >= n > 1:
            return tf.distribute.MirroredStrategy([f"GPU:{i}" for i in range(n)]).scope()
        if n > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
            return tf.distribute.MirroredStrategy([f"CPU:{i}" for i in range(n)]).scope()
        return contextlib.nullcontext()
    if backend == "jax" and n > 1:
        devices = keras.distribution.list_devices()[:n]
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    elif backend not in ("jax", "tensorflow") and n > 1:
        sys.exit(f"data parallelism on the {backend} backend: use torch.distributed (DDP) directly")
    return contextlib.nullcontext()


def replica_count():
    """How many devices the active strategy/distribution really spans."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.get_strategy().num_replicas_in_sync
    distribution = keras.distribution.distribution()
    return 1 if distribution is None else int(np.prod(distribution.device_mesh.shape))


def main(argv=None):
    args = parse_args(argv)
    scope = setup_devices(args.devices)
    import keras

    from kerasnlp4su.models import build_transformer_model

    here = os.path.dirname(os.path.abspath(__file__))
    tiny = os.path.join(here, "..", "checkpoints", "tiny_bert")
    rng = np.random.default_rng(0)
    n = args.batch_size * args.steps
    token_ids = rng.integers(5, 2000, size=(n, 16)).astype("int32")
    token_ids[:, 0], token_ids[:, -1] = 2, 3
    labels = (token_ids[:, 1] % 2).astype("int32")
    with scope:
        bert = build_transformer_model(os.path.join(tiny, "bert_config.json"),
                                       os.path.join(tiny, "bert_model.ckpt"),
                                       with_pool=True, dropout_rate=0.0, attention_dropout_rate=0.0)
        probs = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros")(bert.output)
        model = keras.Model(bert.inputs, probs)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        replicas = replica_count()
    history = model.fit([token_ids, np.zeros_like(token_ids)], labels, batch_size=args.batch_size,
                        epochs=1, shuffle=False, verbose=0)
    checksum = float(sum(np.abs(keras.ops.convert_to_numpy(w)).sum() for w in model.weights))
    result = {"backend": keras.backend.backend(), "devices": args.devices,
              "replicas": replicas,
              "loss": float(history.history["loss"][-1]), "checksum": checksum}
    print(json.dumps(result) if args.json else
          f"{result['backend']} on {args.devices} device(s): loss {result['loss']:.6f}, "
          f"weight checksum {checksum:.6f}")
    return result


if __name__ == "__main__":
    main()
