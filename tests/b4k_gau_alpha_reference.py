"""GAU-alpha outputs computed by bert4keras 0.11.5 itself (run as a subprocess).

Usage: TF_KERAS=1 TF_USE_LEGACY_KERAS=1 python b4k_gau_alpha_reference.py config ckpt in.npz out.npz

bert4keras 0.11.5 has no GAU-alpha class: the release
(github.com/ZhuiyiTechnology/GAU-alpha, `models.py`) defines it as a
bert4keras `RoFormerV2` whose blocks are bert4keras's own
`GatedAttentionUnit` (no bias, `softmax_plus`, RoPE) followed by a
parameter-free RMS `LayerNormalization`, with its variable names. The
subclass below states those facts in bert4keras's terms, so every number
comes from bert4keras's layers, backend and loader.
"""

import sys

import numpy as np
from bert4keras.layers import Add, Dropout, GatedAttentionUnit, LayerNormalization
from bert4keras.models import RoFormerV2, build_transformer_model


class ReleaseGAUAlpha(RoFormerV2):
    """bert4keras RoFormerV2 with the release's GAU blocks and checkpoint names."""

    def apply_main_layers(self, inputs, index):
        name = f"Transformer-{index}-GatedAttentionUnit"
        bias = self.compute_attention_bias(index)
        rotary = self.compute_position_bias(inputs)
        layer_inputs = [inputs, rotary] if bias is None else [inputs, bias, rotary]
        x = self.apply(inputs=layer_inputs, layer=GatedAttentionUnit,
                       arguments={"a_bias": None if bias is None else True, "p_bias": "rotary"},
                       units=self.intermediate_size, key_size=self.attention_key_size,
                       activation=self.hidden_act, use_bias=False, normalization="softmax_plus",
                       attention_dropout=self.attention_dropout_rate,
                       kernel_initializer=self.initializer, name=name)
        x = self.apply(inputs=x, layer=Dropout, rate=self.dropout_rate, name=f"{name}-Dropout")
        x = self.apply(inputs=[inputs, x], layer=Add, name=f"{name}-Add")
        return self.apply(inputs=x, layer=LayerNormalization, zero_mean=False, scale=False,
                          offset=False, name=f"{name}-Norm")

    def variable_mapping(self):
        mapping = {"Embedding-Token": ["bert/embeddings/word_embeddings"],
                   "Embedding-Segment": ["bert/embeddings/token_type_embeddings"]}
        for i in range(self.num_hidden_layers):
            scope = f"GAU_alpha/encoder/layer_{i}/gau/"
            # bert4keras loads a layer's weights in `trainable_weights` order;
            # under tf-keras its GAU lists them in the order build() assigns
            # the sublayers (checked in main()).
            mapping[f"Transformer-{i}-GatedAttentionUnit"] = [
                scope + part for part in ("i_dense/kernel", "q_scaleoffset/gamma",
                                          "k_scaleoffset/gamma", "o_dense/kernel")]
        return mapping


def main(config_path, ckpt_path, inputs_path, out_path):
    data = np.load(inputs_path)
    ids, segments = data["ids"], data["segments"]
    out = {}
    for application in ("encoder", "lm", "unilm"):
        model = build_transformer_model(config_path, ckpt_path, model=ReleaseGAUAlpha,
                                        application=application,
                                        with_mlm="linear" if application == "encoder" else True)
        out[application] = model.predict([ids, segments], verbose=0)
    encoder = build_transformer_model(config_path, ckpt_path, model=ReleaseGAUAlpha)
    gau = encoder.get_layer("Transformer-0-GatedAttentionUnit")
    order = [w.name.split("/", 1)[1] for w in gau.trainable_weights]
    parts = ((gau.i_dense, "kernel"), (gau.q_scaleoffset, "gamma"),
             (gau.k_scaleoffset, "gamma"), (gau.o_dense, "kernel"))
    expected = [f"{layer.name}/{w}:0" for layer, w in parts]
    assert order == expected, (order, expected)
    out["sequence"] = encoder.predict([ids, segments], verbose=0)
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
