"""HuggingFace-format weights (`model.safetensors` + `config.json`), without torch.

Reading: `HFCheckpointReader` exposes an HF file under the *official* TF1
names every model's `variable_mapping()` already speaks, so loading an HF
directory is the same call as loading an official checkpoint:

>>> model = load_hf_model("all-MiniLM-L6-v2/")  # doctest: +SKIP
>>> model = build_transformer_model(None, "all-MiniLM-L6-v2/", model="bert")  # doctest: +SKIP

Writing: `save_weights_as_hf(transformer, directory)` writes `model.safetensors`
and `config.json` that `transformers` loads with `from_pretrained`.

One table per model family (`HF_FAMILIES`) states which official module is
which HF module and of what kind (dense, norm, embedding table, bias vector,
NSP/SOP classifier); both directions are derived from that one table. The
kind fixes the leaf names: official `kernel`/`bias` <-> HF `weight`
(transposed: torch `Linear` stores `(out, in)`) / `bias`; `gamma`/`beta` <->
`weight`/`bias`; an embedding table `X` <-> `X.weight`; the NSP
`output_weights` (already `(2, hidden)`) <-> `weight` untransposed.
"""

import json
import os
import re
import warnings

import numpy as np

from kerasnlp4su.checkpoints.readers import CheckpointReader

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"

# ------------------------------------------------------------ name tables
DENSE, NORM, TABLE, VECTOR, CLASSIFIER = "dense", "norm", "table", "vector", "classifier"

# (official leaf, HF leaf, transpose) for each kind; `None` leaf: the module
# name is the variable name itself.
_LEAVES = {
    DENSE: (("kernel", "weight", True), ("bias", "bias", False)),
    NORM: (("gamma", "weight", False), ("beta", "bias", False)),
    TABLE: ((None, "weight", False),),
    VECTOR: ((None, None, False),),
    CLASSIFIER: (("output_weights", "weight", False), ("output_bias", "bias", False)),
}


def _embeddings(official, hf, positions=True):
    tables = ["word_embeddings", "token_type_embeddings"]
    if positions:
        tables.append("position_embeddings")
    rules = [(TABLE, f"{official}/embeddings/{t}", f"{hf}.embeddings.{t}") for t in tables]
    rules.append((NORM, f"{official}/embeddings/LayerNorm", f"{hf}.embeddings.LayerNorm"))
    return rules


def _encoder_layer(official, hf):
    """A BERT-style post-LN layer; `{i}` is the layer index on both sides."""
    o, h = f"{official}/layer_{{i}}", f"{hf}.layer.{{i}}"
    rules = [(DENSE, f"{o}/attention/self/{p}", f"{h}.attention.self.{p}")
             for p in ("query", "key", "value")]
    rules += [
        (DENSE, f"{o}/attention/output/dense", f"{h}.attention.output.dense"),
        (NORM, f"{o}/attention/output/LayerNorm", f"{h}.attention.output.LayerNorm"),
        (DENSE, f"{o}/intermediate/dense", f"{h}.intermediate.dense"),
        (DENSE, f"{o}/output/dense", f"{h}.output.dense"),
        (NORM, f"{o}/output/LayerNorm", f"{h}.output.LayerNorm"),
    ]
    return rules


_BERT_HEADS = [
    (DENSE, "cls/predictions/transform/dense", "cls.predictions.transform.dense"),
    (NORM, "cls/predictions/transform/LayerNorm", "cls.predictions.transform.LayerNorm"),
    # The first HF name is written; the others are accepted when reading
    # (the decoder bias is tied to `cls.predictions.bias`).
    (VECTOR, "cls/predictions/output_bias", "cls.predictions.bias", "cls.predictions.decoder.bias"),
    (CLASSIFIER, "cls/seq_relationship", "cls.seq_relationship"),
]

_ALBERT_BLOCK = "bert/encoder/transformer/group_0/inner_group_0"
_ALBERT_HF_BLOCK = "albert.encoder.albert_layer_groups.0.albert_layers.0"


class HFFamily:
    """How one model family's official names correspond to HF names.

    `base` is the HF base-model attribute (`bert`, `albert`, ...): a bare
    `BertModel` saves its keys without the `bert.` prefix, and both forms
    are read. `hf_model_type` is the HF config's `model_type`.
    """

    def __init__(self, name, base, hf_model_type, rules):
        self.name = name
        self.base = base
        self.hf_model_type = hf_model_type
        self._forward = []  # (official regex, official template, hf templates, transpose)
        for kind, official, *hf_names in rules:
            for o_leaf, h_leaf, transpose in _LEAVES[kind]:
                o_name = official if o_leaf is None else f"{official}/{o_leaf}"
                h_names = [h if h_leaf is None else f"{h}.{h_leaf}" for h in hf_names]
                self._forward.append((o_name, h_names, transpose))
        self._official_re = [(_template_regex(o), hs, t) for o, hs, t in self._forward]
        self._hf_re = [(_template_regex(h), o, t, rank)
                       for o, hs, t in self._forward for rank, h in enumerate(hs)]

    def to_hf(self, official_name):
        """`(hf_name, transpose)` for an official name, or None."""
        for regex, hf_names, transpose in self._official_re:
            m = regex.fullmatch(official_name)
            if m:
                return hf_names[0].format(**m.groupdict()), transpose
        return None

    def to_official(self, hf_name):
        """`(official_name, transpose, rank)` for an HF name, or None; rank 0 is canonical."""
        for regex, official, transpose, rank in self._hf_re:
            m = regex.fullmatch(hf_name)
            if m:
                return official.format(**m.groupdict()), transpose, rank
        return None


def _template_regex(template):
    return re.compile(re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)"))


HF_FAMILIES = {
    "bert": HFFamily("bert", "bert", "bert", (
        _embeddings("bert", "bert")
        + _encoder_layer("bert/encoder", "bert.encoder")
        + [(DENSE, "bert/pooler/dense", "bert.pooler.dense")]
        + _BERT_HEADS)),
    "albert": HFFamily("albert", "albert", "albert", (
        _embeddings("bert", "albert")
        + [(DENSE, "bert/encoder/embedding_hidden_mapping_in",
            "albert.encoder.embedding_hidden_mapping_in")]
        + [(DENSE, f"{_ALBERT_BLOCK}/attention_1/self/{p}", f"{_ALBERT_HF_BLOCK}.attention.{p}")
           for p in ("query", "key", "value")]
        + [(DENSE, f"{_ALBERT_BLOCK}/attention_1/output/dense", f"{_ALBERT_HF_BLOCK}.attention.dense"),
           (NORM, f"{_ALBERT_BLOCK}/LayerNorm", f"{_ALBERT_HF_BLOCK}.attention.LayerNorm"),
           (DENSE, f"{_ALBERT_BLOCK}/ffn_1/intermediate/dense", f"{_ALBERT_HF_BLOCK}.ffn"),
           (DENSE, f"{_ALBERT_BLOCK}/ffn_1/intermediate/output/dense",
            f"{_ALBERT_HF_BLOCK}.ffn_output"),
           (NORM, f"{_ALBERT_BLOCK}/LayerNorm_1", f"{_ALBERT_HF_BLOCK}.full_layer_layer_norm"),
           (DENSE, "bert/pooler/dense", "albert.pooler"),
           (DENSE, "cls/predictions/transform/dense", "predictions.dense"),
           (NORM, "cls/predictions/transform/LayerNorm", "predictions.LayerNorm"),
           (VECTOR, "cls/predictions/output_bias", "predictions.bias", "predictions.decoder.bias"),
           (CLASSIFIER, "cls/seq_relationship", "sop_classifier.classifier")])),
    "electra": HFFamily("electra", "electra", "electra", (
        _embeddings("electra", "electra")
        + [(DENSE, "electra/embeddings_project", "electra.embeddings_project")]
        + _encoder_layer("electra/encoder", "electra.encoder")
        + [(DENSE, "discriminator_predictions/dense", "discriminator_predictions.dense"),
           (DENSE, "discriminator_predictions/dense_1",
            "discriminator_predictions.dense_prediction")])),
    # HF `ElectraForMaskedLM` holds the generator tower as its `electra.*`;
    # the official checkpoint shares `electra/embeddings/*` with the
    # discriminator.
    "electra_generator": HFFamily("electra_generator", "electra", "electra", (
        _embeddings("electra", "electra")
        + [(DENSE, "generator/embeddings_project", "electra.embeddings_project")]
        + _encoder_layer("generator/encoder", "electra.encoder")
        + [(DENSE, "generator_predictions/dense", "generator_predictions.dense"),
           (NORM, "generator_predictions/LayerNorm", "generator_predictions.LayerNorm"),
           (VECTOR, "generator_predictions/output_bias", "generator_lm_head.bias")])),
    # HF RoFormer has no pooler/NSP head; the official (bert4keras) release
    # has them. They are written under BERT-like names that transformers
    # ignores, so a round trip through the HF format loses nothing.
    "roformer": HFFamily("roformer", "roformer", "roformer", (
        _embeddings("bert", "roformer", positions=False)
        + [(DENSE, "bert/encoder/embedding_hidden_mapping_in", "roformer.embeddings_project")]
        + _encoder_layer("bert/encoder", "roformer.encoder")
        + [(DENSE, "bert/pooler/dense", "roformer.pooler.dense")]
        + _BERT_HEADS)),
}

# `Transformer.model_type` -> HF family.
_MODEL_TYPE_FAMILY = {
    "bert": "bert", "roberta": "bert", "albert": "albert", "albert_unshared": "albert",
    "electra": "electra", "electra_generator": "electra_generator", "roformer": "roformer",
}
# Module names that only one family's HF files have (for errors).
_HF_SIGNATURES = (("albert_layer_groups", "albert"), ("embed_positions", "roformer"),
                  ("embeddings_project", "electra"), ("discriminator_predictions", "electra"),
                  ("generator_lm_head", "electra_generator"))
# HF base-model prefixes of families this module does not read (for errors).
_OTHER_HF_BASES = ("roberta", "xlm_roberta", "deberta", "distilbert", "nezha", "ernie",
                   "megatron_bert", "mobilebert", "funnel", "xlnet", "t5", "gpt2")


def hf_family(transformer_or_family):
    """The `HFFamily` of a `Transformer` (by its `hf_family` attribute or
    `model_type`) or of a family / model-type name."""
    if isinstance(transformer_or_family, HFFamily):
        return transformer_or_family
    if isinstance(transformer_or_family, str):
        key = transformer_or_family
    else:
        key = getattr(transformer_or_family, "hf_family", None) or \
            getattr(transformer_or_family, "model_type", None)
    if key == "roformer_v2":
        raise ValueError(
            "RoFormer-v2 has no HuggingFace `transformers` port, so there is no HF format to "
            "read or write: use the official TF1 checkpoint (load_weights_from_checkpoint / "
            "save_weights_as_checkpoint) instead")
    family = _MODEL_TYPE_FAMILY.get(key, key)
    if family not in HF_FAMILIES:
        raise ValueError(f"no HuggingFace name map for model {key!r}; known: "
                         f"{sorted(_MODEL_TYPE_FAMILY)}")
    return HF_FAMILIES[family]


def official_to_hf(name, family):
    """`(hf_name, transpose)` of an official variable name, or None."""
    return hf_family(family).to_hf(name)


def hf_to_official(name, family):
    """`(official_name, transpose)` of an HF state-dict key, or None."""
    found = hf_family(family).to_official(_modern_key(name))
    return None if found is None else found[:2]


def _modern_key(key):
    # Old pytorch-pretrained-bert files name LayerNorm parameters gamma/beta.
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


# ---------------------------------------------------------------- reading
def resolve_hf_weights(path):
    """Path of the `.safetensors` file (or shard index) for a file or directory."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME):
            candidate = os.path.join(path, name)
            if os.path.exists(candidate):
                return candidate
        if any(f in os.listdir(path) for f in ("pytorch_model.bin", "tf_model.h5")):
            raise FileNotFoundError(
                f"directory {path!r} has HF weights only as pytorch_model.bin/tf_model.h5; "
                f"kerasnlp4su reads {WEIGHTS_NAME!r} (convert once with transformers: "
                "Model.from_pretrained(dir).save_pretrained(dir, safe_serialization=True))")
        raise FileNotFoundError(f"no {WEIGHTS_NAME!r} in directory {path!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"HF weights file {path!r} not found")
    return path


def _open_safetensors(path):
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(path, framework="numpy")
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"cannot read HF weights file {path!r}: it is not a valid safetensors "
                         f"file, or it is corrupt or truncated ({e})") from e


_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None,
           "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
           "BOOL": np.bool_}


class HFCheckpointReader(CheckpointReader):
    """An HF `model.safetensors` file seen under official TF1 names.

    Args:
        path: a `.safetensors` file, a `model.safetensors.index.json` shard
            index, or a directory holding either.
        transformer_or_family: the `Transformer` being loaded, or a model
            name (`'bert'`, `'albert'`, `'electra'`, `'electra_generator'`,
            `'roformer'`, ...).

    Tensors are read lazily, one at a time, with `safetensors`' numpy
    backend (bfloat16 is widened to float32). Keys with no official
    counterpart (buffers such as `position_ids`, tied decoder weights,
    task heads) are listed in `untranslated`.

    Example:
    >>> reader = HFCheckpointReader("all-MiniLM-L6-v2/", "bert")  # doctest: +SKIP
    >>> reader.get("bert/encoder/layer_0/attention/self/query/kernel").shape  # doctest: +SKIP
    (384, 384)
    """

    def __init__(self, path, transformer_or_family):
        self.family = hf_family(transformer_or_family)
        self.path = resolve_hf_weights(path)
        self._files = self._index(self.path)  # hf key -> file
        self._info = {}  # hf key -> (dtype string, shape)
        for filename in sorted(set(self._files.values())):
            handle = _open_safetensors(filename)
            for key in handle.keys():
                if self._files.get(key) == filename:
                    info = handle.get_slice(key)
                    self._info[key] = (info.get_dtype(), tuple(info.get_shape()))
        missing = sorted(set(self._files) - set(self._info))
        if missing:
            raise ValueError(f"HF shard index {self.path!r} lists tensors its shards lack: "
                             f"{missing[:5]}")
        self._official = {}  # official name -> (hf key, transpose, rank)
        self.untranslated = []
        prefix = self._bare_prefix()
        for key in sorted(self._info):
            found = self.family.to_official(_modern_key(prefix + key))
            if found is None:
                self.untranslated.append(key)
                continue
            official, transpose, rank = found
            if official not in self._official or rank < self._official[official][2]:
                self._official[official] = (key, transpose, rank)
        if not any("/encoder/" in name for name in self._official):
            self._raise_foreign()

    @staticmethod
    def _index(path):
        if not path.endswith(".json"):
            return {key: path for key in _open_safetensors(path).keys()}
        try:
            with open(path, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"cannot read HF shard index {path!r}: {e}") from e
        directory = os.path.dirname(path)
        files = {key: os.path.join(directory, shard) for key, shard in weight_map.items()}
        for shard in set(files.values()):
            if not os.path.exists(shard):
                raise FileNotFoundError(f"HF weights shard {shard!r} (listed in {path!r}) not found")
        return files

    def _bare_prefix(self):
        """`'bert.'` when the file was saved from a bare base model (no prefix)."""
        base = self.family.base + "."
        keys = self._info
        if not any(k.startswith(base) for k in keys) and \
                any(k.startswith("embeddings.") for k in keys):
            return base
        return ""

    def _raise_foreign(self):
        tops = {k.split(".", 1)[0] for k in self._info}
        known = {f.base: f.name for f in HF_FAMILIES.values()}
        other = [known.get(b, b) for b in sorted(tops & (set(known) | set(_OTHER_HF_BASES)))]
        # Bare base models have no prefix: recognise them by telltale modules.
        other += [family for marker, family in _HF_SIGNATURES
                  if family not in other and any(marker in k for k in self._info)]
        hint = ""
        if other:
            hint = (f" It looks like an HF {'/'.join(other)} model; pass the matching "
                    "model= argument.")
        raise ValueError(
            f"HF weights file {self.path!r} holds no tensor of the {self.family.name} "
            f"model (expected keys such as {self.family.base + '.embeddings.word_embeddings.weight'!r})."
            + hint)

    def names(self):
        return set(self._official)

    def _lookup(self, name):
        try:
            return self._official[name]
        except KeyError:
            raise KeyError(f"{name!r} is not in HF weights file {self.path!r} (as "
                           f"{self.family.to_hf(name)})") from None

    def hf_name(self, name):
        """The HF key an official name is read from."""
        return self._lookup(name)[0]

    def shape(self, name):
        key, transpose, _ = self._lookup(name)
        shape = self._info[key][1]
        return tuple(reversed(shape)) if transpose else shape

    def get(self, name):
        key, transpose, _ = self._lookup(name)
        value = self._read(key)
        return np.ascontiguousarray(value.T) if transpose else value

    def _read(self, key):
        filename = self._files[key]
        dtype, shape = self._info[key]
        try:
            if dtype == "BF16":
                return _read_bf16(filename, key, shape)
            return _open_safetensors(filename).get_tensor(key)
        except (ValueError, OSError, TypeError) as e:
            raise ValueError(f"cannot read tensor {key!r} from HF weights file {filename!r}: "
                             f"corrupt or truncated ({e})") from e


def _read_bf16(filename, key, shape):
    # numpy has no bfloat16: read the raw halves and widen to float32.
    with open(filename, "rb") as f:
        header_size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_size))
        begin, end = header[key]["data_offsets"]
        f.seek(8 + header_size + begin)
        raw = np.frombuffer(f.read(end - begin), dtype="<u2")
    if raw.size != int(np.prod(shape)):
        raise ValueError(f"expected {int(np.prod(shape))} bfloat16 values, found {raw.size}")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)


# ----------------------------------------------------------------- config
# HF activation name -> kerasnlp4su activation with the same semantics.
_HF_ACTIVATIONS = {"gelu": "gelu_erf", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                   "relu": "relu", "silu": "silu", "swish": "silu", "tanh": "tanh",
                   "linear": "linear"}
_OUR_ACTIVATIONS = {"gelu_erf": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu",
                    "swish": "silu", "tanh": "tanh", "linear": "linear"}
# HF config key -> constructor argument.
_CONFIG_KEYS = {
    "vocab_size": "vocab_size", "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers", "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size", "embedding_size": "embedding_size",
    "max_position_embeddings": "max_position", "type_vocab_size": "segment_vocab_size",
    "hidden_dropout_prob": "dropout_rate", "attention_probs_dropout_prob": "attention_dropout_rate",
    "initializer_range": "initializer_range", "layer_norm_eps": "layer_norm_epsilon",
    "num_hidden_groups": "num_hidden_groups", "inner_group_num": "inner_group_num",
}
_GENERATOR_ARCHITECTURES = ("ElectraForMaskedLM", "ElectraForCausalLM")


def is_hf_config(config):
    """True for a `transformers` config dict (official TF1 configs have no `model_type`)."""
    return isinstance(config, dict) and ("model_type" in config or "architectures" in config)


def hf_config_path(checkpoint_path):
    """The `config.json` beside HF weights at `checkpoint_path`, or None."""
    if checkpoint_path is None or not isinstance(checkpoint_path, (str, os.PathLike)):
        return None
    path = os.fspath(checkpoint_path)
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    is_hf = path.endswith((".safetensors", WEIGHTS_INDEX_NAME)) or any(
        os.path.exists(os.path.join(directory, n)) for n in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME))
    candidate = os.path.join(directory, CONFIG_NAME)
    return candidate if is_hf and os.path.exists(candidate) else None


def hf_model_name(config):
    """The `model=` name for an HF config dict (`'bert'`, `'electra_generator'`, ...)."""
    model_type = config.get("model_type")
    if model_type == "electra":
        generator = any(a in _GENERATOR_ARCHITECTURES for a in config.get("architectures") or ())
        return "electra_generator" if generator else "electra"
    if model_type in ("bert", "albert", "roformer"):
        return model_type
    raise ValueError(f"HF model_type {model_type!r} is not supported; supported: "
                     "'bert', 'albert', 'electra', 'roformer'")


def hf_config_to_kwargs(config, source="HF config"):
    """Translate an HF `config.json` dict into `build_transformer_model` arguments.

    `hidden_act` is made explicit (`'gelu'` in HF is the exact erf form,
    `'gelu_new'` the tanh approximation), so the model computes what
    `transformers` computes whatever the family's official default.
    """
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{source}: position_embedding_type="
                         f"{config['position_embedding_type']!r} is not supported (only 'absolute')")
    if config.get("rotary_value"):
        raise ValueError(f"{source}: RoFormer with rotary_value=true is not supported")
    kwargs = {ours: config[key] for key, ours in _CONFIG_KEYS.items()
              if config.get(key) is not None}
    act = config.get("hidden_act", "gelu")
    if act not in _HF_ACTIVATIONS:
        raise ValueError(f"{source}: hidden_act {act!r} has no kerasnlp4su equivalent; "
                         f"known: {sorted(_HF_ACTIVATIONS)}")
    kwargs["hidden_act"] = _HF_ACTIVATIONS[act]
    return kwargs


def read_hf_config(path):
    """Read an HF `config.json` (file or directory) into constructor arguments."""
    from kerasnlp4su.models.build import read_config

    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, CONFIG_NAME)
    return hf_config_to_kwargs(read_config(path), source=f"HF config {path!r}")


def load_hf_model(path, model=None, application="encoder", return_keras_model=True,
                  strict=True, **kwargs):
    """Build a model from an HF directory (`config.json` + `model.safetensors`).

    `model` defaults to the config's `model_type` (ELECTRA `ElectraForMaskedLM`
    files give `'electra_generator'`); keyword arguments override config
    entries as in `build_transformer_model` (`with_pool`, `with_mlm`, ...).

    Example:
    >>> model = load_hf_model("all-MiniLM-L6-v2/")  # doctest: +SKIP
    >>> model.predict([token_ids, segment_ids])  # doctest: +SKIP
    """
    from kerasnlp4su.models.build import get_model_class, normalize_config, read_config

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"HF model directory {path!r} not found")
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    config_path = os.path.join(directory, CONFIG_NAME)
    raw = read_config(config_path)
    config = hf_config_to_kwargs(raw, source=f"HF config {config_path!r}")
    config.update(kwargs)
    config = normalize_config(config, f"HF config {config_path!r}")
    if model is None:
        model = hf_model_name(raw)
    model_cls = get_model_class(model)
    transformer = model_cls(application=application.lower(), **config)
    transformer.build()
    transformer.load_weights_from_checkpoint(path, strict=strict)
    return transformer.model if return_keras_model else transformer


# ---------------------------------------------------------------- writing
def hf_config_from_transformer(transformer):
    """The HF `config.json` dict describing `transformer`."""
    family = hf_family(transformer)
    t = transformer
    problems = []
    if t.attention_head_size * t.num_attention_heads != t.hidden_size or \
            t.attention_key_size != t.attention_head_size:
        problems.append("attention_head_size/attention_key_size other than "
                        "hidden_size / num_attention_heads")
    if getattr(t, "attention_type", "softmax") != "softmax":
        problems.append(f"attention_type={t.attention_type!r}")
    if getattr(t, "attention_scale", "standard") != "standard":
        problems.append(f"attention_scale={t.attention_scale!r}")
    if getattr(t, "layer_norm_cond", None) is not None:
        problems.append("conditional LayerNorm (layer_norm_cond)")
    act = t.hidden_act if isinstance(t.hidden_act, str) else None
    if act not in _OUR_ACTIVATIONS:
        problems.append(f"hidden_act={t.hidden_act!r}")
    if family.name == "bert" and t.embedding_size != t.hidden_size:
        problems.append("embedding_size != hidden_size (HF BERT has no embedding projection)")
    if problems:
        raise ValueError(f"the {t.model_type} model cannot be written in the HF format: "
                         f"transformers has no {'; '.join(problems)}")
    with_mlm = bool(t.with_mlm)
    with_nsp = bool(t.with_nsp)
    if family.name == "bert":
        arch = ("BertForPreTraining" if with_mlm and with_nsp else "BertForMaskedLM" if with_mlm
                else "BertForNextSentencePrediction" if with_nsp else "BertModel")
    elif family.name == "albert":
        arch = ("AlbertForPreTraining" if with_mlm and with_nsp else "AlbertForMaskedLM"
                if with_mlm else "AlbertModel")
    elif family.name == "electra":
        arch = "ElectraForPreTraining" if getattr(t, "with_discriminator", False) else "ElectraModel"
    elif family.name == "electra_generator":
        arch = "ElectraForMaskedLM" if with_mlm else "ElectraModel"
    else:
        arch = "RoFormerForMaskedLM" if with_mlm else "RoFormerModel"
    config = {
        "architectures": [arch],
        "model_type": family.hf_model_type,
        "vocab_size": t.vocab_size,
        "hidden_size": t.hidden_size,
        "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads,
        "intermediate_size": t.intermediate_size,
        "hidden_act": _OUR_ACTIVATIONS[act],
        "hidden_dropout_prob": t.dropout_rate,
        "attention_probs_dropout_prob": t.attention_dropout_rate,
        "max_position_embeddings": t.max_position,
        "type_vocab_size": max(t.segment_vocab_size, 1),
        "initializer_range": t.initializer_range,
        "layer_norm_eps": float(t.layer_norm_kwargs.get("epsilon", 1e-12)),
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }
    if family.name != "bert":
        config["embedding_size"] = t.embedding_size
    if family.name == "bert":
        config["position_embedding_type"] = "absolute"
    elif family.name == "albert":
        config.update(num_hidden_groups=1, inner_group_num=1)
    elif family.name == "roformer":
        config["rotary_value"] = False
    return config


def hf_tensors_from_transformer(transformer):
    """`{HF name: numpy array}` of `transformer`'s weights (HF layout)."""
    family = hf_family(transformer)
    hf, untranslatable = {}, []
    for name, value in transformer.checkpoint_tensors().items():
        found = family.to_hf(name)
        if found is None:
            untranslatable.append(name)
            continue
        key, transpose = found
        hf[key] = np.ascontiguousarray(value.T if transpose else value)
    if untranslatable:
        raise ValueError(f"the {transformer.model_type} model has weights with no place in the "
                         f"HF {family.name} format: {sorted(untranslatable)}")
    base = family.base
    if transformer.segment_vocab_size == 0:
        # HF always adds a token-type embedding; a zero row leaves outputs unchanged.
        hf[f"{base}.embeddings.token_type_embeddings.weight"] = np.zeros(
            (1, transformer.embedding_size), dtype=np.float32)
    if family.name == "roformer":
        hf["roformer.encoder.embed_positions.weight"] = _roformer_sinusoids(
            transformer.max_position, transformer.attention_head_size)
    return hf


def _roformer_sinusoids(positions, dim):
    # transformers' RoFormerSinusoidalPositionalEmbedding table: sines of the
    # even frequencies in the first half, cosines in the second.
    pos = np.arange(positions, dtype=np.float64)[:, None]
    angles = pos / np.power(10000, 2 * (np.arange(dim) // 2) / dim)[None, :]
    half = (dim + 1) // 2
    table = np.empty((positions, dim))
    table[:, :half] = np.sin(angles[:, 0::2])
    table[:, half:] = np.cos(angles[:, 1::2])
    return table.astype(np.float32)


def save_weights_as_hf(transformer, directory, vocab_path=None):
    """Write `transformer`'s weights as an HF model directory.

    Writes `model.safetensors` and `config.json` (and copies `vocab_path`
    to `vocab.txt` when given), each atomically: a temporary file next to
    the target, then `os.replace`. `transformers`' `from_pretrained(directory)`
    loads the result.

    Example:
    >>> t = build_transformer_model(config, ckpt, with_mlm=True, return_keras_model=False)  # doctest: +SKIP
    >>> save_weights_as_hf(t, "exported/")  # doctest: +SKIP
    >>> transformers.BertForMaskedLM.from_pretrained("exported/")  # doctest: +SKIP
    """
    from safetensors.numpy import save_file

    if transformer.model is None:
        raise ValueError("build the model (transformer.build()) before saving it")
    config = hf_config_from_transformer(transformer)
    if transformer.model_type == "electra_generator" and transformer.hidden_act != "gelu_erf":
        warnings.warn("transformers' ElectraForMaskedLM always uses the exact-erf GELU in its "
                      f"generator head; this model uses {transformer.hidden_act!r} there",
                      stacklevel=2)
    tensors = hf_tensors_from_transformer(transformer)
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    _atomic_write(directory, WEIGHTS_NAME,
                  lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    _atomic_write(directory, CONFIG_NAME, lambda tmp: _write_text(tmp, text))
    if vocab_path is not None:
        with open(vocab_path, encoding="utf-8") as f:
            vocab = f.read()
        _atomic_write(directory, "vocab.txt", lambda tmp: _write_text(tmp, vocab))
    return directory


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _atomic_write(directory, name, write):
    from kerasnlp4su.saving import atomic_write

    suffix = os.path.splitext(name)[1]
    return atomic_write(os.path.join(directory, name), write, suffix=suffix)
