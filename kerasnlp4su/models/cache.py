"""The KV cache of a decoding step, and the cached forward pass of a `Transformer`.

`cached_forward(transformer, inputs, cache)` replays a built model's layers
on the newest tokens only: each self-attention layer reads the keys and
values of earlier tokens from a `KVCache` and writes its own. The model's
hooks (`apply_embeddings`, `build_masks`, `apply_block`, `residual`) take a
`step` argument, a `DecodingStep`: `None` while `build()` makes the graph,
and during a cached pass the object that hands each block its cache entry
and collects the new one. Nothing is stored on the transformer.

The buffers have a fixed capacity (`reserve_cache`), so every one-token
step has the same shapes and compiles once (`kerasnlp4su.decoding.cached`
traces it with `tf.function` or `jax.jit`).

Encoder-decoder models (T5): how a decoder stack uses this
----------------------------------------------------------
A `KVCache` has two kinds of entries per decoder block:

* `self_kv[i]`: the block's causal self-attention keys/values, one slot per
  generated position, written step by step exactly as for BERT/UniLM (the
  block calls `residual(..., step=step, cache_key=i)`, or passes
  `step.self_attention_kwargs(i, x)` to its `MultiHeadAttention` and gives
  the returned `(keys, values)` to `step.write_self(i, ...)`).
* `cross_kv[i]`: the keys/values of the block's cross-attention over the
  encoder output. They do not change while decoding, so they are computed
  once: in the prefix pass (`step.is_prefix`) the block projects the
  encoder output with the cross-attention layer's key/value projections
  and stores the result with `step.write_cross(i, (keys, values))`; in every
  later step `step.cross(i)` returns them and the encoder output is not
  needed any more. `cross_keep` (the encoder's padding keep-mask, set with
  `step.set_cross_keep`) masks the padded source positions each step.

So a T5 decoder's cached step is: run the encoder once, then
`cached_forward` over the decoder stack with the encoder output given to
the prefix pass, then one-token steps that carry only the cache. Beam search
reorders both kinds of entries (`reorder_cache`); `reserve_cache` grows only
the self-attention buffers, as cross entries have the source's length.
(T5 attention takes the precomputed keys/values as a call argument of
`MultiHeadAttention`, added with T5; a relative position bias is computed
from `step.length` the way `build_masks` computes the causal mask here.)
"""

import functools
import inspect
from typing import Any, NamedTuple

import keras
import numpy as np

from kerasnlp4su.backend import NEG_INF, no_grad, write_at

__all__ = ["DecodingStep", "KVCache", "cached_forward", "check_cache_support", "grow_cache",
           "reorder_cache", "reserve_cache"]

#: the hooks a cached pass calls with `step=`; a family overriding one of
#: them without that argument cannot decode with a cache.
STEP_HOOKS = ("apply_embeddings", "build_masks", "apply_block")


class KVCache(NamedTuple):
    """Keys and values of the tokens a decoder has seen, in fixed-capacity buffers.

    * `length`: positions written so far (a Python int eagerly, a scalar
      int32 tensor inside a compiled step).
    * `keep`: `(batch, capacity)` bool, True at written non-padding positions.
    * `self_kv`: one `(keys, values)` pair per block, each `(batch, heads,
      capacity, size)`; slots past `length` are unwritten.
    * `cross_kv`: one `(keys, values)` pair per decoder block of an
      encoder-decoder model, `(batch, heads, source length, size)`, written
      once by the prefix pass; `()` for decoder-only models.
    * `cross_keep`: `(batch, source length)` bool keep-mask of the encoder
      positions, or None.
    * `shift`: `(batch,)` int32 or None. Rows of a batch whose prompts had
      different lengths are right-padded to one length, so a row's next
      token sits `shift` slots after its position: the cached steps embed
      position `length - shift` (learned absolute positions only; see
      `DecodingStep.position_offset`). None: every row's position is `length`.

    A named tuple is a tree node to `tf.nest`, `jax.tree_util`, optree
    (`keras.tree`) and torch's pytree without any registration, so a cache
    passes through `tf.function` and `jax.jit` as it is. For code written
    against the earlier dict cache, `cache["length"]`, `cache["keep"]` and
    `cache["layers"]` (`{block index: (keys, values)}`) still read.

    Example:
    >>> _, cache = t.cached_forward([prefix_ids, prefix_segments])  # doctest: +SKIP
    >>> cache.length, tuple(cache.self_kv[0][0].shape)  # doctest: +SKIP
    (7, (1, 12, 7, 64))
    """

    length: Any
    keep: Any
    self_kv: tuple = ()
    cross_kv: tuple = ()
    cross_keep: Any = None
    shift: Any = None

    def __getitem__(self, key):
        if isinstance(key, str):
            if key == "layers":
                return dict(enumerate(self.self_kv))
            if key in ("length", "keep"):
                return getattr(self, key)
            raise KeyError(f"KVCache has no entry {key!r}; its fields are {self._fields}")
        return tuple.__getitem__(self, key)

    @property
    def capacity(self):
        """Number of positions the self-attention buffers hold."""
        return int(keras.ops.shape(self.keep)[1])

    def tensors(self):
        """The cache as a flat list: `length, keep, k0, v0, k1, v1, ...`, then the cross entries.

        Compiled decoding steps take and return flat lists: binding nested
        structures costs more per call than a one-token step computes.
        """
        flat = [self.length, self.keep]
        flat += [t for kv in self.self_kv for t in kv]
        if self.cross_keep is not None:
            flat.append(self.cross_keep)
        flat += [t for kv in self.cross_kv for t in kv]
        if self.shift is not None:
            flat.append(self.shift)
        return flat

    def with_tensors(self, flat):
        """A cache of this one's structure holding `flat` (what `tensors` returns)."""
        flat = list(flat)
        n_self, n_cross = 2 * len(self.self_kv), 2 * len(self.cross_kv)
        expected = 2 + n_self + (self.cross_keep is not None) + n_cross + (self.shift is not None)
        if len(flat) != expected:
            raise ValueError(f"a flat KVCache of this structure has {expected} tensors, got {len(flat)}")
        rest = flat[2 + n_self:]
        cross_keep = rest.pop(0) if self.cross_keep is not None else None
        shift = rest.pop() if self.shift is not None else None
        return KVCache(flat[0], flat[1], _pairs(flat[2:2 + n_self]), _pairs(rest), cross_keep,
                       shift)


def _pairs(flat):
    return tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


def reserve_cache(cache, capacity):
    """`cache` with room for `capacity` positions (zero keys, `keep` False past `length`).

    Reserving what a generation needs up front (the decoders reserve
    prefix + `maxlen`) keeps every step's shapes the same. Cross-attention
    entries keep their (source) length.
    """
    current = cache.capacity
    if capacity < current:
        raise ValueError(f"cannot shrink a KV cache from {current} to {capacity} positions")
    return grow_cache(cache, capacity - current)


def grow_cache(cache, extra):
    """`cache` with `extra` more positions (an int); works inside compiled code, where the
    capacity itself may be unknown."""
    if extra == 0:
        return cache

    def pad(t, axis):
        widths = [[0, 0]] * len(t.shape)
        widths[axis] = [0, extra]
        return keras.ops.pad(t, widths)

    return cache._replace(keep=pad(cache.keep, 1),
                          self_kv=tuple((pad(k, 2), pad(v, 2)) for k, v in cache.self_kv))


def reorder_cache(cache, indices, self_only=False):
    """Select/reorder batch rows of a cache (beam search keeps the best beams).

    `self_only=True` reorders only what changes from beam to beam (`keep`
    and the self-attention entries): a beam search whose parents stay within
    each example's own rows leaves the cross-attention entries and `shift`,
    the same for all of an example's beams, where they are.
    """
    take = lambda t: keras.ops.take(t, indices, axis=0)  # noqa: E731
    self_kv = tuple((take(k), take(v)) for k, v in cache.self_kv)
    if self_only:
        return cache._replace(keep=take(cache.keep), self_kv=self_kv)
    return KVCache(cache.length, take(cache.keep), self_kv,
                   tuple((take(k), take(v)) for k, v in cache.cross_kv),
                   None if cache.cross_keep is None else take(cache.cross_keep),
                   None if cache.shift is None else take(cache.shift))


class DecodingStep:
    """What the model's hooks see during one cached pass (`None` during `build()`).

    `cache` is the `KVCache` of earlier tokens, or None in the prefix pass
    (the first one, over the conditioning tokens). `length` is the position
    of the first new token, `keep` the keep-mask of every position including
    the new ones. `attention_mask` / `padding_mask` hold what `build_masks`
    returned for this pass, for the blocks to use.

    Example (inside a block that writes its own attention call):
    >>> kwargs = step.self_attention_kwargs(index, x)  # doctest: +SKIP
    >>> x, kv = attention(x, attention_mask=step.attention_mask, **kwargs)  # doctest: +SKIP
    >>> step.write_self(index, kv)  # doctest: +SKIP
    """

    def __init__(self, cache, keep, heads, key_size, head_size):
        self.cache = cache
        self.length = 0 if cache is None else cache.length
        self.keep = keep
        self.attention_mask = self.padding_mask = None
        self._sizes = heads, key_size, head_size
        self._self = {}
        self._cross = {} if cache is None else dict(enumerate(cache.cross_kv))
        self._cross_keep = None if cache is None else cache.cross_keep
        self._shift = None if cache is None else cache.shift

    @property
    def position_offset(self):
        """Position of the first new token: `length`, or `(batch, 1)` per row with a `shift`."""
        if self._shift is None:
            return self.length
        return self.length - keras.ops.expand_dims(keras.ops.cast(self._shift, "int32"), 1)

    @property
    def is_prefix(self):
        """True in the first pass, which starts the cache."""
        return self.cache is None

    # ------------------------------------------------------ self-attention
    def self_attention_kwargs(self, index, x):
        """`MultiHeadAttention` call arguments that make block `index` read and extend the cache.

        The layer then returns `(output, (keys, values))`; hand the pair to
        `write_self`. `x` is the attention input (for the batch and dtype of
        the empty cache the prefix pass starts from).
        """
        if self.cache is None:
            batch = keras.ops.shape(x)[0]
            heads, key_size, head_size = self._sizes
            empty = (keras.ops.zeros((batch, heads, 0, key_size), x.dtype),
                     keras.ops.zeros((batch, heads, 0, head_size), x.dtype))
            return {"cache": empty}
        if index >= len(self.cache.self_kv):
            raise ValueError(f"the KV cache has {len(self.cache.self_kv)} self-attention entries; "
                             f"block {index} asked for one")
        # Fixed-capacity buffers: the new keys/values are written at `length`.
        return {"cache": self.cache.self_kv[index], "cache_index": self.length}

    def write_self(self, index, kv):
        """Record block `index`'s self-attention `(keys, values)` after this pass."""
        self._self[index] = tuple(kv)

    # ----------------------------------------------------- cross-attention
    def cross(self, index):
        """Block `index`'s cached cross-attention `(keys, values)`, or None before they exist."""
        return self._cross.get(index)

    def write_cross(self, index, kv):
        """Store block `index`'s cross-attention `(keys, values)` (computed once, in the prefix)."""
        self._cross[index] = tuple(kv)

    @property
    def cross_keep(self):
        """The encoder's `(batch, source length)` keep-mask, or None."""
        return self._cross_keep

    def set_cross_keep(self, keep):
        """Record the encoder's keep-mask for the cross-attention of later steps."""
        self._cross_keep = keep

    # ---------------------------------------------------------------- masks
    def attention_bias(self, token_ids):
        """Additive bias letting the new tokens see all earlier non-padding tokens and,
        causally, each other: `(batch, 1, new, capacity)`."""
        n = keras.ops.shape(token_ids)[1]
        keys = keras.ops.arange(keras.ops.shape(self.keep)[1])
        queries = keras.ops.arange(n) + self.length
        allowed = keras.ops.logical_and(self.keep[:, None, None, :],
                                        (keys[None, :] <= queries[:, None])[None, None])
        return keras.ops.where(allowed, 0.0, NEG_INF)

    # --------------------------------------------------------------- result
    def new_cache(self, n, num_blocks, owner="the model"):
        """The `KVCache` after this pass over `n` new tokens; every block must have written."""
        missing = [i for i in range(num_blocks) if i not in self._self]
        if missing:
            raise NotImplementedError(
                f"{owner}: blocks {missing} wrote no self-attention cache entry in a cached "
                "decoding step, so their keys/values would be lost; an apply_block override must "
                "pass step= and cache_key= to residual (or call step.write_self)")
        cross = tuple(self._cross[i] for i in sorted(self._cross))
        return KVCache(self.length + n, self.keep, tuple(self._self[i] for i in range(num_blocks)),
                       cross, self._cross_keep, self._shift)


@functools.cache
def _hooks_without_step(cls):
    def takes_step(hook):
        parameters = inspect.signature(hook).parameters
        return "step" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())

    return [name for name in STEP_HOOKS if not takes_step(getattr(cls, name))]


def check_cache_support(transformer):
    """Raise a clear error when `transformer` cannot run a cached decoding step."""
    if transformer.model is None:
        raise ValueError("build() the model before decoding")
    if transformer.attention_type == "linear":
        raise ValueError("cached decoding needs softmax attention; this model was built with "
                         "attention_type='linear' (decode it with use_cache=False)")
    missing = _hooks_without_step(type(transformer))
    if missing:
        name = type(transformer).__name__
        raise NotImplementedError(
            f"{name} cannot run a cached decoding step: its {', '.join(missing)} "
            "take(s) no step argument, so the KV cache would be ignored; decode it with "
            "use_cache=False, or add step support (see kerasnlp4su.models.cache)")


def cached_forward(transformer, inputs, cache=None):
    """Run `transformer`'s built model on new tokens only, reusing the keys/values of earlier ones.

    See `Transformer.cached_forward`, which calls this. Returns `(outputs,
    new_cache)`.
    """
    check_cache_support(transformer)
    if cache is not None and not isinstance(cache, KVCache):
        raise TypeError(f"cache must be a KVCache (what cached_forward returns), got "
                        f"{type(cache).__name__}")
    inputs = [keras.ops.convert_to_tensor(i, "int32") for i in inputs]
    token_ids = inputs[0]
    n = keras.ops.shape(token_ids)[1]
    keep = keras.ops.not_equal(token_ids, 0)
    if cache is not None:
        length = cache.length
        if isinstance(length, (int, np.integer)) and isinstance(n, int) \
                and length + n > cache.capacity:
            cache = reserve_cache(cache, max(length + n, 2 * cache.capacity))
        keep = write_at(cache.keep, keep, cache.length, axis=1)
    # `length` may be a traced tensor: one compiled step serves every length.
    step = DecodingStep(cache, keep, transformer.num_attention_heads,
                        transformer.attention_key_size, transformer.attention_head_size)
    with no_grad():
        x = transformer.apply_embeddings(inputs, step=step)
        step.attention_mask, step.padding_mask = transformer.build_masks(inputs, step=step)
        for index in range(transformer.num_hidden_layers):
            x = transformer.apply_block(x, index, step=step)
        outputs = transformer.apply_final_layers(x)
    return outputs, step.new_cache(n, transformer.num_hidden_layers, type(transformer).__name__)
