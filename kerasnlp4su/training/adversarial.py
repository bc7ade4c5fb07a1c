"""Adversarial training (FGM), gradient penalty and virtual adversarial training.

The importable forms of the helpers bert4keras's examples defined on Keras 2
internals (`task_iflytek_adversarial_training.py`,
`task_iflytek_gradient_penalty.py`,
`task_sentiment_virtual_adversarial_training.py`), with their calls.

Each replaces the `train_step` of *one* model instance (an attribute on that
object; the class and Keras stay untouched), so they work with `compile()` +
`fit()` / `train_on_batch()`, `jit_compile=True` and any optimizer. The step
is written per backend (TensorFlow, JAX, PyTorch) as in Keras's
custom-training guides (`_steps.py`).
"""

import numpy as np

from kerasnlp4su.training import _steps


def _embedding_variable(model, embedding_name):
    """The embedding matrix of layer `embedding_name` and its index in `trainable_weights`."""
    layer = model.get_layer(embedding_name)
    variable = getattr(layer, "embeddings", None)
    if variable is None:
        matrices = [w for w in layer.trainable_weights if len(w.shape) == 2]
        if len(matrices) != 1:
            raise ValueError(f"layer {embedding_name!r} has no single embedding matrix")
        variable = matrices[0]
    for index, weight in enumerate(model.trainable_weights):
        if weight is variable:
            return variable, index
    raise ValueError(f"the embeddings of {embedding_name!r} are not trainable")


def adversarial_training(model, embedding_name="Embedding-Token", epsilon=1.0,
                         include_clean_loss=True):
    """Train `model` with FGM adversarial perturbations of its embedding matrix.

    Each step computes the gradient `g` of the loss w.r.t. the embedding
    matrix, adds `epsilon * g / ||g||` to the matrix, recomputes the loss
    and its gradients, then restores the matrix. The update uses
    `grad(clean) + grad(adversarial)` (the usual FGM); with
    `include_clean_loss=False` it uses the adversarial gradient alone, which
    is what the `adversarial_training` of bert4keras's example
    `task_iflytek_adversarial_training.py` did (its train function ran on the
    perturbed embeddings only). The call is that example's:
    `adversarial_training(model, 'Embedding-Token', 0.5)` replaces its local
    function. Returns `model`; call after `compile()` or before, either
    works. `remove_training_tricks` undoes it. Costs about two forward and
    backward passes per step.

    Example:
    >>> model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")  # doctest: +SKIP
    >>> adversarial_training(model, "Embedding-Token", 0.5)  # doctest: +SKIP
    >>> model.fit(x, y)  # doctest: +SKIP
    """
    variable, index = _embedding_variable(model, embedding_name)
    return _steps.bind_train_step(model, "fgm", variable, index, epsilon=float(epsilon),
                                  include_clean_loss=bool(include_clean_loss))


def gradient_penalty(model, embedding_name="Embedding-Token", epsilon=1.0, wrt="embeddings"):
    """Train on `loss + 0.5 * epsilon * ||d loss / d w||^2`, `w` the embeddings or every weight.

    `wrt="embeddings"` (default) penalises the gradient w.r.t. the embedding
    matrix: the input-space penalty of Su Jianlin's "对抗训练浅谈：意义、方法和思考"
    (https://kexue.fm/archives/7234), a cheap stand-in for adversarial
    training (one forward pass, a double backward). It replaces the
    `loss_with_gradient_penalty` loss of bert4keras's example
    `task_iflytek_gradient_penalty.py`: compile with the plain loss, then
    call `gradient_penalty(model, 'Embedding-Token', 1)`. The gradient is
    the dense one, so repeated tokens in a batch count once per row;
    bert4keras summed the squares of the sparse slices, one per occurrence.

    `wrt="parameters"` penalises the gradient w.r.t. every trainable weight
    (`embedding_name` is then unused): the parameter-space penalty of "我们真的
    需要把训练集的损失降低到零吗？" (https://kexue.fm/archives/7643), which
    Flooding approximates and plain gradient descent adds implicitly with
    `epsilon = lr / 2` ("从动力学角度看优化算法（五）", https://kexue.fm/archives/7787);
    it favours flat minima. Returns `model`.

    Example:
    >>> gradient_penalty(model, "Embedding-Token", epsilon=1.0)  # doctest: +SKIP
    >>> gradient_penalty(model, epsilon=0.01, wrt="parameters")  # doctest: +SKIP
    >>> model.fit(x, y)  # doctest: +SKIP
    """
    if wrt == "embeddings":
        indices = [_embedding_variable(model, embedding_name)[1]]
    elif wrt == "parameters":
        indices = list(range(len(model.trainable_weights)))
        if not indices:
            raise ValueError("gradient_penalty(wrt='parameters'): the model has no trainable weights")
    else:
        raise ValueError(f"gradient_penalty: wrt={wrt!r}; use 'embeddings' or 'parameters'")
    return _steps.bind_train_step(model, "gp", indices, epsilon=float(epsilon))


def virtual_adversarial_training(model, embedding_name="Embedding-Token", epsilon=1.0, xi=10.0,
                                 iters=1, seed=None):
    """Train `model` with virtual adversarial training (VAT) on its embedding matrix.

    For unlabelled batches (the targets passed to `fit`/`train_on_batch` are
    ignored): the model's own inference-mode prediction `p(x)` becomes the
    target; a random direction `d` (normal, the shape of the embedding
    matrix) is refined by `iters` power iterations, `d <- grad of loss(p(x),
    model(x; E + xi * d/||d||))` w.r.t. the matrix; then the step trains on
    `loss(p(x), model(x; E + epsilon * d/||d||))` with dropout on, and the
    matrix is restored. The loss is the compiled one, so compile with
    `loss='kld'` as bert4keras's example does. Miyato et al. 2017; Su
    Jianlin's "泛化性乱弹：从随机噪声、梯度惩罚到虚拟对抗训练"
    (https://kexue.fm/archives/7466).

    It replaces the local `virtual_adversarial_training` of bert4keras's
    example `task_sentiment_virtual_adversarial_training.py` with the same
    call and defaults (`epsilon=1, xi=10, iters=1`): import it and keep
    `virtual_adversarial_training(model_vat, 'Embedding-Token')`. The noise
    comes from `seed` (default: drawn from NumPy's global generator, so
    `keras.utils.set_random_seed` fixes it). Returns `model`;
    `remove_training_tricks` undoes it.

    Example:
    >>> model_vat.compile(loss="kld", optimizer=Adam(1e-5))  # doctest: +SKIP
    >>> virtual_adversarial_training(model_vat, "Embedding-Token")  # doctest: +SKIP
    >>> model_vat.train_on_batch(unlabelled_x, dummy_y)  # doctest: +SKIP
    """
    if int(iters) < 1:
        raise ValueError(f"virtual_adversarial_training: iters={iters}; it must be at least 1")
    variable, index = _embedding_variable(model, embedding_name)
    if seed is None:
        seed = int(np.random.randint(0, 2 ** 31 - 1))
    return _steps.bind_train_step(model, "vat", variable, index, epsilon=float(epsilon),
                                  xi=float(xi), iters=int(iters), seed=int(seed))


def remove_training_tricks(model):
    """Give `model` back its class's own `train_step`.

    Example:
    >>> remove_training_tricks(model).fit(x, y)  # doctest: +SKIP
    """
    if "train_step" in vars(model):
        del model.train_step
        model.train_function = None
    return model
