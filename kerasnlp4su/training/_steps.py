"""Per-backend train steps for FGM, gradient penalty, virtual adversarial training and R-Drop.

Each builder takes its options (the perturbed variable, its index in
`model.trainable_weights`, a penalty function...) and returns a function to
bind as the model's `train_step`. They follow Keras's own train steps
(forward, `compute_loss`, optimizer loss scaling, `optimizer.apply`,
metrics) so compiled losses, metrics and loss-scale optimizers behave as
usual. The steps share their forward/apply/metrics plumbing per backend
(`_tf_descend`, `_jax_descend`, `_torch_descend`); each trick adds only its
own part (a perturbation, a penalty, a doubled batch).
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


def _unit(vector):
    """`vector / (||vector|| + 1e-8)` over every entry (bert4keras's VAT normalisation)."""
    vector = ops.convert_to_tensor(densify(vector))
    return vector / (ops.sqrt(ops.sum(ops.square(vector))) + 1e-8)


def vat_noise(shape, dtype, seed, step):
    """VAT's starting direction: standard normal noise, a pure function of `(seed, step)`.

    Stateless on every backend (no generator state to carry through JAX's
    train step), and fresh at each optimizer step. Tests draw it too.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        seeds = tf.stack([tf.constant(seed, "int64"), tf.cast(step, "int64")])
        return tf.random.stateless_normal(shape, seed=seeds, dtype=dtype)
    if backend == "jax":
        import jax

        key = jax.random.fold_in(jax.random.PRNGKey(seed), step)
        return jax.random.normal(key, shape, dtype)
    import torch

    from keras.src.backend.torch.core import get_device

    generator = torch.Generator(device=get_device()).manual_seed(seed * 1_000_003 + int(step))
    return torch.randn(tuple(shape), generator=generator, device=get_device(),
                       dtype=getattr(torch, dtype))


def _step_counter(model, optimizer_vars=None):
    """The optimizer's step count (from the stateless `optimizer_vars` on JAX)."""
    iterations = model.optimizer.iterations
    if optimizer_vars is None:
        return iterations.value
    for value, ref in zip(optimizer_vars, model.optimizer.variables):
        if ref is iterations:
            return value
    return 0


def _batch_size(x):
    return ops.shape(next(i for i in keras.tree.flatten(x) if i is not None))[0]


def _record_metrics(model, loss, x, y, y_pred, sample_weight):
    for metric in model.metrics:
        if metric.name == "loss":
            metric.update_state(loss, sample_weight=_batch_size(x))
    return model.compute_metrics(x, y, y_pred, sample_weight)


def _loss(model, x, y, sample_weight, training=True):
    y_pred = model(x, training=training)
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                              training=training)
    return loss, y_pred


def _twice(tree):
    """Each input (target, sample weight) stacked on itself: `[x; x]` along the batch."""
    return keras.tree.map_structure(
        lambda t: None if t is None else ops.concatenate([t, t], axis=0), tree)


def _first_half(y_pred):
    return y_pred[: ops.shape(y_pred)[0] // 2]


def _rdrop_loss(model, x, y, sample_weight, penalty):
    """R-Drop's loss on TF/PyTorch: one pass over `[x; x]` (independent dropout masks) plus the penalty."""
    loss, y_pred = _loss(model, _twice(x), _twice(y), _twice(sample_weight))
    return loss + penalty(y_pred), _first_half(y_pred)


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


def _tf_descend(model, loss_fn, restore=None):
    """Run `loss_fn()` -> `(loss, y_pred)` under a tape, apply its gradients; returns `(loss, y_pred)`.

    `restore()` runs between the gradient and the update (FGM/VAT put the
    clean embeddings back there).
    """
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss, y_pred = loss_fn()
        scaled = model.optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, model.trainable_weights)
    if restore is not None:
        restore()
    model.optimizer.apply(grads, model.trainable_weights)
    return loss, y_pred


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


def _tf_gp(indices, epsilon):
    import tensorflow as tf

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)

        def penalised():
            with tf.GradientTape() as inner:
                loss, y_pred = _loss(self, x, y, sample_weight)
            penalised_weights = [self.trainable_weights[i] for i in indices]
            grads = inner.gradient(loss, penalised_weights)
            penalty = sum(tf.reduce_sum(tf.square(densify(g))) for g in grads if g is not None)
            return loss + 0.5 * epsilon * penalty, y_pred

        loss, y_pred = _tf_descend(self, penalised)
        return _record_metrics(self, loss, x, y, y_pred, sample_weight)

    return train_step


def _tf_vat(variable, index, epsilon, xi, iters, seed):
    import tensorflow as tf

    del index

    def train_step(self, data):
        x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        target = tf.stop_gradient(self(x, training=False))
        saved = tf.identity(variable.value)
        direction = vat_noise(variable.shape, variable.dtype, seed, _step_counter(self))
        for _ in range(iters):  # power iteration, inference mode as in bert4keras
            variable.assign(saved + xi * _unit(direction))
            with tf.GradientTape() as tape:
                divergence, _ = _loss(self, x, target, sample_weight, training=False)
            direction = tape.gradient(divergence, variable)
        variable.assign(saved + epsilon * _unit(direction))
        loss, y_pred = _tf_descend(self, lambda: _loss(self, x, target, sample_weight),
                                   restore=lambda: variable.assign(saved))
        return _record_metrics(self, loss, x, target, y_pred, sample_weight)

    return train_step


def _tf_rdrop(penalty):
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, y_pred = _tf_descend(self, lambda: _rdrop_loss(self, x, y, sample_weight, penalty))
        return _record_metrics(self, loss, x, y, y_pred, sample_weight)

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


def _jax_loss_fn(model, state, x, y, sample_weight, training=True):
    """`trainable -> (scaled loss, (loss, y_pred, non_trainable, metrics))`, Keras's own stateless loss."""
    _, non_trainable, optimizer_vars, metrics_vars = state

    def loss_of(trainable):
        return model.compute_loss_and_updates(trainable, non_trainable, metrics_vars, x, y,
                                              sample_weight, training=training,
                                              optimizer_variables=optimizer_vars)

    return loss_of


def _jax_apply(model, state, grads, loss, y_pred, non_trainable, metrics_vars, x, y,
               sample_weight):
    """Apply `grads` to the state's weights and record the metrics; returns `(logs, new state)`."""
    weights, _, optimizer_vars, _ = state
    weights, optimizer_vars = model.optimizer.stateless_apply(optimizer_vars, grads, weights)
    logs, metrics_vars = _jax_metrics(model, metrics_vars, loss, x, y, y_pred, sample_weight)
    return logs, (weights, non_trainable, optimizer_vars, metrics_vars)


def _jax_descend(model, state, objective, x, y, sample_weight, trainable=None):
    """Differentiate `objective(trainable) -> (loss, (y_pred, non_trainable, metrics))` and apply it.

    `trainable` (default: the state's) is where the gradient is taken; the
    update always starts from the state's own weights, so a perturbed copy
    needs no restore. Returns `(logs, new state)`.
    """
    import jax

    optimizer_vars = state[2]

    def scaled(params):
        loss, aux = objective(params)
        mapping = list(zip(model.optimizer.variables, optimizer_vars))
        with keras.StatelessScope(state_mapping=mapping):
            return model.optimizer.scale_loss(loss), (loss, aux)

    at = state[0] if trainable is None else trainable
    (_, (loss, aux)), grads = jax.value_and_grad(scaled, has_aux=True)(at)
    return _jax_apply(model, state, grads, loss, *aux, x, y, sample_weight)


def _replace(items, index, value):
    items = list(items)
    items[index] = value
    return items


def _plain_objective(loss_of):
    """`loss_of`'s unscaled loss and `(y_pred, non_trainable, metrics)`, for `_jax_descend`."""

    def objective(params):
        _, (loss, y_pred, non_trainable, metrics_vars) = loss_of(params)
        return loss, (y_pred, non_trainable, metrics_vars)

    return objective


def _jax_fgm(variable, index, epsilon, include_clean_loss):
    import jax

    del variable

    def train_step(self, state, data):
        trainable = state[0]
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        grad_fn = jax.value_and_grad(_jax_loss_fn(self, state, x, y, sample_weight), has_aux=True)
        (_, (loss, y_pred, non_trainable, metrics_vars)), grads = grad_fn(trainable)
        # Stateless: the perturbed copy needs no restore.
        perturbed = _replace(trainable, index,
                             trainable[index] + _fgm_delta(grads[index], epsilon))
        _, adv_grads = grad_fn(perturbed)
        if include_clean_loss:
            adv_grads = [g + a for g, a in zip(grads, adv_grads)]
        return _jax_apply(self, state, adv_grads, loss, y_pred, non_trainable, metrics_vars,
                          x, y, sample_weight)

    return train_step


def _jax_gp(indices, epsilon):
    import jax

    def train_step(self, state, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss_of = _jax_loss_fn(self, state, x, y, sample_weight)

        def objective(trainable):
            def clean(selected):
                params = list(trainable)
                for i, value in zip(indices, selected):
                    params[i] = value
                _, aux = loss_of(params)
                return aux[0], aux

            (loss, aux), grads = jax.value_and_grad(clean, has_aux=True)(
                [trainable[i] for i in indices])
            penalty = sum(ops.sum(ops.square(g)) for g in grads)
            return loss + 0.5 * epsilon * penalty, aux[1:]

        return _jax_descend(self, state, objective, x, y, sample_weight)

    return train_step


def _jax_vat(variable, index, epsilon, xi, iters, seed):
    import jax

    del variable

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_vars, _ = state
        x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        kwargs = {"training": False} if self._call_has_training_arg else {}
        target, _ = self.stateless_call(trainable, non_trainable, x, **kwargs)
        target = jax.lax.stop_gradient(target)
        inference = _jax_loss_fn(self, state, x, target, sample_weight, training=False)
        embeddings = trainable[index]
        direction = vat_noise(embeddings.shape, embeddings.dtype, seed,
                              _step_counter(self, optimizer_vars))
        for _ in range(iters):
            direction = jax.grad(lambda e: inference(_replace(trainable, index, e))[0])(
                embeddings + xi * _unit(direction))
        perturbed = _replace(trainable, index, embeddings + epsilon * _unit(direction))
        objective = _plain_objective(_jax_loss_fn(self, state, x, target, sample_weight))
        return _jax_descend(self, state, objective, x, target, sample_weight, trainable=perturbed)

    return train_step


def _jax_rdrop(penalty):
    def train_step(self, state, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss_of = _jax_loss_fn(self, state, _twice(x), _twice(y), _twice(sample_weight))

        def objective(trainable):
            _, (loss, y_pred, non_trainable, metrics_vars) = loss_of(trainable)
            return loss + penalty(y_pred), (_first_half(y_pred), non_trainable, metrics_vars)

        return _jax_descend(self, state, objective, x, y, sample_weight)

    return train_step


# --------------------------------------------------------------------- PyTorch


def _torch_grads(model, loss, create_graph=False):
    import torch

    params = [v.value for v in model.trainable_weights]
    return list(torch.autograd.grad(loss, params, allow_unused=True, create_graph=create_graph))


def _torch_descend(model, loss_fn, restore=None):
    """`loss_fn()` -> `(loss, y_pred)`, its gradients applied; `restore()` runs before the update."""
    import torch

    loss, y_pred = loss_fn()
    grads = _torch_grads(model, model.optimizer.scale_loss(loss))
    with torch.no_grad():
        if restore is not None:
            restore()
        model.optimizer.apply(grads, model.trainable_weights)
    return loss, y_pred


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


def _torch_gp(indices, epsilon):
    import torch

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)

        def penalised():
            loss, y_pred = _loss(self, x, y, sample_weight)
            weights = [self.trainable_weights[i].value for i in indices]
            grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
            penalty = sum(torch.sum(g * g) for g in grads if g is not None)
            return loss + 0.5 * epsilon * penalty, y_pred

        loss, y_pred = _torch_descend(self, penalised)
        return _record_metrics(self, loss, x, y, y_pred, sample_weight)

    # torch.compile (jit_compile=True) cannot differentiate twice; run this
    # step eagerly inside the compiled function instead of failing.
    return torch.compiler.disable(train_step)


def _torch_vat(variable, index, epsilon, xi, iters, seed):
    import torch

    del index

    def train_step(self, data):
        x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with torch.no_grad():
            target = self(x, training=False)
            saved = variable.value.detach().clone()
        direction = vat_noise(variable.shape, variable.dtype, seed, _step_counter(self))
        for _ in range(iters):  # power iteration, inference mode as in bert4keras
            with torch.no_grad():
                variable.assign(saved + xi * _unit(direction))
            divergence, _ = _loss(self, x, target, sample_weight, training=False)
            (direction,) = torch.autograd.grad(divergence, [variable.value])
        with torch.no_grad():
            variable.assign(saved + epsilon * _unit(direction))
        loss, y_pred = _torch_descend(self, lambda: _loss(self, x, target, sample_weight),
                                      restore=lambda: variable.assign(saved))
        return _record_metrics(self, loss, x, target, y_pred, sample_weight)

    return train_step


def _torch_rdrop(penalty):
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, y_pred = _torch_descend(self, lambda: _rdrop_loss(self, x, y, sample_weight, penalty))
        return _record_metrics(self, loss, x, y, y_pred, sample_weight)

    return train_step


BUILDERS = {
    "tensorflow": {"fgm": _tf_fgm, "gp": _tf_gp, "vat": _tf_vat, "rdrop": _tf_rdrop},
    "jax": {"fgm": _jax_fgm, "gp": _jax_gp, "vat": _jax_vat, "rdrop": _jax_rdrop},
    "torch": {"fgm": _torch_fgm, "gp": _torch_gp, "vat": _torch_vat, "rdrop": _torch_rdrop},
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
