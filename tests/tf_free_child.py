"""Child process of `test_tf_free.py`: every family's tiny checkpoint loaded and saved with
`import tensorflow` made to fail, on the backend `KERAS_BACKEND` names.

Run as `python tf_free_child.py JOBS_JSON OUT_NPZ`; JOBS_JSON lists
`[family, config_path, checkpoint_prefix, save_prefix]`.
"""

import importlib.abc
import importlib.machinery
import json
import sys

import numpy as np


class _NotInstalled(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `tensorflow` (and submodules) first and fails to load it, as if not installed.

    The spec it returns has no origin, so libraries that only probe with `find_spec` and read
    the origin (torch's dynamo does) see nothing to use; importing raises ImportError."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (TensorFlow blocked for this "
                                  "test)", name=spec.name)

    def exec_module(self, module):  # never reached: create_module raises
        raise AssertionError


def block_tensorflow():
    """Make `import tensorflow` raise ImportError in this process."""
    sys.meta_path.insert(0, _NotInstalled())


def model_inputs(model):
    """Fixed ids for each of a model's inputs: segments for `*-Segment`, else tokens."""
    tokens, segments = np.array([[2, 11, 12, 13, 3, 5]]), np.array([[0, 0, 0, 1, 1, 1]])
    return [segments if "Segment" in i.name else tokens for i in model.inputs]


def main(jobs_json, out_path):
    block_tensorflow()
    import keras

    from kerasnlp4su.models import build_transformer_model

    results = {}
    for family, config, checkpoint, save_to in json.loads(jobs_json):
        transformer = build_transformer_model(config, checkpoint, model=family,
                                              return_keras_model=False)
        model = transformer.model
        outputs = keras.tree.flatten(model(model_inputs(model), training=False))
        for i, output in enumerate(outputs):
            results[f"{family}/{i}"] = keras.ops.convert_to_numpy(output)
        transformer.save_weights_as_checkpoint(save_to)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
    assert not leaked, f"TensorFlow modules were imported: {leaked[:5]}"
    np.savez(out_path, **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
