"""bert4keras 0.11.5's remaining `models` names: the LM/UniLM mixins and class factories.

In bert4keras a model's attention mask came from a mixin (`LM_Mask`,
`UniLM_Mask`) placed before the model class; here a `Transformer` takes
`application='lm' | 'unilm'` and builds the mask as a layer. The mixins
and factories below keep bert4keras's spelling and set that argument, so
`extend_with_language_model(BERT)(...)` is a real subclass of `BERT`
whose application is `'lm'`.
"""

__all__ = ["LM_Mask", "UniLM_Mask", "data_parallel", "extend_with_language_model",
           "extend_with_unified_language_model"]


class _ApplicationMask:
    """Mixin: the application this mask stands for, unless the caller chose another."""

    application_of_mask = "encoder"

    def __init__(self, *args, **kwargs):
        if kwargs.get("application", "encoder") == "encoder":
            kwargs["application"] = self.application_of_mask
        super().__init__(*args, **kwargs)


class LM_Mask(_ApplicationMask):  # noqa: N801 - bert4keras's name
    """Mixin for a causal (lower-triangular) attention mask: `application='lm'`.

    Example:
    >>> from kerasnlp4su.models import BERT
    >>> class MyLM(LM_Mask, BERT):
    ...     pass
    >>> MyLM(vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...      intermediate_size=16).application
    'lm'
    """

    application_of_mask = "lm"


class UniLM_Mask(_ApplicationMask):  # noqa: N801 - bert4keras's name
    """Mixin for UniLM's seq2seq mask from segment ids: `application='unilm'`.

    Segment 0 (the source) sees itself; segment 1 (the target) sees the
    source and its own past (https://arxiv.org/abs/1905.03197).

    Example:
    >>> from kerasnlp4su.models import BERT
    >>> class MySeq2Seq(UniLM_Mask, BERT):
    ...     pass
    >>> MySeq2Seq(vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...           intermediate_size=16).application
    'unilm'
    """

    application_of_mask = "unilm"


def extend_with_language_model(BaseModel):  # noqa: N803 - bert4keras's signature
    """A subclass of `BaseModel` with the LM mask and the MLM head on (bert4keras's factory).

    Example:
    >>> from kerasnlp4su.models import BERT
    >>> LanguageModel = extend_with_language_model(BERT)
    >>> issubclass(LanguageModel, BERT)
    True
    """
    return type("LanguageModel", (LM_Mask, BaseModel),
                {"__doc__": f"{BaseModel.__name__} with a causal mask (application='lm')."})


def extend_with_unified_language_model(BaseModel):  # noqa: N803 - bert4keras's signature
    """A subclass of `BaseModel` with the UniLM mask and the MLM head on (bert4keras's factory).

    Example:
    >>> from kerasnlp4su.models import BERT
    >>> extend_with_unified_language_model(BERT)(
    ...     vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...     intermediate_size=16).with_mlm
    True
    """
    return type("UnifiedLanguageModel", (UniLM_Mask, BaseModel),
                {"__doc__": f"{BaseModel.__name__} with UniLM's mask (application='unilm')."})


def data_parallel(model, devices=None, parts=None):
    """bert4keras's multi-GPU wrapper; Keras 3 distributes training itself.

    Raises `NotImplementedError` naming the Keras 3 way: build and train the
    model under `keras.distribution` (JAX: `keras.distribution.set_distribution(
    keras.distribution.DataParallel())`) or, on TensorFlow, inside
    `tf.distribute.MirroredStrategy().scope()`.
    """
    raise NotImplementedError(
        "data_parallel: Keras 3 has no model-splitting wrapper; use keras.distribution "
        "(keras.distribution.set_distribution(keras.distribution.DataParallel()) before "
        "building the model, JAX backend) or build and compile the model inside "
        "tf.distribute.MirroredStrategy().scope() on TensorFlow; see the README section "
        "'Backends and multi-device training'")
