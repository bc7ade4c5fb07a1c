"""Saving the quantization of weights a layer creates inside itself.

`Model.quantize` quantizes leaf layers, including the `Dense` layers that
`MultiHeadAttention`, `FeedForward`, ... build for themselves; the parent's
config does not know, so a reloaded model would rebuild float sublayers and
fail to load the int8 weights. A parent's `get_config` passes its config
through `with_sublayer_policies`: when a sublayer is quantized, the
parent's `dtype` becomes a `keras.dtype_policies.DTypePolicyMap` from
sublayer path to policy, and the parent hands that map to the sublayers it
creates (`dtype=self.dtype_policy`), as KerasHub's backbones do.

`quantizing_cheaply` makes `quantize` itself fast in a big process (below).
"""

import contextlib
import gc

from keras import dtype_policies


@contextlib.contextmanager
def quantizing_cheaply():
    """Freeze the objects that exist now while a layer quantizes itself.

    Keras's `Layer.__delattr__` runs a full `gc.collect()` for each float
    variable `quantize` replaces. With TensorFlow and a model loaded, a full
    collection walks millions of objects (0.2-0.5 s each), so quantizing a
    12-layer encoder spent most of its time collecting. Frozen objects are
    skipped by collections, which then only walk what `quantize` created; the
    replaced variables are freed by reference counting as before (checked in
    tests/test_quantize.py). A process that froze objects itself keeps its
    own state: then nothing is frozen or unfrozen here.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def with_sublayer_policies(layer, config):
    """`config` with `dtype` mapping each quantized sublayer's path to its policy."""
    own = layer._dtype_policy
    if isinstance(own, dtype_policies.DTypePolicyMap):
        return config  # rebuilt from such a config: the map already holds the sublayers
    quantized = {sub.path: sub.dtype_policy for sub in layer._flatten_layers(include_self=False)
                 if not isinstance(sub._dtype_policy, dtype_policies.DTypePolicyMap)
                 and sub.dtype_policy.quantization_mode is not None}
    if quantized:
        policy_map = dtype_policies.DTypePolicyMap(default_policy=own)
        for path, policy in quantized.items():
            policy_map[path] = policy
        config["dtype"] = dtype_policies.serialize(policy_map)
    return config
