"""bert4keras's `integerize_shape` decorator, kept so layer code written for it imports."""

import functools


def integerize_shape(build):
    """Decorate `build(self, input_shape)` so dimensions arrive as ints or None.

    TF1's `Dimension` objects needed unwrapping (`.value`); Keras 3 shapes are
    already ints or None, so this only unwraps such objects where they occur.

    Example:
    >>> class Layer:
    ...     @integerize_shape
    ...     def build(self, input_shape):
    ...         return input_shape
    >>> Layer().build([(None, 3), (2, 4)])
    [[None, 3], [2, 4]]
    """

    def convert(item):
        if isinstance(item, (list, tuple)):
            return [convert(i) for i in item]
        return getattr(item, "value", item)

    @functools.wraps(build)
    def wrapped(self, input_shape):
        return build(self, convert(input_shape))

    return wrapped
