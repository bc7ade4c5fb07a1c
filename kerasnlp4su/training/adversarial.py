"""Adversarial training (FGM) and gradient penalty on the token embeddings.

Both replace the `train_step` of *one* model instance (an attribute on that
object; the class and Keras stay untouched), so they work with `compile()` +
`fit()`, `jit_compile=True` and any optimizer. The step is written per
backend (TensorFlow, JAX, PyTorch) as in Keras's custom-training guides.
See https://kexue.fm/archives/7234 for both tricks.
"""

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


def _install(model, builder, embedding_name, **options):
    variable, index = _embedding_variable(model, embedding_name)
    return _steps.bind_train_step(model, builder, variable, index, **options)


def adversarial_training(model, embedding_name="Embedding-Token", epsilon=1.0,
                         include_clean_loss=True):
    """Train `model` with FGM adversarial perturbations of its embedding matrix.

    Each step computes the gradient `g` of the loss w.r.t. the embedding
    matrix, adds `epsilon * g / ||g||` to the matrix, recomputes the loss
    and its gradients, then restores the matrix. The update uses
    `grad(clean) + grad(adversarial)` (the usual FGM); with
    `include_clean_loss=False` it uses the adversarial gradient alone, which
    is what bert4keras's `adversarial_training` did. Returns `model`; call
    after `compile()` or before, either works. `remove_training_tricks`
    undoes it. Costs about two forward and backward passes per step.

    Example:
    >>> model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")  # doctest: +SKIP
    >>> adversarial_training(model, "Embedding-Token", 0.5)  # doctest: +SKIP
    >>> model.fit(x, y)  # doctest: +SKIP
    """
    return _install(model, "fgm", embedding_name, epsilon=float(epsilon),
                    include_clean_loss=bool(include_clean_loss))


def gradient_penalty(model, embedding_name="Embedding-Token", epsilon=1.0):
    """Train on `loss + 0.5 * epsilon * ||d loss / d embeddings||^2`.

    The penalty on the gradient w.r.t. the embedding matrix is Su Jianlin's
    cheap stand-in for adversarial training (one forward pass, a double
    backward). The gradient is the dense one, so repeated tokens in a batch
    count once per row; bert4keras summed the squares of the sparse slices.
    Returns `model`.

    Example:
    >>> gradient_penalty(model, "Embedding-Token", epsilon=1.0)  # doctest: +SKIP
    >>> model.fit(x, y)  # doctest: +SKIP
    """
    return _install(model, "gp", embedding_name, epsilon=float(epsilon))


def remove_training_tricks(model):
    """Give `model` back its class's own `train_step`.

    Example:
    >>> remove_training_tricks(model).fit(x, y)  # doctest: +SKIP
    """
    if "train_step" in vars(model):
        del model.train_step
        model.train_function = None
    return model
