"""Which float type sensitive reductions (softmax scores, variances) run in."""

import keras


def at_least_float32(dtype):
    """`"float32"` for narrower floats (bf16/fp16 lose too many bits in softmax
    and variance), the dtype itself when wider (float64 gradient checks).

    Example:
    >>> at_least_float32("bfloat16"), at_least_float32("float64")
    ('float32', 'float64')
    """
    return "float64" if keras.backend.standardize_dtype(dtype) == "float64" else "float32"
