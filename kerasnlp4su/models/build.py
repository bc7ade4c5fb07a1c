"""`build_transformer_model`: config file + checkpoint -> Keras model in one call."""

import difflib
import inspect
import json
import numbers
import os

from kerasnlp4su.models.registry import (FAMILIES, MODEL_REGISTRY, checkpoint_family,
                                         family_for_hf_config, get_model_class, register_model)

__all__ = ["MODEL_REGISTRY", "build_transformer_model", "detect_model", "get_model_class",
           "normalize_config", "read_config", "register_model"]


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
# Integer keys and their smallest valid value.
_INTEGER_KEYS = {"vocab_size": 1, "hidden_size": 1, "num_hidden_layers": 0,
                 "num_attention_heads": 1, "intermediate_size": 1, "max_position": 1,
                 "segment_vocab_size": 0, "embedding_size": 1, "attention_head_size": 1,
                 "attention_key_size": 1, "sequence_length": 1}
# Official config key -> constructor argument, default.
_OFFICIAL_KEYS = (("max_position_embeddings", "max_position", 512),
                  ("hidden_dropout_prob", "dropout_rate", 0.0),
                  ("attention_probs_dropout_prob", "attention_dropout_rate", 0.0),
                  ("type_vocab_size", "segment_vocab_size", 2))
_RATE_KEYS = ("dropout_rate", "attention_dropout_rate")
# Head switches: a bool, or the name of the head's activation.
_HEAD_KEYS = ("with_pool", "with_nsp", "with_mlm", "with_discriminator")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def normalize_config(config, source="config"):
    """Translate official config keys to constructor arguments and validate them.

    Every error names `source` (the config file) and the offending key:
    missing required keys, integers given as strings or floats, negative or
    zero sizes, dropout rates outside [0, 1), unknown activations,
    `keep_tokens` ids outside the checkpoint's vocabulary. Keys the models do
    not use (official configs carry e.g. `directionality`) are ignored, as in
    bert4keras.
    """
    config = dict(config)
    names = {}  # constructor argument -> the key the config used, for messages
    for official, ours, default in _OFFICIAL_KEYS:
        value = config.pop(official, None)
        if config.get(ours) is None:  # a JSON null means "not given"
            if value is not None:
                names[ours] = official
            config[ours] = default if value is None else value

    def key_name(key):
        return f"{names[key]!r} ({key})" if key in names else repr(key)

    missing = [key for key in _REQUIRED if config.get(key) is None]
    if missing:
        raise ValueError(f"{source} is missing required key(s) {missing}")
    for key, smallest in _INTEGER_KEYS.items():
        value = config.get(key)
        if value is None:
            continue
        if not _is_int(value) or value < smallest:
            kind = "a non-negative integer" if smallest == 0 else "a positive integer"
            raise ValueError(f"{source}: {key_name(key)} must be {kind}, got {value!r}")
    for key in _RATE_KEYS:
        value = config.get(key)
        if value is None:
            continue
        if not _is_number(value) or not 0 <= value < 1:
            raise ValueError(f"{source}: {key_name(key)} must be a dropout rate in [0, 1), "
                             f"got {value!r}")
    value = config.get("initializer_range")
    if value is not None and (not _is_number(value) or value <= 0):
        raise ValueError(f"{source}: 'initializer_range' must be a positive number, got {value!r}")
    act = config.get("hidden_act", "gelu")
    # A list is bert4keras's gated feed-forward (T5 1.1: ["gelu", "linear"]).
    for name in (act if isinstance(act, (list, tuple)) and act else [act]):
        if not (isinstance(name, str) or callable(name)):
            raise ValueError(f"{source}: 'hidden_act' must be an activation name such as "
                             f"'gelu', got {act!r}")
        _check_activation(source, "hidden_act", name)
    for key in _HEAD_KEYS:
        value = config.get(key)
        if value is None or isinstance(value, bool) or callable(value):
            continue
        if not isinstance(value, str):
            raise ValueError(f"{source}: {key!r} must be True/False or an activation name, "
                             f"got {value!r}")
        _check_activation(source, key, value)
    _check_token_ids(source, config)
    return config


def _check_activation(source, key, name):
    from kerasnlp4su.backend import get_activation

    if name == "gelu":
        return  # each model resolves plain 'gelu' to its official form
    try:
        get_activation(name)
    except ValueError as e:
        raise ValueError(f"{source}: {key}={name!r}: {e}") from None


def _check_token_ids(source, config):
    """`keep_tokens` / `compound_tokens` must index the checkpoint's vocabulary."""
    vocab_size = config["vocab_size"]
    for key in ("keep_tokens", "compound_tokens"):
        value = config.get(key)
        if value is None:
            continue
        groups = value if key == "compound_tokens" else [value]
        try:
            ids = [i for group in groups for i in group]
        except TypeError:
            raise ValueError(f"{source}: {key!r} must be a list of token ids"
                             f"{' lists' if key == 'compound_tokens' else ''}, got {value!r}") from None
        if key == "keep_tokens" and not ids:
            raise ValueError(f"{source}: 'keep_tokens' is empty; it must list the ids of the "
                             "vocabulary rows to keep (at least one)")
        if key == "compound_tokens" and any(len(group) == 0 for group in groups):
            raise ValueError(f"{source}: every 'compound_tokens' entry needs at least one id")
        bad = [i for i in ids if not _is_int(i) or not 0 <= int(i) < vocab_size]
        if bad:
            raise ValueError(f"{source}: {key!r} holds ids outside the checkpoint vocabulary "
                             f"[0, {vocab_size}): {bad[:5]}")


def accepted_arguments(model_cls):
    """Every keyword a model class's constructor chain names, plus official config keys."""
    names = {official for official, _, _ in _OFFICIAL_KEYS}
    family = FAMILIES.get(getattr(model_cls, "family", None))
    if family is not None:
        names |= set(family.config_keys)
    for cls in inspect.getmro(model_cls):
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                names.add(param.name)
    names.discard("self")
    return names


def _check_keyword_arguments(model_cls, kwargs):
    # Config files may carry keys no model uses (they are ignored, as in
    # bert4keras), but an argument that no model family reads is almost
    # always a typo that would otherwise change nothing silently. Keys of
    # another family pass (an ALBERT config given with model='bert' is then
    # refused by the checkpoint's family check, which says more).
    accepted = accepted_arguments(model_cls)
    for cls in MODEL_REGISTRY.values():
        accepted |= accepted_arguments(cls)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(accepted), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise TypeError(f"build_transformer_model() got keyword argument(s) that no model "
                        f"reads: {', '.join(hints)}")


def detect_model(checkpoint_path, config=None):
    """The family name (a registered model name) that wrote a checkpoint: `model='auto'`.

    An official TF1 checkpoint is recognised by the registered families'
    signatures over its variable names and, when `config` (the official
    config dict) is given, its config keys. An HF directory or file is
    recognised by the `model_type` (and `architectures`) of the
    `config.json` beside it.

    Example:
    >>> detect_model("checkpoints/tiny_bert/bert_model.ckpt")  # doctest: +SKIP
    'bert'
    """
    from kerasnlp4su.checkpoints.formats import is_hf_checkpoint, open_checkpoint
    from kerasnlp4su.checkpoints.safetensors import hf_config_path

    if checkpoint_path is None:
        raise ValueError("model='auto' needs a checkpoint_path to detect the model family from")
    if is_hf_checkpoint(checkpoint_path):
        path = hf_config_path(checkpoint_path)
        if path is None:
            raise ValueError(f"model='auto': no config.json beside the HF weights "
                             f"{os.fspath(checkpoint_path)!r} to read the model family from; "
                             "pass model= explicitly")
        return family_for_hf_config(read_config(path)).name
    reader = open_checkpoint(checkpoint_path)
    family, _ = checkpoint_family(reader.names(), config)
    if family is None:
        raise ValueError(
            f"model='auto': checkpoint {reader.path!r} matches no registered model family "
            f"({', '.join(FAMILIES)}) by its variable names"
            f"{' and config keys' if config is not None else ''}; pass model= explicitly")
    return family


def build_transformer_model(config_path=None, checkpoint_path=None, model="bert",
                            application="encoder", return_keras_model=True, strict=True,
                            **kwargs):
    """Build a model from an official config and optionally load its checkpoint.

    Same call as bert4keras: keyword arguments override config entries
    (`with_pool`, `with_nsp`, `with_mlm`, `keep_tokens`, `sequence_length`,
    `hidden_act`, ...). `model` is a registered name (`'bert'`, `'roberta'`,
    `'albert'`, `'albert_unshared'`, `'electra'`, `'roformer'`,
    `'roformer_v2'`, ...), a `Transformer` subclass, or `'auto'`: the family
    detected from the checkpoint (`detect_model`). `application` is
    `'encoder'`, `'lm'` or `'unilm'`. `checkpoint_path` may be an official
    TF1 checkpoint prefix or a HuggingFace directory with `model.safetensors`.

    Returns the `keras.Model`, or the `Transformer` builder (with `.model`)
    when `return_keras_model=False`.

    Example:
    >>> model = build_transformer_model(
    ...     "checkpoints/tiny_bert/bert_config.json",
    ...     "checkpoints/tiny_bert/bert_model.ckpt", with_pool=True)  # doctest: +SKIP
    """
    source = f"config {config_path!r}" if config_path else "model arguments"
    if isinstance(model, str) and model.lower() == "auto":
        config = read_config(config_path) if config_path is not None else None
        model = detect_model(checkpoint_path, config)
    # The keyword check comes before reading the config: a typo is named
    # even when the config file is also wrong.
    model_cls = get_model_class(model)
    _check_keyword_arguments(model_cls, kwargs)
    config = read_config(config_path) if config_path is not None else {}
    return build_from_config(model_cls, config, kwargs, source, application, checkpoint_path,
                             strict, return_keras_model)


def build_from_config(model, config, kwargs, source, application="encoder",
                      checkpoint_path=None, strict=True, return_keras_model=True):
    """Build `model` from a config dict plus keyword overrides, then load weights.

    The one path `build_transformer_model` and `load_hf_model` share: the
    family's config keys are translated, `kwargs` must be arguments some
    model reads (a typo raises `TypeError`), the config is validated
    against `source`, and the checkpoint is loaded with the family check.
    """
    model_cls = get_model_class(model)
    _check_keyword_arguments(model_cls, kwargs)
    file_config = dict(config)  # the keys as released: they tell NEZHA from RoFormer v1
    config = dict(config)
    config.update(kwargs)
    # Keyword arguments may use the family's own spelling too (T5's `d_model`).
    family = FAMILIES.get(getattr(model_cls, "family", None))
    for official, ours in (family.config_keys.items() if family else ()):
        if official in config and config.get(ours) is None:
            config[ours] = config.pop(official)
    config = normalize_config(config, source)
    if not isinstance(application, str):
        raise ValueError(f"application must be 'encoder', 'lm' or 'unilm', got {application!r}")
    application = application.lower()
    transformer = model_cls(application=application, **config)
    transformer.build()
    if checkpoint_path is not None:
        transformer.load_weights_from_checkpoint(checkpoint_path, strict=strict,
                                                 config=file_config or None)
    return transformer.model if return_keras_model else transformer
