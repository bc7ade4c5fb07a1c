"""bert4keras's hand-made multi-GPU layers, kept importable: Keras 3 distributes for you."""

import keras

_MESSAGE = (
    "{name}: bert4keras split batches by hand for data parallelism (Keras 2). In Keras 3 use "
    "keras.distribution (JAX: keras.distribution.set_distribution(keras.distribution.DataParallel())) "
    "or tf.distribute.MirroredStrategy on TensorFlow, and build the model without {name}; "
    "see README 'Backends and multi-device training'."
)


class BatchSplit(keras.layers.Layer):
    """Placeholder for bert4keras's `BatchSplit`: raises, naming `keras.distribution`."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(_MESSAGE.format(name="BatchSplit"))


class BatchConcat(keras.layers.Layer):
    """Placeholder for bert4keras's `BatchConcat`: raises, naming `keras.distribution`."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(_MESSAGE.format(name="BatchConcat"))
