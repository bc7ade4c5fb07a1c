"""The optimizer update as one XLA program inside an uncompiled TensorFlow train step.

Keras's TensorFlow optimizers update each weight with a handful of separate
ops (Adam: about ten per weight), each a pass over memory. In a BERT-base
train step that is some 2,000 small kernels and ~0.35 s of a ~2.2 s step on
2 CPU cores. `model.compile(jit_compile=True)` fuses them, but it also hands
the matmuls to XLA, which runs them slower than TensorFlow's oneDNN kernels
here. Compiling only the update keeps oneDNN for the forward and backward
passes and fuses the update: see `benchmarks/bench_peers.py`.
"""

import keras

from kerasnlp4su.optimizers._common import densify, optimizer_extension


class _Programs:
    """Compiled updates per trained-variable list (kept out of TensorFlow's tracking)."""

    def __init__(self):
        self.by_variables = {}
        self.traces = 0  # how often an update was traced (and so compiled)


@optimizer_extension("WithCompiledUpdate")
def extend_with_compiled_update(base):
    """A subclass of `base` whose `apply` runs as one XLA-compiled function on TensorFlow.

    The update itself is `base`'s, unchanged (gradient accumulation, weight
    decay, clipping, EMA and schedules included); only its execution is
    fused, so results match the uncompiled optimizer to float rounding.
    Embedding gradients (`IndexedSlices`) are made dense first, so batches
    of different lengths share one compiled program. On JAX (whose train
    step Keras already compiles) and PyTorch, and under a non-default
    `tf.distribute` strategy, the class behaves exactly like `base`.

    Example:
    >>> FastAdamW = extend_with_compiled_update(keras.optimizers.AdamW)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer=FastAdamW(learning_rate=2e-5), loss="mse")
    >>> _ = model.train_on_batch(np.ones((3, 4)), np.zeros((3, 2)))
    """

    class CompiledUpdate(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._programs = _Programs()

        def _compiles(self):
            if keras.backend.backend() != "tensorflow":
                return False
            import tensorflow as tf

            # Inside a strategy's scope the update goes through merge_call,
            # which an XLA function cannot contain.
            return not tf.distribute.has_strategy()

        def apply(self, grads, trainable_variables=None):
            grads = list(grads)
            if not grads or not self._compiles():
                return super().apply(grads, trainable_variables)
            if trainable_variables is None:
                if not self.built:
                    raise ValueError("apply() without trainable_variables needs a built "
                                     "optimizer: call optimizer.build(variables) first")
                variables = list(self._trainable_variables)
            else:
                variables = list(trainable_variables)
                if not self.built:
                    self.build(variables)
            if len(grads) != len(variables):
                raise ValueError(f"got {len(grads)} gradients for {len(variables)} variables")
            return self._program(variables)([densify(g) for g in grads])

        def _program(self, variables):
            key = tuple(id(v) for v in variables)
            program = self._programs.by_variables.get(key)
            if program is None:
                import tensorflow as tf

                parent = super()

                def update(grads):
                    self._programs.traces += 1
                    parent.apply(grads, variables)

                program = tf.function(update, jit_compile=True, autograph=False)
                self._programs.by_variables[key] = program
            return program

    return CompiledUpdate
