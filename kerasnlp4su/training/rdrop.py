"""R-Drop: two dropout passes per example, their symmetric KL added to the task loss.

Su Jianlin's "又是Dropout两次！这次它做到了有监督任务的SOTA"
(https://kexue.fm/archives/8496) and Liang et al. 2021. Each batch runs once through the model as `[x; x]`,
so the two copies of every example see independent dropout masks; the loss
is the compiled task loss over both copies plus
`alpha / 4 * mean(KL(p1 || p2) + KL(p2 || p1))`, which is half the paper's
`CE1 + CE2 + alpha / 2 * (KL12 + KL21)` (the same optimum, Su Jianlin's
normalisation in his bert4keras example).
"""

from keras import ops

from kerasnlp4su.training import _steps


def symmetric_kl(p, q, from_logits=False, epsilon=1e-7):
    """`KL(p || q) + KL(q || p)` over the last axis, per example.

    `p`, `q`: probabilities (or logits with `from_logits=True`) of the same
    shape; the result drops the last axis.

    Example:
    >>> float(symmetric_kl(keras.ops.array([[0.5, 0.5]]), keras.ops.array([[0.9, 0.1]]))[0])
    0.8788...
    """
    if from_logits:
        log_p, log_q = ops.log_softmax(p, axis=-1), ops.log_softmax(q, axis=-1)
        p, q = ops.exp(log_p), ops.exp(log_q)
    else:
        p = ops.clip(p, epsilon, 1.0)
        q = ops.clip(q, epsilon, 1.0)
        log_p, log_q = ops.log(p), ops.log(q)
    return ops.sum((p - q) * (log_p - log_q), axis=-1)


def rdrop_penalty(y_pred, alpha, from_logits=False):
    """The R-Drop term for a prediction over `[x; x]`: `alpha / 4 * mean(symmetric KL of the halves)`.

    Example:
    >>> y = keras.ops.array([[0.5, 0.5], [0.9, 0.1]])  # one example, two passes
    >>> round(float(rdrop_penalty(y, alpha=4.0)), 4)
    0.8789
    """
    half = ops.shape(y_pred)[0] // 2
    return alpha / 4.0 * ops.mean(symmetric_kl(y_pred[:half], y_pred[half:], from_logits))


def rdrop_training(model, alpha=4.0, from_logits=False):
    """Train `model` with R-Drop: each step runs `[x; x]` and adds the symmetric KL of the two copies.

    The model must have one output of class probabilities (or logits with
    `from_logits=True`) on its last axis and dropout that is active in
    training. The compiled loss (and any sample weights) applies to both
    copies; metrics and the logged predictions use the first copy. A step
    costs one forward and backward pass over twice the batch. Works with
    `compile()` + `fit()`, `jit_compile` and any optimizer, on every
    backend; `remove_training_tricks` undoes it. Returns `model`.

    Example:
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # doctest: +SKIP
    >>> rdrop_training(model, alpha=4.0)  # doctest: +SKIP
    >>> model.fit(x, y)  # doctest: +SKIP
    """
    if len(model.outputs or [None]) != 1:
        raise ValueError(f"rdrop_training: the model must have one output, it has "
                         f"{len(model.outputs)}")
    alpha, from_logits = float(alpha), bool(from_logits)

    def penalty(y_pred):
        return rdrop_penalty(y_pred, alpha, from_logits)

    return _steps.bind_train_step(model, "rdrop", penalty)
