"""The one transformer skeleton every model is built from.

A model subclass only states what differs: its embedding pieces, where the
norm sits, its position scheme, its heads and its checkpoint name map. The
block code below is shared by BERT, ALBERT, ELECTRA and RoFormer. The
cached decoding pass replays the same hooks with a `step` argument; the KV
cache and that pass live in `kerasnlp4su.models.cache`.
"""

import contextlib
import warnings

import keras
import numpy as np

from kerasnlp4su.backend import get_activation, resolve_gelu
from kerasnlp4su.checkpoints.formats import open_checkpoint
from kerasnlp4su.checkpoints.loader import load_checkpoint_weights
from kerasnlp4su.checkpoints.names import dense_names, norm_names  # noqa: F401  (families' helpers)
from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint
from kerasnlp4su.layers.attention import MultiHeadAttention
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.layers.embeddings import BiasAdd, Embedding, MaskedAdd
from kerasnlp4su.layers.feedforward import FeedForward
from kerasnlp4su.layers.masks import AttentionMask, PaddingMask
from kerasnlp4su.layers.normalization import LayerNormalization
from kerasnlp4su.layers.pooling import TokenSelect
from kerasnlp4su.layers.position import PositionEmbedding
from kerasnlp4su.layers.remat import Rematerialisable, outside_remat_scope
from kerasnlp4su.models import cache as kv_cache
from kerasnlp4su.models import registry
from kerasnlp4su.models.hf import HFCheckpointReader
from kerasnlp4su.models.transformer_model import TransformerModel

APPLICATIONS = ("encoder", "lm", "unilm")


class Transformer:
    """Builds a functional `keras.Model` from hyper-parameters (bert4keras style).

    Subclasses override the `apply_*` hooks and `variable_mapping`. Layers
    are created through `self.apply`, which reuses a layer when its name is
    seen again: that is how ALBERT shares one block and how the MLM head
    reuses the token embedding.

    The built model is in `self.model`; its inputs are `[token_ids,
    segment_ids]` (plus the conditional-LayerNorm input when used).

    Example:
    >>> t = BERT(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...          num_attention_heads=2, intermediate_size=16)
    >>> model = t.build()
    """

    #: activation used when a config says just "gelu"; subclasses state the
    #: form their official code uses.
    official_gelu = "gelu_erf"
    #: `'post'` (BERT) or `'pre'` normalisation.
    norm_position = "post"
    #: `'learned'` absolute embeddings, `'rotary'` (RoPE inside attention) or `'relative'`
    #: (terms from `attention_position_arguments`, NEZHA).
    position_encoding = "learned"
    #: whether dense layers carry biases and norms carry beta/gamma.
    use_bias = True
    layer_norm_kwargs = {"epsilon": 1e-12}
    #: whether a LayerNorm follows the summed embeddings (GPT and GPT-2 have none).
    embedding_norm = True
    #: look segment ids up in the token table (CDial-GPT's speaker tokens)
    #: instead of a segment table of their own.
    shared_segment_embeddings = False
    #: the registered model name (`kerasnlp4su.models.registry.register_family`
    #: sets it, and `family` and `checkpoint_families`, for a family's models).
    model_type = "transformer"
    #: the model family (`kerasnlp4su.models.registry.FAMILIES`), None for custom models.
    family = None
    #: checkpoint families this model reads; loading another family's
    #: checkpoint is an error even if every variable is found. `None`
    #: (custom models) skips the check.
    checkpoint_families = None

    def __init__(self, vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
                 intermediate_size, hidden_act="gelu", dropout_rate=0.0,
                 attention_dropout_rate=0.0, embedding_size=None, attention_head_size=None,
                 attention_key_size=None, max_position=512, segment_vocab_size=2,
                 sequence_length=None, keep_tokens=None, compound_tokens=None,
                 initializer_range=0.02, with_pool=False, with_nsp=False, with_mlm=False,
                 application="encoder", layer_norm_cond=None, layer_norm_cond_hidden_size=None,
                 layer_norm_cond_hidden_act=None, attention_type="softmax",
                 attention_scale="standard", layer_norm_epsilon=None, hierarchical_position=None,
                 custom_position_ids=False, residual_attention_scores=False,
                 ignore_invalid_weights=False, autoresize_weights=False, layers=None,
                 prefix=None, additional_input_layers=None, name=None, **kwargs):
        if application not in APPLICATIONS:
            raise ValueError(f"application must be one of {APPLICATIONS}, got {application!r}")
        if hidden_size % num_attention_heads and attention_head_size is None:
            raise ValueError(
                f"hidden_size {hidden_size} is not divisible by num_attention_heads "
                f"{num_attention_heads}; set attention_head_size explicitly")
        if keep_tokens is not None:
            vocab_size = len(keep_tokens)
        if compound_tokens is not None:
            vocab_size += len(compound_tokens)
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.attention_head_size = int(attention_head_size or hidden_size // num_attention_heads)
        self.attention_key_size = int(attention_key_size or self.attention_head_size)
        self.intermediate_size = int(intermediate_size)
        self.hidden_act = resolve_gelu(self.official_gelu) if hidden_act == "gelu" else hidden_act
        get_activation(self.hidden_act)
        self.dropout_rate = float(dropout_rate or 0.0)
        self.attention_dropout_rate = float(attention_dropout_rate or 0.0)
        self.embedding_size = int(embedding_size or hidden_size)
        self.max_position = int(max_position)
        self.segment_vocab_size = int(segment_vocab_size)
        self.sequence_length = sequence_length
        # bert4keras's build options (README, 'bert4keras names').
        self.hierarchical_position = hierarchical_position
        self.custom_position_ids = bool(custom_position_ids)
        self.residual_attention_scores = bool(residual_attention_scores)
        self.ignore_invalid_weights = bool(ignore_invalid_weights)
        self.autoresize_weights = bool(autoresize_weights)
        self.layer_prefix = prefix or ""
        self.additional_input_layers = additional_input_layers
        positions = self.max_position ** 2 if hierarchical_position else self.max_position
        if self.position_encoding == "learned" and sequence_length is not None \
                and sequence_length > positions and not self.custom_position_ids:
            raise ValueError(
                f"sequence_length {sequence_length} exceeds max_position {self.max_position} "
                f"(the {self.model_type} position table has {self.max_position} rows; "
                "hierarchical_position=True reaches max_position ** 2)")
        self.keep_tokens = keep_tokens
        self.compound_tokens = compound_tokens
        self.initializer_range = float(initializer_range)
        self.with_pool = with_pool or bool(with_nsp)
        self.with_nsp = with_nsp
        # LM and UniLM only make sense with a token-prediction head.
        self.with_mlm = with_mlm or (application in ("lm", "unilm"))
        self.application = application
        self.layer_norm_cond = layer_norm_cond
        self.layer_norm_cond_hidden_size = layer_norm_cond_hidden_size
        self.layer_norm_cond_hidden_act = layer_norm_cond_hidden_act or "linear"
        self.attention_type = attention_type
        self.attention_scale = attention_scale
        if attention_type == "linear" and application == "unilm":
            raise ValueError("application='unilm' needs softmax attention; "
                             "linear attention supports 'encoder' and 'lm' only")
        if layer_norm_epsilon is not None:
            # An instance attribute: the class default (the official epsilon) stays.
            self.layer_norm_kwargs = dict(self.layer_norm_kwargs, epsilon=float(layer_norm_epsilon))
        self.name = name or self.model_type
        self.unused_config = kwargs
        # `layers=` shares another builder's layers (by name) with this one.
        self.layers = {} if layers is None else layers
        self.model = None
        self.attention_scores = None

    # ----------------------------------------------------------------- utils
    @property
    def initializer(self):
        return keras.initializers.TruncatedNormal(stddev=self.initializer_range)

    def apply(self, inputs, layer_cls=None, name=None, call_kwargs=None, **layer_kwargs):
        """Create (or reuse, by name) a layer and call it on `inputs`.

        Names get the builder's `prefix` (bert4keras's `prefix=`); the
        layer table may be shared with another builder (`layers=`). Inside a
        `keras.RematScope` only the layers bert4keras recomputed under
        `RECOMPUTE=1` (`Rematerialisable` ones) take the scope's mode;
        embeddings, dropout and residual adds are created outside it.
        """
        name = self.layer_prefix + name
        if name not in self.layers:
            if layer_cls is None:
                raise KeyError(f"no layer named {name!r} has been created yet")
            recomputed = isinstance(layer_cls, type) and issubclass(layer_cls, Rematerialisable)
            scope = contextlib.nullcontext() if recomputed else outside_remat_scope()
            with scope:
                self.layers[name] = layer_cls(name=name, **layer_kwargs)
        return self.layers[name](inputs, **(call_kwargs or {}))

    def norm(self, x, name):
        """Apply a (possibly conditional) LayerNorm named `name`."""
        kwargs = dict(self.layer_norm_kwargs)
        if self.cond is not None:
            kwargs.update(conditional=True, hidden_units=self.layer_norm_cond_hidden_size,
                          hidden_activation=self.layer_norm_cond_hidden_act,
                          hidden_initializer=self.initializer)
            x = [x, self.cond]
        return self.apply(x, LayerNormalization, name=name, **kwargs)

    def dropout(self, x, rate, name):
        if not rate:
            return x
        return self.apply(x, keras.layers.Dropout, name=name, rate=rate)

    # ------------------------------------------------------------ the build
    def build(self):
        """Create the Keras model; returns it (also kept in `self.model`)."""
        if self.model is not None:
            return self.model
        inputs = self.build_inputs()
        self.set_inputs(self.model_inputs, self.additional_input_layers)
        self.attention_scores = None
        x = self.apply_embeddings(inputs)
        self.attention_mask, self.padding_mask = self.build_masks(inputs)
        self.mask_sources = list(inputs)
        for index in range(self.num_hidden_layers):
            x = self.apply_block(x, index)
        outputs = self.apply_final_layers(x)
        self.set_outputs(outputs)
        self.model = TransformerModel(self.inputs, outputs, name=self.name)
        return self.model

    # ---------------------------------------- bert4keras's builder interface
    def set_inputs(self, inputs, additional_input_layers=None):
        """Set `inputs` (a list) and `input` (one tensor, or the list), as bert4keras.

        `additional_input_layers` (a tensor or a list) are appended: inputs
        the model needs beyond its own, e.g. what a conditional LayerNorm's
        condition is computed from.
        """
        inputs = [] if inputs is None else list(inputs) if isinstance(inputs, (list, tuple)) \
            else [inputs]
        if additional_input_layers is not None:
            extra = additional_input_layers
            inputs += list(extra) if isinstance(extra, (list, tuple)) else [extra]
        self.inputs = inputs
        self.input = inputs if len(inputs) > 1 else inputs[0]

    def set_outputs(self, outputs):
        """Set `outputs` (a list) and `output` (one tensor, or the list), as bert4keras."""
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        self.outputs = outputs
        self.output = outputs if len(outputs) > 1 else outputs[0]

    def apply_main_layers(self, inputs, index):
        """Block `index` applied to `inputs` (bert4keras's name; BERT-of-Theseus uses it).

        The attention masks come from the token (and segment) ids `inputs`
        is computed from, which may be another builder's inputs: bert4keras
        scripts feed one model's embeddings into another's blocks.
        """
        sources = _input_ancestors(inputs)
        saved = getattr(self, "attention_mask", None), getattr(self, "padding_mask", None)
        own = getattr(self, "mask_sources", None)  # the ids the built model's masks come from
        if own is None or not all(any(s is t for s in sources) for t in own):
            by_role = {}
            for tensor in sources:
                for role in ("Input-Token", "Input-Segment"):
                    if tensor.name.endswith(role):
                        by_role.setdefault(role, tensor)
            if "Input-Token" not in by_role:
                raise ValueError("apply_main_layers: the inputs are computed from no "
                                 "'Input-Token' input, so the attention mask is unknown")
            ids = [by_role[role] for role in ("Input-Token", "Input-Segment") if role in by_role]
            self.attention_mask, self.padding_mask = self.build_masks(ids)
        try:
            return self.apply_block(inputs, index)
        finally:
            self.attention_mask, self.padding_mask = saved

    def build_inputs(self):
        """`[token_ids, segment_ids, position_ids]` (segments when `segment_vocab_size > 0`,
        positions when `custom_position_ids`); `model_inputs` adds the LayerNorm condition."""
        token_ids = keras.Input(shape=(self.sequence_length,), dtype="int32",
                                name=self.layer_prefix + "Input-Token")
        inputs = [token_ids]
        if self.segment_vocab_size > 0:
            inputs.append(keras.Input(shape=(self.sequence_length,), dtype="int32",
                                      name=self.layer_prefix + "Input-Segment"))
        if self.custom_position_ids:
            inputs.append(keras.Input(shape=(self.sequence_length,), dtype="int32",
                                      name=self.layer_prefix + "Input-Position"))
        self.cond = None
        self.model_inputs = list(inputs)
        if self.layer_norm_cond is not None:
            if isinstance(self.layer_norm_cond, int):
                self.cond = keras.Input(shape=(self.layer_norm_cond,),
                                        name=self.layer_prefix + "Input-LayerNorm-Condition")
            else:
                self.cond = self.layer_norm_cond
            # A condition computed from other inputs (bert4keras's conditional
            # LM) reaches the model through `additional_input_layers`.
            if _is_input(self.cond):
                self.model_inputs.append(self.cond)
        return inputs

    def build_masks(self, inputs, step=None):
        """Additive attention bias (softmax) and key padding mask (linear).

        In a cached decoding step after the prefix (`step`, see
        `kerasnlp4su.models.cache`) the new tokens see every cached
        non-padding token and, causally, each other.
        """
        token_ids = inputs[0]
        if step is not None and not step.is_prefix:
            return step.attention_bias(token_ids), None
        if self.application == "unilm" and len(inputs) < 2:
            raise ValueError("application='unilm' needs segment ids (segment_vocab_size > 0)")
        padding = self.apply(token_ids, PaddingMask, name="Padding-Mask")
        if self.attention_type == "linear":
            return None, padding
        if self.application == "unilm":
            bias = self.apply(inputs[:2], AttentionMask, name="Attention-Mask", mode="unilm")
        else:
            mode = "lm" if self.application == "lm" else "padding"
            bias = self.apply(token_ids, AttentionMask, name="Attention-Mask", mode=mode)
        return bias, None

    def apply_embeddings(self, inputs, step=None):
        x = self.apply(inputs[0], Embedding, name="Embedding-Token", input_dim=self.vocab_size,
                       output_dim=self.embedding_size, mask_zero=True,
                       embeddings_initializer=self.initializer)
        if self.segment_vocab_size > 0:
            if self.shared_segment_embeddings:
                s = self.apply(inputs[1], name="Embedding-Token")
                # Only token ids mark padding, not a segment id 0 looked up there.
                add_kwargs = {"mask_inputs": (0,)}
            else:
                s = self.apply(inputs[1], Embedding, name="Embedding-Segment",
                               input_dim=self.segment_vocab_size, output_dim=self.embedding_size,
                               embeddings_initializer=self.initializer)
                add_kwargs = {}
            x = self.apply([x, s], MaskedAdd, name="Embedding-Token-Segment", **add_kwargs)
        if self.position_encoding == "learned":
            if self.custom_position_ids:
                x = [x, inputs[2 if self.segment_vocab_size > 0 else 1]]
            x = self.apply(x, PositionEmbedding, name="Embedding-Position",
                           input_dim=self.max_position, output_dim=self.embedding_size,
                           embeddings_initializer=self.initializer,
                           hierarchical=self.hierarchical_position,
                           custom_position_ids=self.custom_position_ids,
                           call_kwargs=None if step is None or self.custom_position_ids
                           else {"offset": step.position_offset})
        if self.embedding_norm:
            x = self.norm(x, "Embedding-Norm")
        x = self.dropout(x, self.dropout_rate, "Embedding-Dropout")
        if self.embedding_size != self.hidden_size:
            x = self.apply(x, Dense, name="Embedding-Mapping",
                           units=self.hidden_size, kernel_initializer=self.initializer,
                           use_bias=self.use_bias)
        return x

    def block_names(self, index):
        """Names of block `index`'s attention and FFN layers (ALBERT shares them)."""
        return f"Transformer-{index}-MultiHeadSelfAttention", f"Transformer-{index}-FeedForward"

    def apply_block(self, x, index, step=None):
        """Block `index`: self-attention then feed-forward, each a `residual`.

        `step` is None while building the graph and a `DecodingStep` in a
        cached decoding pass (its masks replace the model's, and the
        attention reads and writes the block's cache entry). An override
        that cannot use a cache should leave `step` out of its signature:
        cached decoding then refuses the model with a clear error.
        """
        attention_name, ffn_name = self.block_names(index)
        attention_kwargs = dict(
            heads=self.num_attention_heads, head_size=self.attention_head_size,
            key_size=self.attention_key_size, out_dim=self.hidden_size,
            use_bias=self.use_bias, attention_dropout=self.attention_dropout_rate,
            scale=self.attention_scale, attention_type=self.attention_type,
            causal=(self.attention_type == "linear" and self.application == "lm"),
            position_encoding="rotary" if self.position_encoding == "rotary" else None,
            kernel_initializer=self.initializer)
        masks = self if step is None else step  # the graph's masks, or this pass's
        call_kwargs = {}
        if masks.attention_mask is not None:
            call_kwargs["attention_mask"] = masks.attention_mask
        if masks.padding_mask is not None:
            call_kwargs["padding_mask"] = masks.padding_mask
        call_kwargs.update(self.attention_position_arguments(x, step))
        if self.residual_attention_scores:
            self.add_residual_scores(attention_name, attention_kwargs, call_kwargs, step)
        x = self.residual(x, attention_name, MultiHeadAttention, attention_kwargs, call_kwargs,
                          cache_key=index, step=step)
        ffn_kwargs = dict(units=self.intermediate_size, activation=self.hidden_act,
                          use_bias=self.use_bias, kernel_initializer=self.initializer)
        return self.residual(x, ffn_name, FeedForward, ffn_kwargs)

    def sublayer_norms(self, name):
        """`(before, after)`: names of the norms around sublayer `name`'s residual (None: none).

        `norm_position` decides by default; a family with its own placement
        (GPT2-ML: none around attention, both around the feed-forward)
        overrides this.
        """
        if self.norm_position == "pre":
            return f"{name}-Norm", None
        return None, f"{name}-Norm"

    def attention_position_arguments(self, x, step=None):
        """Extra self-attention call arguments carrying positions; none by default.

        NEZHA returns its relative key/value terms here. During cached
        decoding (`step`, a `models.cache.DecodingStep`) the new queries start
        at position `step.length` and the keys fill the cache's capacity.
        """
        return {}

    def residual(self, x, name, layer_cls, layer_kwargs, call_kwargs=None, cache_key=None,
                 step=None):
        """`x + sublayer(x)` with the norms `sublayer_norms(name)` places before and after.

        With a decoding `step` and a `cache_key` (the block index) the
        sublayer is a self-attention that reads and extends that entry of
        the KV cache.
        """
        shortcut = x
        norm_before, norm_after = self.sublayer_norms(name)
        if norm_before:
            x = self.norm(x, norm_before)
        if step is not None and cache_key is not None:
            call_kwargs = dict(call_kwargs or {}, **step.self_attention_kwargs(cache_key, x))
            x, kv = self.apply(x, layer_cls, name=name, call_kwargs=call_kwargs)
            step.write_self(cache_key, kv)
        else:
            x = self.apply(x, layer_cls, name=name, call_kwargs=call_kwargs, **layer_kwargs)
            if isinstance(x, (list, tuple)):  # [output, attention scores] (RealFormer)
                x, self.attention_scores = x
        x = self.dropout(x, self.dropout_rate, f"{name}-Dropout")
        x = self.apply([shortcut, x], keras.layers.Add, name=f"{name}-Add")
        if norm_after:
            x = self.norm(x, norm_after)
        return x

    def add_residual_scores(self, attention_name, attention_kwargs, call_kwargs, step=None):
        """RealFormer (bert4keras's `residual_attention_scores`): the attention returns its
        scores, and the previous layer's scores join this layer's attention bias."""
        if step is not None:
            raise NotImplementedError(
                "residual_attention_scores models cannot decode with a KV cache; "
                "decode with use_cache=False")
        attention_kwargs["return_attention_scores"] = True
        if self.attention_scores is None:
            return
        bias = call_kwargs.get("attention_mask")
        call_kwargs["attention_mask"] = self.attention_scores if bias is None else self.apply(
            [bias, self.attention_scores], keras.layers.Add,
            name=f"{attention_name}-Attention-Bias")

    def apply_final_layers(self, x):
        """Pooler / NSP / MLM heads with bert4keras's output conventions.

        Returns the sequence output alone, or the single head's output when
        one head is on, or the list of head outputs when several are.
        """
        sequence_output = x
        outputs = [x]
        if self.with_pool:
            pool_activation = "tanh" if self.with_pool is True else self.with_pool
            p = self.apply(x, TokenSelect, name="Pooler", index=0)
            p = self.apply(p, Dense, name="Pooler-Dense", units=self.hidden_size,
                           activation=pool_activation, kernel_initializer=self.initializer)
            if self.with_nsp:
                nsp_activation = "softmax" if self.with_nsp is True else self.with_nsp
                p = self.apply(p, Dense, name="NSP-Proba", units=2,
                               activation=nsp_activation, kernel_initializer=self.initializer)
            outputs.append(p)
        if self.with_mlm:
            outputs.append(self.apply_mlm_head(sequence_output))
        if len(outputs) == 1:
            return outputs[0]
        if len(outputs) == 2:
            return outputs[1]
        return outputs[1:]

    def apply_mlm_head(self, x):
        mlm_activation = "softmax" if self.with_mlm is True else self.with_mlm
        x = self.apply(x, Dense, name="MLM-Dense", units=self.embedding_size,
                       activation=get_activation(self.hidden_act),
                       kernel_initializer=self.initializer)
        x = self.norm(x, "MLM-Norm")
        x = self.apply(x, name="Embedding-Token", call_kwargs={"mode": "dense"})
        x = self.apply(x, BiasAdd, name="MLM-Bias")
        return self.apply(x, keras.layers.Activation, name="MLM-Activation",
                          activation=mlm_activation, dtype="float32")

    # --------------------------------------------------- cached decoding
    def cached_forward(self, inputs, cache=None):
        """Run the built model on new tokens only, reusing keys/values of earlier ones.

        `inputs` is `[token_ids, segment_ids]` of the new tokens, shape
        `(batch, n)`. With `cache=None` this is the prefix pass: the
        application's mask (LM causal, UniLM) applies within the tokens.
        With a cache, the new tokens see every cached token (except padding)
        and, causally, each other. Returns `(outputs, new_cache)`: `outputs`
        has the model's usual structure for the new positions, `new_cache`
        is a `KVCache` (`kerasnlp4su.models.cache`) whose `self_kv[i]` holds
        block i's keys/values, `(batch, heads, capacity, size)`.

        The buffers have a fixed capacity (`reserve_cache` sets it; the
        prefix pass returns exactly its length) and each step writes into
        them, so every step has the same shapes and compiles once. When
        `length` is a Python int and the new tokens do not fit, the cache
        grows (doubling); a traced `length` must fit, as the caller
        reserved. A family whose blocks cannot use a cache raises
        `NotImplementedError`.

        Example:
        >>> probs, cache = t.cached_forward([prefix_ids, prefix_segments])   # doctest: +SKIP
        >>> cache = t.reserve_cache(cache, 64)  # room for 64 positions       # doctest: +SKIP
        >>> probs, cache = t.cached_forward([next_ids, next_segments], cache)  # doctest: +SKIP
        """
        return kv_cache.cached_forward(self, inputs, cache)

    @staticmethod
    def reserve_cache(cache, capacity):
        """The cache with room for `capacity` positions (see `kerasnlp4su.models.cache.reserve_cache`)."""
        return kv_cache.reserve_cache(cache, capacity)

    @staticmethod
    def reorder_cache(cache, indices):
        """Select/reorder batch rows of a cache (beam search keeps the best beams)."""
        return kv_cache.reorder_cache(cache, indices)

    # ------------------------------------------------------ checkpoint names
    def variable_mapping(self):
        """`{keras variable path: official checkpoint variable name}`."""
        raise NotImplementedError

    def checkpoint_transforms(self):
        """`{official name: (load_fn, save_fn)}` for variables stored differently."""
        return {}

    def embedding_variables(self):
        """Official names whose first axis is the vocabulary (for `keep_tokens`)."""
        return []

    def optional_variables(self):
        """Model variables that official checkpoints never hold."""
        return {v.path for v in self.model.weights
                if any(part in v.path for part in ("/gamma_dense/", "/beta_dense/", "/hidden_dense/"))}

    def keras_variable_mapping(self):
        """`variable_mapping()` with the layer-name `prefix` on every Keras path."""
        return {self.layer_prefix + path: name for path, name in self.variable_mapping().items()}

    # ------------------------------------------------------- load and save
    def load_weights_from_checkpoint(self, checkpoint_path, strict=True, config=None):
        """Load an official checkpoint (TF1 prefix or HF directory) into `self.model`.

        Every model variable must find its checkpoint variable with the same
        shape unless `strict=False`. `config` (the release's config dict, as
        `build_transformer_model` passes it) lets the family check tell apart
        families whose variable names are identical (NEZHA and RoFormer v1).
        Returns the loading report.
        """
        reader = open_checkpoint(checkpoint_path,
                                 open_hf=lambda path: HFCheckpointReader(path, self))
        transforms = {name: load for name, (load, _) in self.checkpoint_transforms().items()}
        for name in self.embedding_variables():
            transforms[name] = _chain(transforms.get(name), self.select_tokens)
        mapping, optional = self.keras_variable_mapping(), set(self.optional_variables())
        # Layers the caller built around the model (additional_input_layers,
        # a condition's embedding) are not the checkpoint's business.
        own = {id(w) for layer in self.layers.values() for w in layer.weights}
        optional |= {v.path for v in self.model.weights if id(v) not in own}
        if self.ignore_invalid_weights:
            mapping, optional = self._skip_absent_weights(reader, mapping, optional)
        if self.autoresize_weights:
            transforms = self._autoresize_transforms(reader, mapping, transforms)
        return load_checkpoint_weights(
            self.model, reader, mapping, transforms, optional,
            strict, self.model_type, self.checkpoint_families, registry.signatures(), config)

    def _skip_absent_weights(self, reader, mapping, optional):
        """bert4keras's `ignore_invalid_weights`: variables the checkpoint lacks keep their
        initial values, with a warning naming them (shape mismatches still raise)."""
        available = reader.names()
        absent = {path: name for path, name in mapping.items() if name not in available}
        present = {v.path for v in self.model.weights}
        skipped = sorted(f"{path} <- {name}" for path, name in absent.items() if path in present)
        if skipped:
            warnings.warn(f"ignore_invalid_weights: {len(skipped)} variable(s) not in checkpoint "
                          f"{reader.path!r} keep their initial values:\n  " + "\n  ".join(skipped),
                          stacklevel=3)
        kept = {path: name for path, name in mapping.items() if path not in absent}
        return kept, optional | set(absent)

    def _autoresize_transforms(self, reader, mapping, transforms):
        """bert4keras's `autoresize_weights`: a checkpoint variable whose shape differs
        from the model's is resized with `snippets.orthogonally_resize`, then rescaled
        as bert4keras does so attention logits and FFN outputs keep their scale."""
        from kerasnlp4su.snippets import orthogonally_resize

        transforms = dict(transforms)
        available = reader.names()
        owners = {}  # top-level layer name -> layer (to tell attention and FFN weights)
        for layer in self.model.layers:
            owners[layer.name] = layer
        for variable in self.model.weights:
            name = mapping.get(variable.path)
            if name is None or name not in available:
                continue
            target = tuple(variable.shape)
            layer = owners.get(variable.path.split("/")[0])
            part = variable.path.split("/", 1)[1] if "/" in variable.path else ""

            def resize(value, target=target, layer=layer, part=part):
                value = np.asarray(value)
                if tuple(value.shape) == target:
                    return value
                resized = orthogonally_resize(value, target)
                return resized * _autoresize_factor(layer, part, value.shape, target,
                                                    self.hidden_act)

            transforms[name] = _chain(transforms.get(name), resize)
        return transforms

    def select_tokens(self, table):
        """Apply `keep_tokens` / `compound_tokens` to a vocabulary-indexed array."""
        if self.keep_tokens is not None:
            table = table[np.asarray(self.keep_tokens)]
        if self.compound_tokens is not None:
            extra = [np.mean(table[np.asarray(ids)], axis=0) for ids in self.compound_tokens]
            table = np.concatenate([table, np.stack(extra)], axis=0)
        return table

    def checkpoint_tensors(self):
        """`{official name: numpy array}` of the model's current weights."""
        mapping = self.keras_variable_mapping()
        savers = {name: save for name, (_, save) in self.checkpoint_transforms().items()}
        tensors = {}
        for variable in self.model.weights:
            name = mapping.get(variable.path)
            if name is None:
                continue
            value = keras.ops.convert_to_numpy(variable)
            value = savers[name](value) if name in savers else value
            if name in tensors and not np.array_equal(tensors[name], value):
                # Several model variables map to one official name (unshared
                # ALBERT): only identical copies fit the official layout.
                raise ValueError(
                    f"cannot write {variable.path!r} as {name!r}: another variable already "
                    "wrote different values to that name (layers that share one official "
                    "variable have diverged)")
            tensors[name] = value
        return tensors

    def save_weights_as_checkpoint(self, filename):
        """Write the weights as an official TF1 checkpoint (atomic)."""
        return write_tf1_checkpoint(filename, self.checkpoint_tensors())


def _autoresize_factor(layer, part, old_shape, new_shape, hidden_act):
    """bert4keras's rescaling of a resized weight (`Transformer.load_weights_from_checkpoint`).

    Query/key kernels and biases of a scaled attention: `(new / old) ** 0.25` of
    their last axis, so `q.k / sqrt(d)` keeps its size. FFN: the first dense
    by `sqrt(new / old)` of its last axis, the second by `sqrt(old / new)` of its
    first; with relu-like activations every FFN weight takes the second rule.
    """
    if isinstance(layer, MultiHeadAttention):
        if part.split("/")[0] in ("query", "key") and layer.scale != "none":
            return (new_shape[-1] / old_shape[-1]) ** 0.25
    elif isinstance(layer, FeedForward):
        if part.startswith("intermediate/") and hidden_act not in ("relu", "leaky_relu"):
            return np.sqrt(new_shape[-1] / old_shape[-1])
        return np.sqrt(old_shape[0] / new_shape[0])
    return 1.0


def _is_input(tensor):
    """Whether `tensor` is a `keras.Input` (not computed from other tensors)."""
    history = getattr(tensor, "_keras_history", None)
    return history is not None and isinstance(history.operation, keras.layers.InputLayer)


def _input_ancestors(tensors):
    """The `keras.Input` tensors that symbolic `tensors` are computed from."""
    found, seen = [], set()
    stack = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    while stack:
        tensor = stack.pop()
        history = getattr(tensor, "_keras_history", None)
        if history is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if isinstance(history.operation, keras.layers.InputLayer):
            found.append(tensor)
            continue
        stack.extend(history.operation._inbound_nodes[history.node_index].input_tensors)
    return found


def _chain(first, second):
    if first is None:
        return second
    return lambda value: second(first(value))
