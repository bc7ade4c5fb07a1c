"""The registry of model families: every family's facts, declared in its own file.

A `Family` states, in one place (`kerasnlp4su/models/<family>.py`): the
model names it registers, how its checkpoints are recognised (a
`Signature` over variable names and config keys), its HF name table and
config translation, and what its tiny test checkpoint looks like.
`build_transformer_model`, the loader's family check, the HF reader/writer
and the test fixtures walk this registry; none of them names a family.

Example:
>>> from kerasnlp4su.models.registry import FAMILIES, checkpoint_family
>>> sorted(FAMILIES)[:2]
['albert', 'bert']
>>> checkpoint_family(["bert/embeddings/position_embeddings", "bert/encoder/layer_0/output/dense/kernel"])
('bert', 'bert/embeddings/position_embeddings')
"""

from kerasnlp4su.checkpoints.signatures import match_signatures

#: registered model name -> `Transformer` subclass (`build_transformer_model(model=name)`).
MODEL_REGISTRY = {}
#: family name -> `Family`, in registration order.
FAMILIES = {}

#: HF base-model prefixes of families kerasnlp4su does not read (named in errors).
OTHER_HF_BASES = ("roberta", "xlm_roberta", "deberta", "distilbert", "nezha", "ernie",
                  "megatron_bert", "mobilebert", "funnel", "xlnet", "t5", "gpt2")


class Family:
    """Everything the library knows about one model family.

    Args:
        name: the family's one name: the checkpoint family in messages
            ("looks like a model='bert' checkpoint"), its HF table's name
            and a registered model name (one of `models`).
        models: `{registered name: Transformer subclass}`; each class gets
            `family = name`, `checkpoint_families` and (unless it sets
            one) `model_type` = its first registered name.
        signature: `kerasnlp4su.checkpoints.signatures.Signature` of its
            official checkpoints.
        reads: other families' checkpoints its models also read (the ELECTRA
            generator reads the full ELECTRA pre-training checkpoint).
        config_keys: `{official config key: constructor argument}` for keys
            this family's configs spell differently from the constructor.
        hf: its `kerasnlp4su.checkpoints.names.HFFamily` name table, or None.
        hf_unsupported: the error text when there is no HF port (`hf=None`).
        hf_architectures: HF `architectures` that select this family among
            families sharing one HF `model_type`; empty: the default one.
        hf_read_config: `fn(hf_config, source)` raising on configs the family
            cannot represent; returns extra constructor arguments (a dict).
        hf_write_config: `fn(transformer) -> (architecture, extra config
            keys, problems)`; problems are texts of what HF cannot hold.
        hf_extra_tensors: `fn(transformer) -> {HF name: array}` of tensors
            HF files hold beyond the weights (e.g. RoFormer's sinusoid table).
        hf_select: `fn(hf_config) -> bool`: whether an HF config of this
            family's `model_type` is this family's (T5 1.0 and 1.1 share
            `model_type` and architecture; `feed_forward_proj` tells them apart).
        hf_config_writer: `fn(transformer) -> HF config dict`, for families
            whose HF config shares none of BERT's keys (T5); it raises on what
            HF cannot hold. Replaces `hf_write_config` and the generic keys.
        tiny_config: the official-format config of its tiny test checkpoint.
        tiny_tensors: `fn(config, rng) -> {official name: array}`, written
            from the official layout (not from `variable_mapping`).
    """

    def __init__(self, name, models, signature, reads=(), config_keys=None, hf=None,
                 hf_unsupported=None, hf_architectures=(), hf_read_config=None,
                 hf_write_config=None, hf_extra_tensors=None, tiny_config=None,
                 tiny_tensors=None, hf_select=None, hf_config_writer=None):
        if name not in models:
            raise ValueError(f"family {name!r} must register a model under its own name; "
                             f"it registers {sorted(models)}")
        self.name = name
        self.models = dict(models)
        self.signature = signature
        self.reads = tuple(reads)
        self.config_keys = dict(config_keys or {})
        self.hf = hf
        self.hf_unsupported = hf_unsupported
        self.hf_architectures = tuple(hf_architectures)
        self.hf_read_config = hf_read_config
        self.hf_write_config = hf_write_config
        self.hf_extra_tensors = hf_extra_tensors
        self.hf_select = hf_select
        self.hf_config_writer = hf_config_writer
        self.tiny_config = tiny_config
        self.tiny_tensors = tiny_tensors

    def __repr__(self):
        return f"Family({self.name!r}, models={sorted(self.models)})"


def register_model(name, cls):
    """Make `cls` available as `build_transformer_model(..., model=name)` (no family facts)."""
    MODEL_REGISTRY[name] = cls


def register_family(family):
    """Add `family` (and its models) to the registry; returns it."""
    if family.name in FAMILIES:
        raise ValueError(f"model family {family.name!r} is already registered")
    taken = sorted(set(family.models) & set(MODEL_REGISTRY))
    if taken:
        raise ValueError(f"model name(s) {taken} are already registered")
    FAMILIES[family.name] = family
    for model_name, cls in family.models.items():
        MODEL_REGISTRY[model_name] = cls
        if cls.__dict__.get("family") not in (None, family.name):
            raise ValueError(f"{cls.__name__} already belongs to family {cls.family!r}")
        cls.family = family.name
        cls.checkpoint_families = (family.name,) + family.reads
        if "model_type" not in cls.__dict__:
            cls.model_type = model_name
    return family


def unregister_family(name):
    """Remove a family and its model names (for test-local families)."""
    family = FAMILIES.pop(name)
    for model_name in family.models:
        MODEL_REGISTRY.pop(model_name, None)


def get_model_class(model):
    """The `Transformer` subclass registered as `model` (a class passes through)."""
    if not isinstance(model, str):
        return model
    key = model.lower()
    if key not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {model!r}; known models: {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[key]


def get_family(key):
    """The `Family` of a family name, a registered model name or a `Transformer`."""
    if isinstance(key, Family):
        return key
    if not isinstance(key, str):
        key = getattr(key, "family", None) or getattr(key, "model_type", None)
    if key in FAMILIES:
        return FAMILIES[key]
    cls = MODEL_REGISTRY.get(key)
    name = getattr(cls, "family", None)
    if name in FAMILIES:
        return FAMILIES[name]
    raise ValueError(f"no model family {key!r}; known: {sorted(FAMILIES)}")


def signatures():
    """`{family name: Signature}` of every registered family."""
    return {name: family.signature for name, family in FAMILIES.items()}


def checkpoint_family(names, config=None):
    """`(family, evidence)`: which `model=` wrote a checkpoint, and what shows it.

    The most specific registered signature that fits the variable `names`
    (and the config's keys, when `config` is given) wins; ties go to the
    family registered first. Returns `(None, None)` when none fits.
    """
    found = match_signatures(names, signatures(), config)
    return found[0] if found else (None, None)


def guess_model_family(names):
    """Best guess of which `model=` wrote a checkpoint, from its variable names."""
    return checkpoint_family(names)[0]


def hf_tables():
    """Every family's HF name table."""
    return [family.hf for family in FAMILIES.values() if family.hf is not None]


def hf_family(transformer_or_family):
    """The HF name table (`HFFamily`) of a `Transformer`, family or model name."""
    from kerasnlp4su.checkpoints.names import HFFamily

    if isinstance(transformer_or_family, HFFamily):
        return transformer_or_family
    key = transformer_or_family
    if not isinstance(key, (str, Family)):
        # A custom model may name another family's table (`hf_family = "bert"`).
        key = (getattr(key, "hf_family", None) or getattr(key, "family", None)
               or getattr(key, "model_type", None))
    try:
        family = get_family(key)
    except ValueError:
        known = sorted(n for n, c in MODEL_REGISTRY.items()
                       if getattr(FAMILIES.get(getattr(c, "family", None)), "hf", None))
        raise ValueError(f"no HuggingFace name map for model {key!r}; known: {known}") from None
    if family.hf is None:
        raise ValueError(family.hf_unsupported or
                         f"the {family.name} family has no HuggingFace name map")
    return family.hf


def family_for_hf_config(config):
    """The `Family` an HF `config.json` dict describes (its `model_type`, then `architectures`)."""
    model_type = config.get("model_type")
    matches = [f for f in FAMILIES.values() if f.hf is not None and f.hf.hf_model_type == model_type
               and (f.hf_select is None or f.hf_select(config))]
    architectures = set(config.get("architectures") or ())
    for family in matches:
        if architectures & set(family.hf_architectures):
            return family
    for family in matches:
        if not family.hf_architectures:
            return family
    supported = sorted({f.hf.hf_model_type for f in FAMILIES.values() if f.hf is not None})
    raise ValueError(f"HF model_type {model_type!r} is not supported; supported: "
                     f"{', '.join(map(repr, supported))}")
