"""Name mapping helpers: Keras paths <-> official names <-> HF names.

Nothing here knows a model family: families (under `kerasnlp4su.models`)
write their tables with these helpers and hand them to the readers and
writers as arguments.

An HF name table (`HFFamily`) is a list of rules `(kind, official module,
HF module, [more accepted HF modules])`; `{i}` stands for a layer index on
both sides. The kind fixes the leaf names: official `kernel`/`bias` <-> HF
`weight` (transposed: torch `Linear` stores `(out, in)`) / `bias`;
`gamma`/`beta` <-> `weight`/`bias`; an embedding table `X` <-> `X.weight`;
a bare vector `X` <-> `X`; an NSP-style classifier's `output_weights`
(already `(2, hidden)`) <-> `weight` untransposed; a bare matrix `X` <->
`X.weight` transposed. `{i:03d}` stands for a zero-padded layer index
(mesh-TF's `block_000`) and matches the plain `{i}` of the other side.
"""

import re

DENSE, NORM, TABLE, VECTOR, CLASSIFIER = "dense", "norm", "table", "vector", "classifier"
#: a bare official matrix stored transposed in HF (mesh-TF T5's `SelfAttention/q` <-> `q.weight`).
MATRIX = "matrix"

# (official leaf, HF leaf, transpose) for each kind; `None` leaf: the module
# name is the variable name itself.
_LEAVES = {
    DENSE: (("kernel", "weight", True), ("bias", "bias", False)),
    NORM: (("gamma", "weight", False), ("beta", "bias", False)),
    TABLE: ((None, "weight", False),),
    VECTOR: ((None, None, False),),
    CLASSIFIER: (("output_weights", "weight", False), ("output_bias", "bias", False)),
    MATRIX: ((None, "weight", True),),
}


def dense_names(keras_path, official_path, use_bias=True):
    """Map a Dense layer's kernel (and bias) onto official `kernel`/`bias`.

    >>> dense_names("Pooler-Dense", "bert/pooler/dense")
    {'Pooler-Dense/kernel': 'bert/pooler/dense/kernel', 'Pooler-Dense/bias': 'bert/pooler/dense/bias'}
    """
    names = {f"{keras_path}/kernel": f"{official_path}/kernel"}
    if use_bias:
        names[f"{keras_path}/bias"] = f"{official_path}/bias"
    return names


def norm_names(keras_path, official_path, center=True, scale=True):
    """Map a LayerNorm's gamma/beta onto official names.

    >>> norm_names("MLM-Norm", "cls/predictions/transform/LayerNorm")["MLM-Norm/gamma"]
    'cls/predictions/transform/LayerNorm/gamma'
    """
    names = {}
    if scale:
        names[f"{keras_path}/gamma"] = f"{official_path}/gamma"
    if center:
        names[f"{keras_path}/beta"] = f"{official_path}/beta"
    return names


def _template_regex(template):
    return re.compile(re.sub(r"\\\{i(?::0\d+d)?\\\}", r"(?P<i>\\d+)", re.escape(template)))


def _fill(template, match):
    # Indices are numbers on both sides: `block_{i:03d}` <-> `block.{i}`.
    return template.format(**{k: int(v) for k, v in match.groupdict().items()})


def modern_key(key):
    """HF key with old pytorch-pretrained-bert LayerNorm leaves (`gamma`/`beta`) renamed."""
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


class HFFamily:
    """How one family's official names correspond to HF names (both directions).

    Args:
        name: the family's name (for messages).
        base: the HF base-model attribute (`bert`, `albert`, ...): a bare
            `BertModel` saves its keys without the `bert.` prefix, and both
            forms are read.
        hf_model_type: the HF config's `model_type`.
        rules: `(kind, official module, HF module, *other accepted HF modules)`.
        markers: HF module names only this family's files hold (to name the
            family of a foreign file in errors).

    Example:
    >>> table = HFFamily("toy", "toy", "toy", [(DENSE, "toy/layer_{i}/dense", "toy.layer.{i}.dense")])
    >>> table.to_hf("toy/layer_3/dense/kernel")
    ('toy.layer.3.dense.weight', True)
    """

    def __init__(self, name, base, hf_model_type, rules, markers=()):
        self.name = name
        self.base = base
        self.hf_model_type = hf_model_type
        self.markers = tuple(markers)
        self._forward = []  # (official template, hf templates, transpose)
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
                return _fill(hf_names[0], m), transpose
        return None

    def to_official(self, hf_name):
        """`(official_name, transpose, rank)` for an HF name, or None; rank 0 is canonical."""
        for regex, official, transpose, rank in self._hf_re:
            m = regex.fullmatch(hf_name)
            if m:
                return _fill(official, m), transpose, rank
        return None

