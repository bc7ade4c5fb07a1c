"""Learning-rate schedules in Keras's own schedule machinery."""

import keras

from kerasnlp4su.backend import piecewise_linear


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class PiecewiseLinearSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate * piecewise_linear(step, schedule)`: bert4keras's warmup-then-decay.

    `schedule` maps step -> multiplier. Before the first knot the multiplier
    ramps linearly from 0 (warmup); between knots it is interpolated; after
    the last knot it stays constant. `{1000: 1, 2000: 0.1}` warms up over
    1000 steps, decays to 10% by step 2000 and stays there.
    `learning_rate` may itself be a schedule; the two are multiplied.

    Example:
    >>> lr = PiecewiseLinearSchedule(1e-3, {1000: 1, 2000: 0.1})
    >>> round(float(lr(500)), 7), round(float(lr(3000)), 7)
    (0.0005, 0.0001)
    >>> opt = keras.optimizers.Adam(learning_rate=lr)
    """

    def __init__(self, learning_rate, schedule):
        self.learning_rate = learning_rate
        self.schedule = {int(k): float(v) for k, v in schedule.items()}

    def __call__(self, step):
        lr = self.learning_rate
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
            lr = lr(step)
        return lr * piecewise_linear(step, self.schedule)

    def get_config(self):
        lr = self.learning_rate
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
            lr = keras.saving.serialize_keras_object(lr)
        return {"learning_rate": lr, "schedule": self.schedule}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["learning_rate"], dict):
            config["learning_rate"] = keras.saving.deserialize_keras_object(config["learning_rate"])
        return cls(**config)
