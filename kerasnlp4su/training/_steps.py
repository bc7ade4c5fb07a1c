"""Per-backend train steps for FGM, gradient penalty and R-Drop.

Each builder takes the embedding variable, its index in
`model.trainable_weights` and the options, and returns a function to bind
as the model's `train_step`. They follow Keras's own train steps (forward,
`compute_loss`, optimizer loss scaling, `optimizer.apply`, metrics) so
compiled losses, metrics and loss-scale optimizers behave as usual.
"""

import types

import keras
from keras import ops

from kerasnlp4su.backend import densify


def _fgm_delta(gradient, epsilon):
    gradient = ops.convert_to_tensor(densify(gradient))
    norm = ops.sqrt(ops.sum(ops.square(gradient)))
    delta = epsilon * gradient / (norm + 1e-8)
    # An overflowing (loss-scaled) gradient must not write inf/NaN into the
    # embeddings; the loss-scale optimizer skips such a step anyway.
    return ops.where(ops.isfinite(norm), delta, ops.zeros_like(delta))


def _batch_size(x):
    return ops.shape(next(i for i in keras.tree.flatten(x) if i is not None))[0]


def _record_metrics(model, loss, x, y, y_pred, sample_weight):
    for metric in model.metrics:
        if metric.name == "loss":
            metric.update_state(loss, sample_weight=_batch_size(x))
    return model.compute_metrics(x, y, y_pred, sample_weight)


def _loss(model, x, y, sample_weight):
    y_pred = model(x, training=True)
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                              training=True)
    return loss, y_pred


def _twice(tree):
    """Each input (target, sample weight) stacked on itself: `[x; x]` along the batch."""
    return keras.tree.map_structure(
        lambda t: None if t is None else ops.concatenate([t, t], axis=0), tree)


def _first_half(y_pred):
    return y_pred[: ops.shape(y_pred)[0] // 2]


# --------------------------------------------------------------------- TensorFlow


def _tf_add(a, b):
    import tensorflow as tf

    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        # Concatenated slices sum on apply; no dense vocabulary-sized tensor.
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0),
                                tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return densify(a) + densify(b)


def _tf_fgm(variable, index, epsilon, include_clean_loss):
    import tensorflow as tf

    def grads_of(model, x, y, sample_weight):
        with tf.GradientTape() as tape:
            loss, y_pred = _loss(model, x, y, sample_weight)
            scaled = model.optimizer.scale_loss(loss)
        return loss, y_pred, tape.gradient(scaled, model.trainable_weights)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, y_pred, grads = grads_of(self, x, y, sample_weight)
        # Restore from a copy: (E + delta) - delta is not E in floating point.
        saved = tf.identity(variable.value)
        variable.assign_add(_fgm_delta(grads[index], epsilon))
        _, _, adv_grads = grads_of(self, x, y, sample_weight)
        variable.assign(saved)
        if include_clean_loss:
            adv_grads = [_tf_add(g, a) for g, a in zip(grads, adv_grads)]
        self.optimizer.apply(adv_grads, self.trainable_weights)
        return _record_metrics(self, loss, x, y, y_pred, sample_weight)

    return train_step


def _tf_gp(variable, index, epsilon):
    import tensorflow as tf

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss, y_pred = _loss(self, x, y, sample_weight)
            gradient = densify(inner.gradient(loss, variable))
            loss = loss + 0.5 * epsilon * tf.reduce_sum(tf.square(gradient))
            scaled = self.optimizer.scale_loss(loss)
        grads = outer.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return _record_metrics(self, loss, x, y, y_pred, sample_weight)

    return train_step


def _tf_rdrop(penalty):
    import tensorflow as tf

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            # One forward pass over [x; x]: the two copies get independent dropout masks.
            loss, y_pred = _loss(self, _twice(x), _twice(y), _twice(sample_weight))
            loss = loss + penalty(y_pred)
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return _record_metrics(self, loss, x, y, _first_half(y_pred), sample_weight)

    return train_step


# --------------------------------------------------------------------- JAX


def _jax_metrics(model, metrics_variables, loss, x, y, y_pred, sample_weight):
    mapping = list(zip(model.metrics_variables, metrics_variables))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = _record_metrics(model, loss, x, y, y_pred, sample_weight)
    updated = []
    for ref in model.metrics_variables:
        value = scope.get_current_value(ref)
        updated.append(ref.value if value is None else value)
    return logs, updated


def _jax_fgm(variable, index, epsilon, include_clean_loss):
    import jax

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        grad_fn = jax.value_and_grad(self.compute_loss_and_updates, has_aux=True)
        (_, aux), grads = grad_fn(trainable, non_trainable, metrics_vars, x, y, sample_weight,
                                  training=True, optimizer_variables=optimizer_vars)
        loss, y_pred, non_trainable, metrics_vars = aux
        # Stateless: the perturbed copy needs no restore.
        perturbed = list(trainable)
        perturbed[index] = trainable[index] + _fgm_delta(grads[index], epsilon)
        (_, adv_aux), adv_grads = grad_fn(perturbed, non_trainable, metrics_vars, x, y,
                                          sample_weight, training=True,
                                          optimizer_variables=optimizer_vars)
        _, _, non_trainable, metrics_vars = adv_aux
        if include_clean_loss:
            adv_grads = [g + a for g, a in zip(grads, adv_grads)]
        trainable, optimizer_vars = self.optimizer.stateless_apply(
            optimizer_vars, adv_grads, trainable)
        logs, metrics_vars = _jax_metrics(self, metrics_vars, loss, x, y, y_pred, sample_weight)
        return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)

    return train_step


def _jax_gp(variable, index, epsilon):
    import jax

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)

        def objective(trainable):
            def clean(embeddings):
                params = list(trainable)
                params[index] = embeddings
                _, aux = self.compute_loss_and_updates(
                    params, non_trainable, metrics_vars, x, y, sample_weight, training=True,
                    optimizer_variables=optimizer_vars)
                return aux[0], aux

            (loss, aux), gradient = jax.value_and_grad(clean, has_aux=True)(trainable[index])
            loss = loss + 0.5 * epsilon * ops.sum(ops.square(gradient))
            mapping = list(zip(self.optimizer.variables, optimizer_vars))
            with keras.StatelessScope(state_mapping=mapping):
                scaled = self.optimizer.scale_loss(loss)
            return scaled, (loss, aux)

        (_, (loss, aux)), grads = jax.value_and_grad(objective, has_aux=True)(trainable)
        _, y_pred, non_trainable, metrics_vars = aux
        trainable, optimizer_vars = self.optimizer.stateless_apply(
            optimizer_vars, grads, trainable)
        logs, metrics_vars = _jax_metrics(self, metrics_vars, loss, x, y, y_pred, sample_weight)
        return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)

    return train_step


def _jax_rdrop(penalty):
    import jax

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)

        def objective(trainable):
            _, aux = self.compute_loss_and_updates(
                trainable, non_trainable, metrics_vars, _twice(x), _twice(y),
                _twice(sample_weight), training=True, optimizer_variables=optimizer_vars)
            loss = aux[0] + penalty(aux[1])
            mapping = list(zip(self.optimizer.variables, optimizer_vars))
            with keras.StatelessScope(state_mapping=mapping):
                scaled = self.optimizer.scale_loss(loss)
            return scaled, (loss, aux)

        (_, (loss, aux)), grads = jax.value_and_grad(objective, has_aux=True)(trainable)
        _, y_pred, non_trainable, metrics_vars = aux
        trainable, optimizer_vars = self.optimizer.stateless_apply(
            optimizer_vars, grads, trainable)
        logs, metrics_vars = _jax_metrics(self, metrics_vars, loss, x, y, _first_half(y_pred),
                                          sample_weight)
        return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)

    return train_step


# --------------------------------------------------------------------- PyTorch


def _torch_grads(model, loss, create_graph=False):
    import torch

    params = [v.value for v in model.trainable_weights]
    return list(torch.autograd.grad(loss, params, allow_unused=True, create_graph=create_graph))


def _torch_fgm(variable, index, epsilon, include_clean_loss):
    import torch

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, y_pred = _loss(self, x, y, sample_weight)
        grads = _torch_grads(self, self.optimizer.scale_loss(loss))
        with torch.no_grad():
            saved = variable.value.detach().clone()
            variable.assign_add(_fgm_delta(grads[index], epsilon))
        adv_loss, _ = _loss(self, x, y, sample_weight)
        adv_grads = _torch_grads(self, self.optimizer.scale_loss(adv_loss))
        with torch.no_grad():
            variable.assign(saved)
            if include_clean_loss:
                adv_grads = [a if g is None else (g if a is None else g + a)
                             for g, a in zip(grads, adv_grads)]
            self.optimizer.apply(adv_grads, self.trainable_weights)
        return _record_metrics(self, loss, x, y, y_pred, sample_weight)

    return train_step


def _torch_gp(variable, index, epsilon):
    import torch

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, y_pred = _loss(self, x, y, sample_weight)
        (gradient,) = torch.autograd.grad(loss, [variable.value], create_graph=True)
        loss = loss + 0.5 * epsilon * torch.sum(gradient * gradient)
        grads = _torch_grads(self, self.optimizer.scale_loss(loss))
        with torch.no_grad():
            self.optimizer.apply(grads, self.trainable_weights)
        return _record_metrics(self, loss, x, y, y_pred, sample_weight)

    # torch.compile (jit_compile=True) cannot differentiate twice; run this
    # step eagerly inside the compiled function instead of failing.
    return torch.compiler.disable(train_step)


def _torch_rdrop(penalty):
    import torch

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, y_pred = _loss(self, _twice(x), _twice(y), _twice(sample_weight))
        loss = loss + penalty(y_pred)
        grads = _torch_grads(self, self.optimizer.scale_loss(loss))
        with torch.no_grad():
            self.optimizer.apply(grads, self.trainable_weights)
        return _record_metrics(self, loss, x, y, _first_half(y_pred), sample_weight)

    return train_step


BUILDERS = {
    "tensorflow": {"fgm": _tf_fgm, "gp": _tf_gp, "rdrop": _tf_rdrop},
    "jax": {"fgm": _jax_fgm, "gp": _jax_gp, "rdrop": _jax_rdrop},
    "torch": {"fgm": _torch_fgm, "gp": _torch_gp, "rdrop": _torch_rdrop},
}


def bind_train_step(model, builder, *args, **options):
    """Give this one `model` object the `builder` step of the current backend; returns `model`."""
    backend = keras.backend.backend()
    if backend not in BUILDERS:
        raise NotImplementedError(f"no {builder!r} train step for backend {backend!r}")
    step = BUILDERS[backend][builder](*args, **options)
    model.train_step = types.MethodType(step, model)
    # fit() reuses a compiled train function; force a rebuild around the new step.
    model.train_function = None
    return model
