"""`build_transformer_model`: config file + checkpoint -> Keras model in one call."""

import json
import os

MODEL_REGISTRY = {}


def register_model(name, cls):
    """Make `cls` available as `build_transformer_model(..., model=name)`."""
    MODEL_REGISTRY[name] = cls


def read_config(config_path):
    """Read a model's JSON config with errors that name the file and the key."""
    config_path = os.fspath(config_path)
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"config file {config_path!r} not found")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {config_path!r} is not valid JSON: {e}") from e
    if not isinstance(config, dict):
        raise ValueError(f"config file {config_path!r} must hold a JSON object, "
                         f"got {type(config).__name__}")
    return config


_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size")
_INTEGER_KEYS = _REQUIRED + ("max_position", "segment_vocab_size", "embedding_size")


def normalize_config(config, source="config"):
    """Translate official config keys to constructor arguments and validate types."""
    config = dict(config)
    config.setdefault("max_position", config.pop("max_position_embeddings", 512))
    config.setdefault("dropout_rate", config.pop("hidden_dropout_prob", 0.0))
    config.setdefault("attention_dropout_rate", config.pop("attention_probs_dropout_prob", 0.0))
    config.setdefault("segment_vocab_size", config.pop("type_vocab_size", 2))
    missing = [key for key in _REQUIRED if config.get(key) is None]
    if missing:
        raise ValueError(f"{source} is missing required key(s) {missing}")
    for key in _INTEGER_KEYS:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{source}: {key!r} must be a non-negative integer, got {value!r}")
    if config["num_attention_heads"] == 0 or config["hidden_size"] == 0:
        raise ValueError(f"{source}: hidden_size and num_attention_heads must be positive")
    return config


def build_transformer_model(config_path=None, checkpoint_path=None, model="bert",
                            application="encoder", return_keras_model=True, strict=True,
                            **kwargs):
    """Build a model from an official config and optionally load its checkpoint.

    Same call as bert4keras: keyword arguments override config entries
    (`with_pool`, `with_nsp`, `with_mlm`, `keep_tokens`, `sequence_length`,
    `hidden_act`, ...). `model` is a registered name (`'bert'`, `'roberta'`,
    `'albert'`, `'albert_unshared'`, `'electra'`, `'roformer'`,
    `'roformer_v2'`, ...) or a `Transformer` subclass; `application` is
    `'encoder'`, `'lm'` or `'unilm'`. `checkpoint_path` may be an official
    TF1 checkpoint prefix or a HuggingFace directory with `model.safetensors`.

    Returns the `keras.Model`, or the `Transformer` builder (with `.model`)
    when `return_keras_model=False`.

    Example:
    >>> model = build_transformer_model(
    ...     "checkpoints/tiny_bert/bert_config.json",
    ...     "checkpoints/tiny_bert/bert_model.ckpt", with_pool=True)  # doctest: +SKIP
    """
    config = read_config(config_path) if config_path is not None else {}
    config.update(kwargs)
    source = f"config {config_path!r}" if config_path else "model arguments"
    config = normalize_config(config, source)
    if isinstance(model, str):
        key = model.lower()
        if key not in MODEL_REGISTRY:
            raise ValueError(f"unknown model {model!r}; known models: {sorted(MODEL_REGISTRY)}")
        model_cls = MODEL_REGISTRY[key]
    else:
        model_cls = model
    application = application.lower()
    transformer = model_cls(application=application, **config)
    transformer.build()
    if checkpoint_path is not None:
        transformer.load_weights_from_checkpoint(checkpoint_path, strict=strict)
    return transformer.model if return_keras_model else transformer
