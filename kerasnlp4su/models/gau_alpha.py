"""GAU-alpha (ZhuiyiTechnology, https://kexue.fm/archives/9052): the `gau_alpha` family.

RoFormer-v2's embeddings, norms and tied MLM output, with one Gated
Attention Unit per block instead of attention + feed-forward. bert4keras
passes it as a class (`model=GAU_alpha` from the release's `models.py`);
here it is also `model='gau_alpha'`.
"""

from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.layers.gau import GatedAttentionUnit
from kerasnlp4su.layers.masks import PaddingMask
from kerasnlp4su.models.registry import Family, register_family
from kerasnlp4su.models.roformer import RoFormerV2
from kerasnlp4su.models.tiny import TINY_BASE, TinyTensors


class GAU_alpha(RoFormerV2):  # noqa: N801  (bert4keras's and the release's class name)
    """GAU-alpha: post-norm GAU blocks, RMS norms without gain, RoPE, no biases.

    Block `i` is `x = rms_norm(x + GAU(x))` with a single-head
    `GatedAttentionUnit` of `intermediate_size` units and
    `attention_key_size` query/key width (128 in the release), activation
    `hidden_act` (swish), scores scaled by `1/sqrt(key_size)` and normalised
    by `softmax_plus`: `softmax(s * log(max(n, 16)) / log(512))` with `n`
    the number of unpadded tokens of the text, as in bert4keras (so under
    `application='lm'` / `'unilm'` too, `n` counts the whole text and the
    output of a token depends on the text's length: cached decoding is
    refused, decode with `use_cache=False`).

    Example:
    >>> model = GAU_alpha(vocab_size=100, hidden_size=16, num_hidden_layers=1,
    ...                   num_attention_heads=1, intermediate_size=32,
    ...                   attention_key_size=8, hidden_act="swish", with_mlm=True).build()
    """

    def block_names(self, index):
        name = f"Transformer-{index}-GatedAttentionUnit"
        return name, name

    def build_masks(self, inputs):
        bias, padding = super().build_masks(inputs)
        if padding is None:
            # softmax_plus counts the text's real tokens: give the unit the
            # padding mask explicitly rather than rely on Keras mask propagation.
            padding = self.apply(inputs[0], PaddingMask, name="Padding-Mask")
        return bias, padding

    def apply_block(self, x, index):
        name, _ = self.block_names(index)
        gau_kwargs = dict(units=self.intermediate_size, key_size=self.attention_key_size,
                          activation=self.hidden_act, use_bias=False,
                          normalization="softmax_plus", attention_scale=True,
                          attention_dropout=self.attention_dropout_rate, rope=True,
                          kernel_initializer=self.initializer)
        call_kwargs = {"padding_mask": self.padding_mask}
        if self.attention_mask is not None:
            call_kwargs["attention_mask"] = self.attention_mask
        return self.residual(x, name, GatedAttentionUnit, gau_kwargs, call_kwargs)

    def cached_forward(self, inputs, cache=None):
        raise NotImplementedError(
            "GAU_alpha cannot run a cached decoding step: its softmax_plus scale counts every "
            "unpadded token of the text (bert4keras's semantics), so earlier tokens' outputs "
            "change as the text grows and cached keys/values go stale; decode it with "
            "use_cache=False")

    def variable_mapping(self):
        names = {"Embedding-Token/embeddings": "bert/embeddings/word_embeddings",
                 "Embedding-Segment/embeddings": "bert/embeddings/token_type_embeddings"}
        for index in range(self.num_hidden_layers):
            name, _ = self.block_names(index)
            scope = f"GAU_alpha/encoder/layer_{index}/gau"
            for part in ("i_dense/kernel", "o_dense/kernel",
                         "q_scaleoffset/gamma", "k_scaleoffset/gamma"):
                names[f"{name}/{part}"] = f"{scope}/{part}"
        return names


def gau_alpha_tensors(config, rng):
    """The release's layout: BERT-named embeddings and `GAU_alpha/encoder/layer_{i}/gau/...`."""
    h, units, key = config["hidden_size"], config["intermediate_size"], config["attention_key_size"]
    t = TinyTensors(rng, bias=False, norm=False)
    t.embeddings("bert/embeddings", config, h, positions=False)
    for layer in range(config["num_hidden_layers"]):
        scope = f"GAU_alpha/encoder/layer_{layer}/gau"
        t.dense(f"{scope}/i_dense", h, 2 * units + key)
        t.dense(f"{scope}/o_dense", units, h)
        for part in ("q_scaleoffset", "k_scaleoffset"):
            t.tensors[f"{scope}/{part}/gamma"] = 1 + t.w(key)
    return t.tensors


GAU_ALPHA_FAMILY = register_family(Family(
    "gau_alpha", {"gau_alpha": GAU_alpha},
    signature=Signature(required=[r"GAU_alpha/encoder/layer_\d+/gau/.*"]),
    hf_unsupported=(
        "GAU-alpha has no HuggingFace `transformers` port, so there is no HF format to read or "
        "write: use the official TF1 checkpoint (load_weights_from_checkpoint / "
        "save_weights_as_checkpoint) instead"),
    # The release's config: one head, swish, a 128-wide shared q/k (here 8).
    tiny_config=dict(TINY_BASE, num_attention_heads=1, attention_key_size=8, hidden_act="swish"),
    tiny_tensors=gau_alpha_tensors))
