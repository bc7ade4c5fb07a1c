"""What `keras.RematScope(mode="full")` around `build_transformer_model` saves: activation memory.

Builds the same small BERT (4 layers, hidden 256, 512 tokens per row, batch 8, attention
dropout on) plainly and inside the scope, and reports per backend:

* PyTorch: the bytes autograd keeps for the backward pass of one training-mode forward
  (`torch.autograd.graph.saved_tensors_hooks`);
* JAX: the temporary buffers XLA allocates for the jitted loss-and-gradient step
  (`compiled.memory_analysis().temp_size_in_bytes`). XLA on CPU does not lower its figure for
  rematerialised code at all (a textbook `jax.checkpoint` chain of matmuls reports the same
  bytes with and without it), so on CPU this shows little; measure it on a GPU or TPU;
* TensorFlow: not measured (no per-function memory figure on CPU); the tests check that the
  layers go through `keras.remat` and that losses and gradients equal the plain model's.

    KERAS_BACKEND=jax python benchmarks/bench_remat_memory.py
    KERAS_BACKEND=torch python benchmarks/bench_remat_memory.py
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasnlp4su.models import build_transformer_model  # noqa: E402

CONFIG = dict(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
              intermediate_size=1024, max_position_embeddings=512, attention_dropout_rate=0.1)
BATCH, LENGTH = 8, 512


def models():
    keras.utils.set_random_seed(0)
    plain = build_transformer_model(**CONFIG)
    with keras.RematScope(mode="full"):
        remat = build_transformer_model(**CONFIG)
    remat.set_weights(plain.get_weights())
    return {"plain": plain, "RematScope(full)": remat}


def inputs():
    tokens = np.random.default_rng(0).integers(1, CONFIG["vocab_size"], size=(BATCH, LENGTH))
    return [tokens.astype("int32"), np.zeros((BATCH, LENGTH), "int32")]


def torch_saved_bytes(model, x):
    import torch

    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x, training=True)
    return total


def jax_temp_bytes(model, x):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable, non_trainable, x):
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=True)
        return keras.ops.mean(keras.ops.square(outputs))

    step = jax.jit(jax.value_and_grad(loss))
    return step.lower(trainable, non_trainable, x).compile().memory_analysis().temp_size_in_bytes


def main():
    backend = keras.backend.backend()
    measure = {"torch": torch_saved_bytes, "jax": jax_temp_bytes}.get(backend)
    if measure is None:
        sys.exit(f"no memory figure on {backend}; run with KERAS_BACKEND=jax or torch")
    what = {"torch": "bytes saved for backward", "jax": "XLA temp bytes of the gradient step"}
    x = inputs()
    print(f"| backend | model | {what[backend]} |\n| --- | --- | --- |")
    for name, model in models().items():
        print(f"| {backend} | {name} | {measure(model, x) / 2**20:.1f} MiB |")


if __name__ == "__main__":
    main()
