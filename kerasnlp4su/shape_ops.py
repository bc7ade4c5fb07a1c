"""bert4keras's tensor-shape helpers: `reshape` by axis, `flatten` of an axis range, lenient `dtype`/`where`.

Both `kerasnlp4su.backend` (bert4keras's `backend` names) and
`kerasnlp4su.legacy_backend` (bert4keras put these three onto `K`) hand
them on; they live here so neither of those modules imports the other's.
"""

import keras
import numpy as np
from keras import ops


def _dims(tensor):
    """Each dimension: the static int where known, else the runtime size."""
    dynamic = ops.shape(tensor)
    return [s if s is not None else dynamic[i] for i, s in enumerate(tensor.shape)]


def reshape(tensor, *args):
    """`reshape(x, shape)`, or per-axis `reshape(x, shape1, axis1, shape2, axis2, ...)`.

    The second form replaces axis `axis_i` by the axes `shape_i` (one of
    which may be -1) and keeps the others, e.g. splitting the hidden axis
    into heads: `reshape(x, (heads, -1), 2)`.

    >>> tuple(reshape(keras.ops.ones((2, 3, 8)), (4, -1), 2).shape)
    (2, 3, 4, 2)
    """
    if len(args) == 1:
        return ops.reshape(tensor, args[0])
    if len(args) % 2:
        raise ValueError("reshape: expected (shape, axis) pairs after the tensor")
    dims = [[d] for d in _dims(tensor)]
    for new_shape, axis in zip(args[::2], args[1::2]):
        new_shape = list(new_shape)
        if new_shape.count(-1) > 1:
            raise ValueError(f"reshape: at most one -1 per axis, got {new_shape}")
        if -1 in new_shape:
            known = int(np.prod([s for s in new_shape if s != -1]))
            new_shape[new_shape.index(-1)] = dims[axis][0] // known
        dims[axis] = new_shape
    return ops.reshape(tensor, [d for group in dims for d in group])


def flatten(tensor, start=None, end=None):
    """Merge axes `start` (default 0) up to `end` (default all) into one.

    >>> tuple(flatten(keras.ops.ones((2, 3, 4, 5)), 1, 3).shape)
    (2, 12, 5)
    """
    start, end = start or 0, end or len(tensor.shape)
    dims = _dims(tensor)
    merged = 1
    for d in dims[start:end]:
        merged = merged * d
    return ops.reshape(tensor, dims[:start] + [merged] + dims[end:])


def dtype(x):
    """`x`'s dtype name, or None for Python values (bert4keras's lenient `K.dtype`)."""
    if not hasattr(x, "dtype"):
        return None
    return keras.backend.standardize_dtype(x.dtype)


def where(cond, x, y):
    """`keras.ops.where` with Python numbers taking the other side's dtype (`floatx` for two numbers)."""
    if dtype(x) is None and dtype(y) is None:
        x = ops.convert_to_tensor(x, keras.config.floatx())
        y = ops.convert_to_tensor(y, keras.config.floatx())
    elif dtype(x) is None:
        x = ops.convert_to_tensor(x, dtype(y))
    elif dtype(y) is None:
        y = ops.convert_to_tensor(y, dtype(x))
    return ops.where(ops.cast(cond, "bool"), x, y)
