"""Google's T5 (t5.1.0, t5.1.1) and mT5 1.1 / T5-PEGASUS: encoder-decoder models from mesh-TF checkpoints.

Three families, one per release naming (`model='auto'` tells them apart by
variable names):

* `t5.1.0` (also `t5`): ReLU feed-forward `DenseReluDense/wi`, output tied to
  `shared/embedding` and scaled by `d_model ** -0.5` first;
* `t5.1.1`: gated tanh-GELU feed-forward `wi_0`/`wi_1`, untied
  `decoder/logits/kernel` (no scaling);
* `mt5.1.1` (mT5, T5-PEGASUS): as t5.1.1, with the norms saved as
  `rms_norm/scale` (final ones `encoder/rms_norm/scale`).

All: RMS norm (eps 1e-6, no mean, no bias) before each sublayer, no
`1/sqrt(d)` attention scale, T5 relative position buckets (bidirectional in
the encoder, causal in the decoder, one table per stack in block 0, shared
by every block) and no position bias on cross-attention, as the official
code and `transformers` (bert4keras adds the decoder's bias there).

`build_transformer_model(config, ckpt, model='t5.1.1', return_keras_model=False)`
returns a `T5` whose `.encoder` takes `[encoder_token_ids]`, `.decoder`
takes `[encoder_output, decoder_token_ids]` and `.model` takes
`[encoder_token_ids, decoder_token_ids]` (bert4keras's API).
"""

import keras
from keras import ops

from kerasnlp4su.backend import no_grad, write_at
from kerasnlp4su.checkpoints.names import DENSE, MATRIX, TABLE, VECTOR, HFFamily
from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.layers.attention import MultiHeadAttention
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.layers.embeddings import Embedding
from kerasnlp4su.layers.feedforward import FeedForward
from kerasnlp4su.layers.masks import AttentionMask, PaddingMask
from kerasnlp4su.layers.relative_position import RelativePositionEmbeddingT5
from kerasnlp4su.layers.remat import outside_remat_scope
from kerasnlp4su.models.cache import DecodingStep, KVCache, check_cache_support
from kerasnlp4su.models.registry import Family, register_family
from kerasnlp4su.models.tiny import TinyTensors
from kerasnlp4su.models.transformer import Transformer

VERSIONS = ("t5.1.0", "t5.1.1", "mt5.1.1")
# HF `feed_forward_proj` activation -> ours ("gelu" there is the tanh form, gelu_new).
_PROJ_ACTIVATIONS = {"relu": "relu", "gelu": "gelu_tanh", "gelu_new": "gelu_tanh",
                     "gelu_tanh": "gelu_tanh", "silu": "silu", "gelu_erf": "gelu_erf"}


def _feed_forward(version, hidden_act, feed_forward_proj):
    """`(activation, gated)` from a T5 (`feed_forward_proj`) or bert4keras (`hidden_act`) config.

    The release decides the gating (its checkpoints hold `wi` or `wi_0`/`wi_1`):
    a config of another release then fails at loading, where the family
    check names the right `model=`.
    """
    if feed_forward_proj is not None:
        gated = feed_forward_proj.startswith("gated-")
        name = feed_forward_proj[len("gated-"):] if gated else feed_forward_proj
        if name not in _PROJ_ACTIVATIONS:
            raise ValueError(f"feed_forward_proj={feed_forward_proj!r}: unknown activation "
                             f"{name!r}; known: {sorted(_PROJ_ACTIVATIONS)}")
        activation = _PROJ_ACTIVATIONS[name]
    elif isinstance(hidden_act, (list, tuple)):
        # bert4keras's gated form: ["gelu", "linear"].
        if len(hidden_act) != 2 or hidden_act[1] != "linear":
            raise ValueError(f"hidden_act={hidden_act!r}: T5's gated feed-forward is "
                             "[activation, 'linear']")
        gated, activation = True, hidden_act[0]
    else:
        gated, activation = version != "t5.1.0", hidden_act
    if activation is None:
        activation = "relu" if version == "t5.1.0" else "gelu_tanh"
    if activation == "gelu":
        activation = "gelu_tanh"  # mesh-TF's gelu is the tanh approximation
    return activation, version != "t5.1.0"


class T5_Base(Transformer):
    """Shared pieces of the T5 encoder and decoder stacks (bert4keras's `T5_Base`).

    Args (beyond `Transformer`'s):
        version: `'t5.1.0'`, `'t5.1.1'` or `'mt5.1.1'` (the checkpoint's naming).
        feed_forward_proj: HF's `'relu'` / `'gated-gelu'`; else `hidden_act`
            decides (a list `['gelu', 'linear']` means gated, as bert4keras).
        relative_attention_num_buckets, relative_attention_max_distance: 32, 128.
        num_decoder_layers: decoder depth (default: `num_hidden_layers`).
        with_lm: the decoder's token head: True (softmax), an activation
            name (`'linear'` for logits) or False (the hidden states).

    Example:
    >>> t5 = T5(vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...         intermediate_size=16, version="t5.1.1")
    >>> t5.build().inputs[0].name
    'Encoder-Input-Token'
    """

    version = "t5.1.0"
    norm_position = "pre"
    position_encoding = "t5_relative"
    use_bias = False
    layer_norm_kwargs = {"epsilon": 1e-6, "center": False, "zero_mean": False}

    def __init__(self, vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
                 intermediate_size, hidden_act=None, version=None, feed_forward_proj=None,
                 relative_attention_num_buckets=32, relative_attention_max_distance=128,
                 num_decoder_layers=None, with_lm=True, attention_scale=None,
                 segment_vocab_size=0, **kwargs):
        version = version or type(self).version
        if version not in VERSIONS:
            raise ValueError(f"T5 version must be one of {VERSIONS}, got {version!r}")
        if version != type(self).version:
            # bert4keras passes the release as an argument: read its checkpoints.
            self.family = version
            self.checkpoint_families = (version,)
        self.version = version
        activation, self.gated = _feed_forward(version, hidden_act, feed_forward_proj)
        if attention_scale not in (None, False, "none"):
            raise ValueError(f"T5 attention has no score scale; got attention_scale={attention_scale!r}")
        kwargs.pop("with_mlm", None)
        unsupported = {"application": (kwargs.get("application", "encoder"), "encoder"),
                       "attention_type": (kwargs.get("attention_type", "softmax"), "softmax"),
                       "layer_norm_cond": (kwargs.get("layer_norm_cond"), None)}
        for key, (value, allowed) in unsupported.items():
            if value != allowed:
                raise ValueError(f"{key}={value!r} is not supported by T5 "
                                 f"(an encoder-decoder with softmax attention); leave it {allowed!r}")
        super().__init__(vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
                         intermediate_size, hidden_act=activation, attention_scale="none",
                         segment_vocab_size=0, **kwargs)
        self.relative_attention_num_buckets = int(relative_attention_num_buckets)
        self.relative_attention_max_distance = int(relative_attention_max_distance)
        self.num_decoder_layers = int(num_decoder_layers or num_hidden_layers)
        self.with_lm = with_lm
        self.cond = None  # no conditional LayerNorm in T5

    # ------------------------------------------------------------ pieces
    def attention_kwargs(self, causal=False):
        return dict(heads=self.num_attention_heads, head_size=self.attention_head_size,
                    key_size=self.attention_key_size, out_dim=self.hidden_size,
                    use_bias=False, attention_dropout=self.attention_dropout_rate, scale="none",
                    causal=causal, kernel_initializer=self.initializer)

    def feed_forward_kwargs(self):
        activation = [self.hidden_act, "linear"] if self.gated else self.hidden_act
        return dict(units=self.intermediate_size, activation=activation, use_bias=False,
                    kernel_initializer=self.initializer)

    def embed(self, token_ids):
        x = self.apply(token_ids, Embedding, name="Embedding-Token", input_dim=self.vocab_size,
                       output_dim=self.hidden_size, embeddings_initializer=self.initializer)
        return x

    def position_bias(self, x, keys, stack, bidirectional, query_offset=None):
        kwargs = dict(input_dim=self.relative_attention_num_buckets,
                      output_dim=self.num_attention_heads,
                      max_distance=self.relative_attention_max_distance,
                      bidirectional=bidirectional, embeddings_initializer=self.initializer)
        call_kwargs = None if query_offset is None else {"query_offset": query_offset}
        return self.apply([x, keys], RelativePositionEmbeddingT5,
                          name=f"{stack}-Embedding-Relative-Position", call_kwargs=call_kwargs,
                          **kwargs)

    def sublayer(self, x, name, layer_cls, layer_kwargs, call_kwargs=None, inputs=None):
        """Pre-norm residual: `x + dropout(layer(norm(x)))`; returns `(x, layer output)`.

        `inputs(normed)` builds the layer's input from the normed `x` (for
        cross-attention: `[normed, context, context]`).
        """
        h = self.norm(x, f"{name}-Norm")
        h = self.apply(h if inputs is None else inputs(h), layer_cls, name=name,
                       call_kwargs=call_kwargs, **layer_kwargs)
        extra = None
        if isinstance(h, tuple):
            h, extra = h
        h = self.dropout(h, self.dropout_rate, f"{name}-Dropout")
        return self.apply([x, h], keras.layers.Add, name=f"{name}-Add"), extra

    # ------------------------------------------------------------ stacks
    def encode(self, token_ids):
        """The encoder stack on `token_ids`: returns the encoder output."""
        x = self.embed(token_ids)
        x = self.dropout(x, self.dropout_rate, "Encoder-Embedding-Dropout")
        bias = self.apply(token_ids, AttentionMask, name="Encoder-Attention-Mask", mode="padding")
        position_bias = self.position_bias(x, x, "Encoder", bidirectional=True)
        for index in range(self.num_hidden_layers):
            name = f"Encoder-Transformer-{index}"
            x, _ = self.sublayer(x, f"{name}-MultiHeadSelfAttention", MultiHeadAttention,
                                 self.attention_kwargs(),
                                 {"attention_mask": bias, "position_bias": position_bias})
            x, _ = self.sublayer(x, f"{name}-FeedForward", FeedForward,
                                 self.feed_forward_kwargs())
        x = self.norm(x, "Encoder-Output-Norm")
        return self.dropout(x, self.dropout_rate, "Encoder-Output-Dropout")

    def decode(self, context, token_ids, context_keep=None, step=None):
        """The decoder stack: `context` is the encoder output, `context_keep`
        its `(batch, source)` keep-mask (None: every position visible).

        With a `DecodingStep` (`step`), `token_ids` are the new tokens only:
        self-attention reads and extends the KV cache, cross-attention keys
        and values are projected from `context` in the prefix pass and read
        from the cache afterwards (`context` may then be None).
        """
        x = self.embed(token_ids)
        x = self.dropout(x, self.dropout_rate, "Decoder-Embedding-Dropout")
        if step is None:
            position_bias = self.position_bias(x, x, "Decoder", bidirectional=False)
        else:
            keys = x if step.is_prefix else step.keep  # axis 1: every key position
            position_bias = self.position_bias(x, keys, "Decoder", bidirectional=False,
                                               query_offset=step.length)
        for index in range(self.num_decoder_layers):
            name = f"Decoder-Transformer-{index}"
            call_kwargs = {"position_bias": position_bias}
            if step is not None:
                call_kwargs.update(step.self_attention_kwargs(index, x))
            x, kv = self.sublayer(x, f"{name}-MultiHeadSelfAttention", MultiHeadAttention,
                                  self.attention_kwargs(causal=True), call_kwargs)
            if step is not None:
                step.write_self(index, kv)
            cross_name = f"{name}-MultiHeadCrossAttention"
            cross_kwargs = {} if context_keep is None else {"padding_mask": context_keep}
            if step is None:
                x, _ = self.sublayer(x, cross_name, MultiHeadAttention, self.attention_kwargs(),
                                     cross_kwargs, inputs=lambda h: [h, context, context])
            else:
                kv = step.cross(index)
                if kv is None:  # the prefix pass: project the encoder output once
                    kv = self.layers[cross_name].project_key_value(context)
                    step.write_cross(index, kv)
                cross_kwargs["key_value"] = kv
                x, _ = self.sublayer(x, cross_name, MultiHeadAttention, {}, cross_kwargs)
            x, _ = self.sublayer(x, f"{name}-FeedForward", FeedForward, self.feed_forward_kwargs())
        x = self.norm(x, "Decoder-Output-Norm")
        x = self.dropout(x, self.dropout_rate, "Decoder-Output-Dropout")
        return self.apply_lm_head(x)

    def apply_lm_head(self, x):
        if not self.with_lm:
            return x
        activation = "softmax" if self.with_lm is True else self.with_lm
        if self.version == "t5.1.0":
            # Tied output: the official code scales by d_model ** -0.5 first.
            x = self.apply(x, keras.layers.Rescaling, name="Decoder-Output-Scale",
                           scale=self.hidden_size ** -0.5)
            x = self.apply(x, name="Embedding-Token", call_kwargs={"mode": "dense"})
        else:
            x = self.apply(x, Dense, name="Decoder-Output-LM", units=self.vocab_size,
                           use_bias=False, kernel_initializer=self.initializer)
        return self.apply(x, keras.layers.Activation, name="Decoder-Output-LM-Activation",
                          activation=activation, dtype="float32")

    def build_masks(self, inputs, step=None):  # noqa: D102  (T5 builds its masks per stack)
        raise NotImplementedError("T5 builds its masks in encode/decode")

    def apply_embeddings(self, inputs, step=None):  # noqa: D102
        raise NotImplementedError("T5 embeds in encode/decode")

    def apply_block(self, x, index, step=None):  # noqa: D102
        raise NotImplementedError("T5 applies its blocks in encode/decode")

    # --------------------------------------------------------- inputs
    def encoder_input(self):
        return keras.Input(shape=(self.sequence_length,), dtype="int32", name="Encoder-Input-Token")

    def decoder_inputs(self):
        context = keras.Input(shape=(self.sequence_length, self.hidden_size),
                              name="Input-Context")
        token_ids = keras.Input(shape=(self.sequence_length,), dtype="int32",
                                name="Decoder-Input-Token")
        return context, token_ids

    # ---------------------------------------------------- cached decoding
    def decoder_cached_forward(self, context, context_keep, token_ids, cache=None):
        """One cached pass of the decoder stack; returns `(outputs, new_cache)`.

        Prefix pass (`cache=None`): `context` is the encoder output (its
        keep-mask `context_keep`, or None) and `token_ids` the decoder's
        first tokens. Later passes: `token_ids` are the new tokens and
        `context` is not needed (the cross-attention keys/values are cached).
        """
        check_cache_support(self)
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache, got {type(cache).__name__}")
        token_ids = ops.convert_to_tensor(token_ids, "int32")
        n = ops.shape(token_ids)[1]
        # T5's decoder starts from token 0 (the pad id): every position is kept.
        keep = ops.ones_like(token_ids, dtype="bool")
        if cache is not None:
            length = cache.length
            if isinstance(length, int) and isinstance(n, int) and length + n > cache.capacity:
                cache = self.reserve_cache(cache, max(length + n, 2 * cache.capacity))
            keep = write_at(cache.keep, keep, cache.length, axis=1)
        step = DecodingStep(cache, keep, self.num_attention_heads, self.attention_key_size,
                            self.attention_head_size)
        if cache is None and context_keep is not None:
            step.set_cross_keep(ops.cast(context_keep, "bool"))
        with no_grad():
            outputs = self.decode(context, token_ids, step.cross_keep, step=step)
        return outputs, step.new_cache(n, self.num_decoder_layers, type(self).__name__)

    # ---------------------------------------------------- checkpoint names
    def norm_scope(self, scope):
        """Official name of the norm scale under `scope` (this release's spelling)."""
        return f"{scope}/{'rms_norm' if self.version == 'mt5.1.1' else 'layer_norm'}/scale"

    def final_norm(self, stack):
        if self.version == "mt5.1.1":
            return f"{stack}/rms_norm/scale"
        return f"{stack}/final_layer_norm/scale"

    def attention_names(self, keras_name, scope):
        names = {f"{keras_name}/{part}/kernel": f"{scope}/{letter}"
                 for part, letter in (("query", "q"), ("key", "k"), ("value", "v"),
                                      ("output", "o"))}
        return names

    def feed_forward_names(self, keras_name, scope):
        if self.gated:
            names = {f"{keras_name}/intermediate/kernel": f"{scope}/wi_0/kernel",
                     f"{keras_name}/intermediate_1/kernel": f"{scope}/wi_1/kernel"}
        else:
            names = {f"{keras_name}/intermediate/kernel": f"{scope}/wi/kernel"}
        names[f"{keras_name}/output/kernel"] = f"{scope}/wo/kernel"
        return names

    def encoder_mapping(self):
        names = {"Embedding-Token/embeddings": "shared/embedding",
                 "Encoder-Embedding-Relative-Position/embeddings":
                     "encoder/block_000/layer_000/SelfAttention/relative_attention_bias",
                 "Encoder-Output-Norm/gamma": self.final_norm("encoder")}
        for index in range(self.num_hidden_layers):
            keras_name, scope = f"Encoder-Transformer-{index}", f"encoder/block_{index:03d}"
            names.update(self.attention_names(f"{keras_name}-MultiHeadSelfAttention",
                                              f"{scope}/layer_000/SelfAttention"))
            names[f"{keras_name}-MultiHeadSelfAttention-Norm/gamma"] = \
                self.norm_scope(f"{scope}/layer_000")
            names.update(self.feed_forward_names(f"{keras_name}-FeedForward",
                                                 f"{scope}/layer_001/DenseReluDense"))
            names[f"{keras_name}-FeedForward-Norm/gamma"] = self.norm_scope(f"{scope}/layer_001")
        return names

    def decoder_mapping(self):
        names = {"Embedding-Token/embeddings": "shared/embedding",
                 "Decoder-Embedding-Relative-Position/embeddings":
                     "decoder/block_000/layer_000/SelfAttention/relative_attention_bias",
                 "Decoder-Output-Norm/gamma": self.final_norm("decoder")}
        if self.version != "t5.1.0":
            names["Decoder-Output-LM/kernel"] = "decoder/logits/kernel"
        for index in range(self.num_decoder_layers):
            keras_name, scope = f"Decoder-Transformer-{index}", f"decoder/block_{index:03d}"
            for part, layer, official in (("MultiHeadSelfAttention", "layer_000", "SelfAttention"),
                                          ("MultiHeadCrossAttention", "layer_001",
                                           "EncDecAttention")):
                names.update(self.attention_names(f"{keras_name}-{part}",
                                                  f"{scope}/{layer}/{official}"))
                names[f"{keras_name}-{part}-Norm/gamma"] = self.norm_scope(f"{scope}/{layer}")
            names.update(self.feed_forward_names(f"{keras_name}-FeedForward",
                                                 f"{scope}/layer_002/DenseReluDense"))
            names[f"{keras_name}-FeedForward-Norm/gamma"] = self.norm_scope(f"{scope}/layer_002")
        return names

    def checkpoint_transforms(self):
        # The bias tables are saved (heads, buckets); ours are (buckets, heads).
        # The untied output kernel is (hidden, vocab): keep_tokens select columns.
        transpose = (lambda w: w.T, lambda w: w.T)
        names = {f"{stack}/block_000/layer_000/SelfAttention/relative_attention_bias": transpose
                 for stack in ("encoder", "decoder")}
        names["decoder/logits/kernel"] = (lambda w: self.select_tokens(w.T).T, lambda w: w)
        return names

    def embedding_variables(self):
        return ["shared/embedding"]


def _functional(inputs, outputs, name):
    """`keras.Model(inputs, outputs)`; under a keras.RematScope its layers are
    rematerialised, not the model's call (TransformerModel does the same)."""
    with outside_remat_scope():
        return keras.Model(inputs, outputs, name=name)


class T5_Encoder(T5_Base):
    """The T5 encoder alone: `[encoder_token_ids] -> encoder output` (bert4keras's `T5_Encoder`).

    Example:
    >>> enc = T5_Encoder(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...                  num_attention_heads=2, intermediate_size=16).build()
    """

    def build(self):
        token_ids = self.encoder_input()
        self.model_inputs = [token_ids]
        self.model = _functional(token_ids, self.encode(token_ids), self.name)
        return self.model

    def variable_mapping(self):
        return self.encoder_mapping()


class T5_Decoder(T5_Base):
    """The T5 decoder alone: `[encoder_output, decoder_token_ids] -> token probabilities`.

    Every encoder position is visible (the decoder has no encoder ids to
    mask padding with); `T5.model` and cached decoding mask it.

    Example:
    >>> dec = T5_Decoder(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...                  num_attention_heads=2, intermediate_size=16).build()
    """

    def build(self):
        context, token_ids = self.decoder_inputs()
        self.model_inputs = [context, token_ids]
        self.model = _functional([context, token_ids], self.decode(context, token_ids), self.name)
        return self.model

    def cached_forward(self, inputs, cache=None):
        """`[encoder_output, decoder_ids]` in the prefix pass, `[new_ids]` after."""
        if cache is None:
            context, token_ids = inputs
            return self.decoder_cached_forward(ops.convert_to_tensor(context), None, token_ids)
        return self.decoder_cached_forward(None, None, inputs[-1], cache)

    def variable_mapping(self):
        return self.decoder_mapping()


class T5(T5_Base):
    """T5 encoder-decoder (bert4keras's `T5`): `.encoder`, `.decoder` and `.model`.

    `.model` takes `[encoder_token_ids, decoder_token_ids]` (the encoder's
    padding, id 0, is masked in cross-attention); `.encoder` takes
    `[encoder_token_ids]`; `.decoder` takes `[encoder_output,
    decoder_token_ids]`. All three share their layers.

    Example:
    >>> t5 = T5(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...         num_attention_heads=2, intermediate_size=16)
    >>> model = t5.build()
    >>> [len(m.inputs) for m in (t5.encoder, t5.decoder, t5.model)]
    [1, 2, 2]
    """

    encoder = decoder = None

    def build(self):
        token_ids = self.encoder_input()
        context = self.encode(token_ids)
        self.encoder = _functional(token_ids, context, f"{self.name}_encoder")
        context_in, decoder_ids = self.decoder_inputs()
        self.decoder = _functional([context_in, decoder_ids], self.decode(context_in, decoder_ids),
                                   f"{self.name}_decoder")
        keep = self.apply(token_ids, PaddingMask, name="Encoder-Padding-Mask")
        self.model_inputs = [token_ids, decoder_ids]
        self.model = _functional(self.model_inputs, self.decode(context, decoder_ids, keep),
                                 self.name)
        return self.model

    def cached_forward(self, inputs, cache=None):
        """Cached seq2seq decoding: `[encoder_ids, decoder_ids]` in the prefix pass
        (the encoder runs once), `[new_decoder_ids]` after. Returns `(outputs, cache)`.

        Example:
        >>> probs, cache = t5.cached_forward([source_ids, np.zeros((1, 1), "int32")])  # doctest: +SKIP
        >>> probs, cache = t5.cached_forward([next_ids], cache)  # doctest: +SKIP
        """
        if cache is None:
            encoder_ids, token_ids = inputs
            encoder_ids = ops.convert_to_tensor(encoder_ids, "int32")
            with no_grad():
                context = self.encoder(encoder_ids, training=False)
            return self.decoder_cached_forward(context, ops.not_equal(encoder_ids, 0), token_ids)
        return self.decoder_cached_forward(None, None, inputs[-1], cache)

    def variable_mapping(self):
        names = self.encoder_mapping()
        names.update(self.decoder_mapping())
        return names


# ------------------------------------------------------------------ tiny test checkpoint
def t5_tensors(version):
    """`fn(config, rng)` writing a tiny official mesh-TF checkpoint of `version`."""

    def tensors(config, rng):
        d, f, v = config["d_model"], config["d_ff"], config["vocab_size"]
        heads, d_kv, buckets = config["num_heads"], config["d_kv"], \
            config["relative_attention_num_buckets"]
        inner = heads * d_kv
        t = TinyTensors(rng)
        norm = "rms_norm" if version == "mt5.1.1" else "layer_norm"
        t.tensors["shared/embedding"] = t.w(v, d) * 10
        for stack in ("encoder", "decoder"):
            t.tensors[f"{stack}/block_000/layer_000/SelfAttention/relative_attention_bias"] = \
                t.w(heads, buckets) * 10
            attentions = ["SelfAttention"] + (["EncDecAttention"] if stack == "decoder" else [])
            for block in range(config["num_layers"]):
                scope = f"{stack}/block_{block:03d}"
                for layer, name in enumerate(attentions):
                    for letter in "qkv":
                        t.tensors[f"{scope}/layer_{layer:03d}/{name}/{letter}"] = t.w(d, inner)
                    t.tensors[f"{scope}/layer_{layer:03d}/{name}/o"] = t.w(inner, d)
                    t.tensors[f"{scope}/layer_{layer:03d}/{norm}/scale"] = 1 + t.w(d)
                ffn = f"{scope}/layer_{len(attentions):03d}"
                for wi in (["wi"] if version == "t5.1.0" else ["wi_0", "wi_1"]):
                    t.tensors[f"{ffn}/DenseReluDense/{wi}/kernel"] = t.w(d, f)
                t.tensors[f"{ffn}/DenseReluDense/wo/kernel"] = t.w(f, d)
                t.tensors[f"{ffn}/{norm}/scale"] = 1 + t.w(d)
            final = "rms_norm" if version == "mt5.1.1" else "final_layer_norm"
            t.tensors[f"{stack}/{final}/scale"] = 1 + t.w(d)
        if version != "t5.1.0":
            t.tensors["decoder/logits/kernel"] = t.w(d, v)
        # Adafactor state and the step counter: the loader must ignore them.
        t.tensors["global_step"] = t.w().astype("int64") * 0 + 1000
        for slot in ("vr", "vc"):
            t.tensors[f"encoder/block_000/layer_001/DenseReluDense/wo/kernel_slot_{slot}"] = t.w(f)
        t.tensors["shared/embedding_slot_v"] = t.w(v, d)
        return t.tensors

    return tensors


#: T5's own config keys (HF / mesh-TF `config.json`) -> constructor arguments.
CONFIG_KEYS = {"d_model": "hidden_size", "d_ff": "intermediate_size",
               "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
               "d_kv": "attention_head_size"}


def tiny_config(version):
    return {"vocab_size": 40, "d_model": 16, "d_ff": 24, "num_layers": 2, "num_heads": 2,
            "d_kv": 6, "relative_attention_num_buckets": 8, "relative_attention_max_distance": 20,
            "dropout_rate": 0.1, "layer_norm_epsilon": 1e-6,
            "feed_forward_proj": "relu" if version == "t5.1.0" else "gated-gelu"}


# ------------------------------------------------------------------ HF (transformers) format
def hf_rules(version):
    """Official mesh-TF name <-> `transformers` T5/MT5 name, for one release."""
    norm = "rms_norm" if version == "mt5.1.1" else "layer_norm"
    final = "rms_norm" if version == "mt5.1.1" else "final_layer_norm"
    wis = ["wi"] if version == "t5.1.0" else ["wi_0", "wi_1"]
    rules = [(TABLE, "shared/embedding", "shared", "encoder.embed_tokens", "decoder.embed_tokens")]
    for stack in ("encoder", "decoder"):
        rules.append((MATRIX, f"{stack}/block_000/layer_000/SelfAttention/relative_attention_bias",
                      f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias"))
        layers = ["SelfAttention"] + (["EncDecAttention"] if stack == "decoder" else [])
        o, h = f"{stack}/block_{{i:03d}}", f"{stack}.block.{{i}}"
        for index, name in enumerate(layers + ["DenseReluDense"]):
            rules.append((VECTOR, f"{o}/layer_{index:03d}/{norm}/scale",
                          f"{h}.layer.{index}.layer_norm.weight"))
            if name == "DenseReluDense":
                rules += [(DENSE, f"{o}/layer_{index:03d}/{name}/{w}", f"{h}.layer.{index}.{name}.{w}")
                          for w in wis + ["wo"]]
            else:
                rules += [(MATRIX, f"{o}/layer_{index:03d}/{name}/{x}", f"{h}.layer.{index}.{name}.{x}")
                          for x in "qkvo"]
        rules.append((VECTOR, f"{stack}/{final}/scale", f"{stack}.final_layer_norm.weight"))
    if version != "t5.1.0":
        rules.append((DENSE, "decoder/logits", "lm_head"))
    return rules


_HF_ACTIVATION_NAMES = {"relu": "relu", "gelu_tanh": "gelu_new", "gelu_erf": "gelu", "silu": "silu"}


def _hf_is_gated(config):
    return str(config.get("feed_forward_proj", "relu")).startswith("gated-")


def _hf_read_config(version):
    def read(config, source):
        gated = _hf_is_gated(config)
        tied = config.get("tie_word_embeddings", True)
        if gated == tied:
            raise ValueError(
                f"{source}: feed_forward_proj={config.get('feed_forward_proj')!r} with "
                f"tie_word_embeddings={tied} is neither T5 1.0 (relu, tied) nor 1.1 (gated, "
                "untied); kerasnlp4su reads those releases")
        keys = {"d_model": "hidden_size", "d_ff": "intermediate_size",
                "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
                "d_kv": "attention_head_size", "num_decoder_layers": "num_decoder_layers",
                "relative_attention_num_buckets": "relative_attention_num_buckets",
                "relative_attention_max_distance": "relative_attention_max_distance",
                "dropout_rate": "dropout_rate", "layer_norm_epsilon": "layer_norm_epsilon"}
        kwargs = {ours: config[key] for key, ours in keys.items() if config.get(key) is not None}
        kwargs["feed_forward_proj"] = config.get("feed_forward_proj", "relu")
        return kwargs

    return read


def _hf_config_writer(version):
    def write(t):
        if t.attention_dropout_rate:
            raise ValueError(f"the {t.model_type} model cannot be written in the HF format: "
                             "transformers' T5 has no separate attention dropout")
        if t.hidden_act not in _HF_ACTIVATION_NAMES or (t.gated and t.hidden_act == "gelu_erf"):
            raise ValueError(f"the {t.model_type} model cannot be written in the HF format: "
                             f"transformers' T5 has no {'gated ' if t.gated else ''}"
                             f"hidden_act={t.hidden_act!r}")
        act = _HF_ACTIVATION_NAMES[t.hidden_act]
        proj = ("gated-gelu" if act == "gelu_new" else f"gated-{act}") if t.gated else act
        mt5 = version == "mt5.1.1"
        return {"architectures": ["MT5ForConditionalGeneration" if mt5
                                  else "T5ForConditionalGeneration"],
                "model_type": "mt5" if mt5 else "t5", "vocab_size": t.vocab_size,
                "d_model": t.hidden_size, "d_kv": t.attention_head_size,
                "d_ff": t.intermediate_size, "num_layers": t.num_hidden_layers,
                "num_decoder_layers": t.num_decoder_layers, "num_heads": t.num_attention_heads,
                "relative_attention_num_buckets": t.relative_attention_num_buckets,
                "relative_attention_max_distance": t.relative_attention_max_distance,
                "dropout_rate": t.dropout_rate,
                "layer_norm_epsilon": float(t.layer_norm_kwargs["epsilon"]),
                "feed_forward_proj": proj, "tie_word_embeddings": version == "t5.1.0",
                "is_encoder_decoder": True, "pad_token_id": 0, "eos_token_id": 1,
                "decoder_start_token_id": 0, "torch_dtype": "float32"}

    return write


def _version_class(base, version, suffix):
    # T5_1_1, T5_1_1_Encoder, MT5_1_1_Decoder, ...
    prefix = "MT5" if version.startswith("mt5") else "T5"
    name = f"{prefix}_{version.split('.', 1)[1].replace('.', '_')}{suffix.title()}"
    cls = type(name, (base,),
               {"version": version, "__doc__": f"{base.__name__} reading {version} checkpoints.",
                "__module__": __name__})
    return cls


_BLOCK = r"(encoder|decoder)/block_\d{3}/layer_\d{3}"
_SIGNATURES = {
    "t5.1.0": Signature(required=[r"shared/embedding", rf"{_BLOCK}/DenseReluDense/wi/kernel"],
                        forbidden=[r"decoder/logits/kernel", rf"{_BLOCK}/DenseReluDense/wi_0/kernel",
                                   r".*/rms_norm/scale"]),
    "t5.1.1": Signature(required=[r"shared/embedding", rf"{_BLOCK}/DenseReluDense/wi_0/kernel",
                                  rf"{_BLOCK}/layer_norm/scale"],
                        forbidden=[r".*/rms_norm/scale"]),
    "mt5.1.1": Signature(required=[r"shared/embedding", rf"{_BLOCK}/DenseReluDense/wi_0/kernel",
                                   rf"{_BLOCK}/rms_norm/scale"],
                         forbidden=[rf"{_BLOCK}/layer_norm/scale"]),
}

T5_CLASSES = {}
for _version in VERSIONS:
    if _version == "t5.1.0":
        _classes = {"": T5, "_encoder": T5_Encoder, "_decoder": T5_Decoder}
    else:
        _classes = {suffix: _version_class(base, _version, suffix)
                    for suffix, base in (("", T5), ("_encoder", T5_Encoder),
                                         ("_decoder", T5_Decoder))}
    T5_CLASSES[_version] = _classes
    _models = {f"{_version}{suffix}": cls for suffix, cls in _classes.items()}
    if _version == "t5.1.0":  # bert4keras's `t5` is t5.1.0
        _models.update({f"t5{suffix}": cls for suffix, cls in _classes.items()})
    register_family(Family(
        _version, _models, signature=_SIGNATURES[_version], config_keys=CONFIG_KEYS,
        hf=HFFamily(_version, "", "mt5" if _version == "mt5.1.1" else "t5", hf_rules(_version)),
        hf_select=None if _version == "mt5.1.1" else (
            lambda config, gated=(_version == "t5.1.1"): _hf_is_gated(config) == gated),
        hf_read_config=_hf_read_config(_version), hf_config_writer=_hf_config_writer(_version),
        tiny_config=tiny_config(_version), tiny_tensors=t5_tensors(_version)))
