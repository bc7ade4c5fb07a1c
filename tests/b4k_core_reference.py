"""Compute reference values with bert4keras 0.11.5 itself (run as a subprocess).

Usage: TF_KERAS=1 TF_USE_LEGACY_KERAS=1 python b4k_core_reference.py cases.pkl out.pkl

`cases.pkl` holds the inputs written by tests/test_bert4keras_names.py; the
results of bert4keras's backend, K, snippets and optimizers on them go to
`out.pkl`. Runs on tf-keras 2.x, where bert4keras's optimizers need the
legacy optimizer base class, so that one name is pointed at it here (in
this reference process only).
"""

import pickle
import sys

import numpy as np
import tensorflow as tf
from bert4keras import backend as B
from bert4keras.backend import K, keras

keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer
from bert4keras import optimizers as O  # noqa: E402
from bert4keras import snippets as S  # noqa: E402


def run_optimizer(make, cases):
    variables = [tf.Variable(v, name=n) for n, v in cases["opt_values"].items()]
    optimizer = make()
    history = []
    for grads in cases["opt_grads"]:
        optimizer.apply_gradients(
            [(tf.constant(grads[n]), v) for n, v in zip(cases["opt_values"], variables)])
        history.append({v.name.split(":")[0]: v.numpy() for v in variables})
    return history


def main(cases_path, out_path):
    with open(cases_path, "rb") as f:
        c = pickle.load(f)
    out = {}
    ev = K.eval

    out["batch_gather"] = [ev(B.batch_gather(tf.constant(p), tf.constant(i)))
                           for p, i in c["batch_gather"]]
    x = tf.constant(c["x_238"])
    out["reshape"] = ev(B.reshape(x, (4, -1), 2))
    out["reshape_two"] = ev(B.reshape(x, (1, 3), 1, (2, 2, 2), 2))
    out["flatten"] = ev(B.flatten(tf.constant(c["x_2345"]), 1, 3))
    out["align"] = ev(B.align(tf.constant(c["mask"]), [0, 3], 4)).shape
    scores, mask = tf.constant(c["scores"]), tf.constant(c["mask"])
    out["masking"] = {
        "axis1": ev(B.sequence_masking(scores, mask, -5.0, 2)),
        "axes": ev(B.sequence_masking(scores, mask, 0, [2, 3])),
        "bias": ev(B.sequence_masking(scores, mask, -5.0, -1, tf.constant(c["bias"]))),
    }
    out["attention_normalize"] = {
        m: ev(B.attention_normalize(scores, mask, -1, m)) for m in
        ("softmax", "squared_relu", "softmax_plus")}
    positions = tf.range(5, dtype="float32")
    sinusoid = B.sinusoidal_embeddings(positions, 6)
    out["sinusoidal"] = ev(sinusoid)
    out["initializer"] = ev(B.Sinusoidal()((7, 4)))
    q, k = tf.constant(c["q"]), tf.constant(c["k"])
    out["rope"] = [ev(t) for t in B.apply_rotary_position_embeddings(sinusoid[None], q, k)]
    seq = tf.constant(c["seq"])
    out["pool1d"] = {mode: ev(B.pool1d(seq, 2, 2, pool_mode=mode)) for mode in ("max", "avg")}
    out["pool1d_same"] = ev(B.pool1d(seq, 3, 1, padding="same"))
    out["divisible"] = ev(B.divisible_temporal_padding(seq, 4))
    out["rms"] = ev(B.root_mean_square(seq, axis=-1, keepdims=True))
    out["piecewise"] = [float(ev(B.piecewise_linear(t, {3: 1.0, 6: 0.5}))) for t in range(9)]
    out["piecewise_nz"] = [float(ev(B.piecewise_linear(t, {3: 1.0, 6: 0.5}, from_zero=False)))
                           for t in range(9)]
    out["leaky_relu"] = ev(B.leaky_relu(seq))
    out["where"] = ev(B.where(tf.constant(c["cond"]), seq, 0))

    out["batch_dot"] = [ev(K.batch_dot(tf.constant(a), tf.constant(b), axes))
                        for a, b, axes in c["batch_dot"]]
    out["dot"] = [ev(K.dot(tf.constant(a), tf.constant(b))) for a, b in c["dot"]]
    probs, labels = tf.constant(c["probs"]), tf.constant(c["labels"])
    out["K"] = {
        "l2_normalize": ev(K.l2_normalize(seq, axis=1)),
        "sparse_ce": ev(K.sparse_categorical_crossentropy(labels, probs)),
        "sparse_ce_logits": ev(K.sparse_categorical_crossentropy(labels, probs, from_logits=True)),
        "ce": ev(K.categorical_crossentropy(tf.one_hot(labels, 5), probs)),
        "bce": ev(K.binary_crossentropy(tf.constant(c["targets"]), probs)),
        "relu": ev(K.relu(seq, alpha=0.1, max_value=1.5, threshold=0.2)),
        "cumsum": ev(K.cumsum(seq)),
        "concatenate": ev(K.concatenate([seq, seq])),
        "expand_dims": ev(K.expand_dims(seq)).shape,
        "argmax": ev(K.argmax(seq)),
        "repeat": ev(K.repeat(seq[:, 0], 2)),
        "temporal_padding": ev(K.temporal_padding(seq, (1, 2))),
        "sum": ev(K.sum(seq, 1, keepdims=True)),
        "batch_flatten": ev(K.batch_flatten(seq)),
        # The Keras-2 calls bert4keras and its examples make through `K`.
        "gather": ev(K.gather(tf.constant(c["small_matrix"]), tf.constant([3, 0, 3]))),
        "repeat_elements": ev(K.repeat_elements(seq, 2, 1)),
        "permute_dimensions": ev(K.permute_dimensions(seq, (2, 0, 1))),
        "pow": ev(K.pow(seq, 2)),
        "sqrt": ev(K.sqrt(seq)),
        "switch": ev(K.switch(seq > 0, seq, -seq)),
        "one_hot": ev(K.one_hot(tf.constant(labels), 5)),
        "argmin": ev(K.argmin(seq)),
        "reverse": ev(K.reverse(seq, 1)),
        "arange": ev(K.arange(2, 9, 3)),
        "constant": ev(K.constant(1.5, shape=(2, 3))),
        "l2_all": ev(K.l2_normalize(seq)),
        "in_train": ev(K.in_train_phase(seq * 2, seq, training=1)),
        "in_test": ev(K.in_train_phase(seq * 2, seq, training=0)),
        "ones_like": ev(K.ones_like(seq)),
        "cumprod": ev(K.cumprod(seq)),
        "pool_max": ev(K.pool2d(seq[:, :, None], (2, 1), (1, 1), "valid", "channels_last", "max")),
        "pool_avg": ev(K.pool2d(seq[:, :, None], (2, 1), (2, 1), "same", "channels_last", "avg")),
        "rnn": [ev(t) for t in K.rnn(lambda x, s: (s[0] * 0.5 + x, [s[0] * 0.5 + x]), seq,
                                     [tf.zeros((2, 3))])[:2]],
        "dtype": K.dtype(seq), "ndim": K.ndim(seq), "floatx": K.floatx(),
        "epsilon": K.epsilon(),
    }

    out["lcs"] = [S.longest_common_subsequence(a, b) for a, b in c["string_pairs"]]
    out["lcsubstring"] = [S.longest_common_substring(a, b) for a, b in c["string_pairs"]]
    out["orthogonally_resize"] = S.orthogonally_resize(c["small_matrix"], (8, 9))
    out["string_matching"] = [S.string_matching(s, ["Norm$", "^bias"]) for s in c["names"]]

    adam = O.Adam
    makes = {
        "adam": lambda: adam(learning_rate=0.01),
        "adam_no_bias_correction": lambda: adam(learning_rate=0.01, bias_correction=False,
                                                epsilon=1e-5),
        "adafactor_relative": lambda: O.AdaFactor(learning_rate=None, beta1=0.9,
                                                  exclude_from_parameter_scale=["bias"]),
        "adafactor_fixed": lambda: O.AdaFactor(learning_rate=0.01, beta2=0.99,
                                               clipping_threshold=None,
                                               multiply_by_parameter_scale=False),
        "lamb": lambda: O.extend_with_layer_adaptation(O.extend_with_weight_decay(adam))(
            learning_rate=0.01, weight_decay_rate=0.01, exclude_from_layer_adaptation=["bias"]),
        "lazy": lambda: O.extend_with_lazy_optimization(adam)(
            learning_rate=0.01, include_in_lazy_optimization=["embeddings"]),
        "piecewise_adam": lambda: O.extend_with_piecewise_linear_lr(adam)(
            learning_rate=0.01, lr_schedule={2: 1.0, 4: 0.5}),
    }
    out["optimizers"] = {name: run_optimizer(make, c) for name, make in makes.items()}

    with open(out_path, "wb") as f:
        pickle.dump(out, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
