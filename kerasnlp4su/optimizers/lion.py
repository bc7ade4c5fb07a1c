"""Lion with bert4keras's defaults, reusing Keras's implementation."""

import keras


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class Lion(keras.optimizers.Lion):
    """`keras.optimizers.Lion` with bert4keras 0.11.5's defaults.

    Keras's update is exactly bert4keras's `Lion` (the sign of
    `beta_1 * m + (1 - beta_1) * g` as the step, then
    `m <- beta_2 * m + (1 - beta_2) * g`), so this class only changes the
    defaults to bert4keras's `learning_rate=3e-4, beta_1=0.95, beta_2=0.98`
    (the paper uses 1e-4, 0.9, 0.99). `weight_decay` is Keras's decoupled
    decay, `w <- w - lr * weight_decay * w`, i.e. the paper's
    `w <- w - lr * (sign(...) + weight_decay * w)`; bert4keras had none
    built in. To exclude weights from decay by path pattern, use
    `extend_with_weight_decay(Lion)` instead.

    On embedding tables every coordinate moves by `learning_rate` whatever
    the row's norm, and a row absent from the batch keeps moving with the
    sign of its decaying momentum; `Tiger` scales each embedding row's step
    by its RMS instead (the fix of the Tiger post).

    Example:
    >>> opt = Lion(weight_decay=0.01)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer=opt, loss="mse")
    """

    def __init__(self, learning_rate=3e-4, beta_1=0.95, beta_2=0.98, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, **kwargs)
