"""Outputs of bert4keras 0.11.5's GPT, GPT2 and GPT2_ML on tiny checkpoints (run as a subprocess).

Usage: TF_KERAS=1 TF_USE_LEGACY_KERAS=1 python gpt_b4k_reference.py cases.pkl out.npz

`cases.pkl` is `{model name: (config_path, checkpoint_path, [model inputs])}`,
written by tests/test_gpt.py; each model's probabilities go to `out.npz`
under its name. One process serves every family: starting TensorFlow is
the slow part.
"""

import pickle
import sys

import numpy as np
from bert4keras.backend import set_gelu
from bert4keras.models import build_transformer_model


def main(cases_path, out_path):
    # The releases' code uses the tanh GELU; bert4keras defaults to erf.
    set_gelu("tanh")
    with open(cases_path, "rb") as f:
        cases = pickle.load(f)
    outputs = {}
    for model, (config_path, checkpoint_path, inputs) in cases.items():
        keras_model = build_transformer_model(config_path, checkpoint_path, model=model)
        outputs[model] = keras_model.predict(inputs, verbose=0)
    np.savez(out_path, **outputs)


if __name__ == "__main__":
    main(*sys.argv[1:])
