"""Data helpers with bert4keras semantics: padding, truncation, batching.

Keras is imported lazily (only ``DataGenerator.to_pydataset`` needs it, and
``to_dataset`` needs TensorFlow), so tokenizer-only users stay fast to import.
"""

import builtins
import json
import os
import re
import threading
import unicodedata

import numpy as np

from kerasnlp4su.parallel import parallel_apply, parallel_apply_generator
from kerasnlp4su.serving import WebServing

__all__ = [
    "DataGenerator",
    "WebServing",
    "convert_to_str",
    "convert_to_unicode",
    "delete_arguments",
    "insert_arguments",
    "is_one_of",
    "is_string",
    "longest_common_subsequence",
    "longest_common_substring",
    "lowercase_and_normalize",
    "open",
    "orthogonally_resize",
    "parallel_apply",
    "parallel_apply_generator",
    "sequence_padding",
    "softmax",
    "strQ2B",
    "string_matching",
    "text_segmentate",
    "to_array",
    "truncate_sequences",
]

# Python 2 is gone: bert4keras's py2/py3 switches take their Python 3 values.
is_py2 = False
basestring = str


def is_string(s):
    """True for ``str`` (bert4keras's py2/py3 ``basestring`` check)."""
    return isinstance(s, str)


def string_matching(s, keywords):
    """True if any of the regular expressions `keywords` is found in `s`.

    >>> string_matching("Transformer-0-FeedForward", ["Norm", "Feed"])
    True
    """
    return any(re.search(k, s) for k in keywords)


def convert_to_unicode(text, encoding="utf-8", errors="ignore"):
    """`bytes` decoded to `str` (undecodable bytes dropped by default); `str` unchanged."""
    return text.decode(encoding, errors=errors) if isinstance(text, bytes) else text


# On Python 3 the text type is `str`, so both conversions mean the same.
convert_to_str = convert_to_unicode


def is_one_of(x, ys):
    """`x in ys` by identity (`in` compares with ==, which tensors answer elementwise)."""
    return any(x is y for y in ys)


def softmax(x, axis=-1):
    """NumPy softmax along `axis`, stable for large inputs.

    >>> softmax(np.array([0.0, np.log(3.0)])).round(2).tolist()
    [0.25, 0.75]
    """
    x = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return x / x.sum(axis=axis, keepdims=True)


def insert_arguments(**arguments):
    """Decorator: the method accepts these extra keyword arguments and stores them on `self`.

    Each name becomes `self.name` (the caller's value, else the default
    given here) before the method runs without it.

    >>> class A:
    ...     @insert_arguments(rate=0.1)
    ...     def __init__(self):
    ...         pass
    >>> A(rate=0.5).rate, A().rate
    (0.5, 0.1)
    """
    def decorate(method):
        def method_with_arguments(self, *args, **kwargs):
            for name, default in arguments.items():
                setattr(self, name, kwargs.pop(name, default))
            return method(self, *args, **kwargs)

        return method_with_arguments

    return decorate


def delete_arguments(*arguments):
    """Decorator: the method refuses these keyword arguments with a TypeError."""
    def decorate(method):
        def method_without_arguments(self, *args, **kwargs):
            for name in arguments:
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__} got an unexpected keyword "
                                    f"argument '{name}'")
            return method(self, *args, **kwargs)

        return method_without_arguments

    return decorate


def longest_common_substring(source, target):
    """Length of the longest common contiguous run, and its span `(i0, i1, j0, j1)`.

    `source[i0:i1] == target[j0:j1]`; of several longest runs, the first
    found scanning `source` then `target` is returned.

    >>> longest_common_substring("abcde", "xbcdy")
    (3, (1, 4, 1, 4))
    """
    best, span = 0, (0, 0, 0, 0)
    previous = [0] * (len(target) + 1)
    for i, s in enumerate(source, 1):
        current = [0] * (len(target) + 1)
        for j, t in enumerate(target, 1):
            if s == t:
                current[j] = previous[j - 1] + 1
                if current[j] > best:
                    best = current[j]
                    span = (i - best, i, j - best, j)
        previous = current
    return best, span


def longest_common_subsequence(source, target):
    """Length of the longest common subsequence, and its `(i, j)` index pairs.

    `source[i] == target[j]` for each pair, both increasing; one of the
    longest subsequences (the same one bert4keras returns).

    >>> longest_common_subsequence("abcd", "acbd")
    (3, [(0, 0), (1, 2), (3, 3)])
    """
    n, m = len(source), len(target)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if source[i - 1] == target[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i][j - 1], table[i - 1][j])
    length, pairs = table[n][m], []
    i, j = n - 1, m - 1
    while len(pairs) < length:
        if source[i] == target[j]:
            pairs.append((i, j))
            i, j = i - 1, j - 1
        elif table[i + 1][j] > table[i][j + 1]:
            j -= 1
        else:
            i -= 1
    return length, pairs[::-1]


class open:  # noqa: N801 - bert4keras's name shadows the builtin on purpose
    """A text file, optionally indexable by line: `f[i]` is line `i`, `len(f)` the line count.

    Like the builtin `open` otherwise (iteration, read/readline/readlines,
    write, seek/tell, `with`). `indexable=True` scans the file once for line
    offsets; a path string also caches them there as JSON (read back on
    the next open if it exists). Lines keep their newline, as with the
    builtin.

    >>> with open(path, encoding="utf-8", indexable=True) as f:  # doctest: +SKIP
    ...     print(len(f), f[10])
    """

    def __init__(self, name, mode="r", encoding=None, errors="strict", indexable=False):
        self.name = name
        self.file = builtins.open(name, mode, encoding=encoding, errors=errors)
        self.encoding = encoding
        self.errors = errors
        self.iterator = None
        if indexable:
            if isinstance(indexable, str) and os.path.exists(indexable):
                with builtins.open(indexable) as cache:
                    self.offsets = json.load(cache)
            else:
                self.create_indexes()
                if isinstance(indexable, str):
                    with builtins.open(indexable, "w") as cache:
                        json.dump(self.offsets, cache)

    def create_indexes(self):
        """Record the offset of every line (one pass over the file)."""
        self.offsets, offset = [], self.tell()
        while self.readline():
            self.offsets.append(offset)
            offset = self.tell()
        self.seek(0)

    def __getitem__(self, index):
        self.seek(self.offsets[index])
        return self.readline()

    def __len__(self):
        return len(self.offsets)

    def __iter__(self):
        return iter(self.file)

    def __next__(self):
        if self.iterator is None:
            self.iterator = iter(self.file)
        return next(self.iterator)

    next = __next__

    def read(self):
        return self.file.read()

    def readline(self):
        return self.file.readline()

    def readlines(self):
        return self.file.readlines()

    def write(self, text):
        self.file.write(convert_to_unicode(text) if "b" not in self.file.mode else text)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()

    def tell(self):
        return self.file.tell()

    def seek(self, offset=0):
        return self.file.seek(offset)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def to_array(*args):
    """``np.array`` each argument; a single argument is returned unwrapped."""
    results = [np.array(a) for a in args]
    return results[0] if len(args) == 1 else results


def strQ2B(ustring):
    """Full-width (全角) characters to their half-width (半角) forms.

    >>> strQ2B("ＡＢＣ，１２３　！")
    'ABC,123 !'
    """
    out = []
    for ch in ustring:
        code = ord(ch)
        if code == 0x3000:  # the ideographic space has no fixed offset
            code = 0x20
        elif 0xFF01 <= code <= 0xFF5E:
            code -= 0xFEE0
        out.append(chr(code))
    return "".join(out)


def lowercase_and_normalize(text):
    """Lower-case, NFD-decompose, then drop combining marks (category Mn).

    This is BERT's ``do_lower_case`` normalisation ("Crème" -> "creme").
    """
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")


def sequence_padding(inputs, length=None, value=0, seq_dims=1, mode="post"):
    """Pad (or cut) a list of arrays to a common length; returns one array.

    Args:
        inputs: sequences (lists or arrays) of equal rank.
        length: target length; an int applies to every padded dimension, a
            sequence gives one length per dimension. ``None`` uses the
            longest input along each dimension.
        value: padding value.
        seq_dims: how many leading dimensions to pad (2 for e.g. a batch of
            ``[seq, seq]`` matrices such as GlobalPointer labels).
        mode: ``"post"`` pads at the end, ``"pre"`` at the start. Like
            bert4keras, over-long inputs are always cut at the end.

    >>> sequence_padding([[1, 2, 3], [4]]).tolist()
    [[1, 2, 3], [4, 0, 0]]
    >>> sequence_padding([[1, 2, 3], [4]], length=2, mode="pre").tolist()
    [[1, 2], [0, 4]]
    """
    if mode not in ("post", "pre"):
        raise ValueError('"mode" argument must be "post" or "pre".')
    inputs = [np.asarray(x) for x in inputs]
    if not inputs:
        return np.array(inputs)
    if length is None:
        length = np.max([x.shape[:seq_dims] for x in inputs], axis=0)
    elif not hasattr(length, "__getitem__"):
        # bert4keras only allowed a scalar with seq_dims=1; broadcasting it is
        # the obvious meaning for seq_dims > 1.
        length = [length] * seq_dims
    length = [int(n) for n in length]
    if len(length) != seq_dims:
        raise ValueError(
            "length has %d entries but seq_dims=%d" % (len(length), seq_dims)
        )

    cut = tuple(slice(0, n) for n in length)
    outputs = []
    for x in inputs:
        x = x[cut]
        pad_width = [(0, 0)] * x.ndim
        for i in range(seq_dims):
            missing = length[i] - x.shape[i]
            pad_width[i] = (0, missing) if mode == "post" else (missing, 0)
        outputs.append(np.pad(x, pad_width, "constant", constant_values=value))
    return np.array(outputs)


def _truncation_counts(maxlen, lengths):
    """How many items bert4keras's loop pops from each sequence.

    bert4keras pops one item from the (first) longest sequence until the
    total fits; this computes the same result in closed form, so truncating
    a 100k-token document does not run 100k Python iterations.
    """
    total = sum(lengths)
    if total <= maxlen or not lengths:
        return [0] * len(lengths)
    maxlen = max(maxlen, 0)

    def capped(level):
        return sum(min(n, level) for n in lengths)

    lo, hi = 0, max(lengths)  # capped(lo) <= maxlen < capped(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if capped(mid) <= maxlen:
            lo = mid
        else:
            hi = mid
    # Every sequence longer than ``lo`` passes through length ``hi`` = lo+1;
    # from there the loop shortens the earliest ones to ``lo`` first.
    extra = capped(hi) - maxlen
    counts = []
    for n in lengths:
        if n > lo:
            target = lo if extra > 0 else hi
            extra -= target == lo
            counts.append(n - target)
        else:
            counts.append(0)
    return counts


def _pop_many(seq, index, count):
    """``for _ in range(count): seq.pop(index)`` without the quadratic loop."""
    if count <= 0:
        return
    n = len(seq)
    if index >= 0 and index + count <= n:
        del seq[index:index + count]
        return
    if index < 0:
        keep_tail = -index - 1
        start = n - keep_tail - count
        if start >= 0 and keep_tail < n:
            del seq[start:n - keep_tail]
            return
    for _ in range(count):  # rare degenerate cases: keep the exact semantics
        seq.pop(index)


def truncate_sequences(maxlen, indices, *sequences):
    """Shorten lists in place until their total length is at most ``maxlen``.

    Items are removed one at a time from the currently longest list (the
    first one on ties) at position ``indices`` (one index for all lists, or
    one per list) — e.g. ``-2`` drops the token before a trailing ``[SEP]``.
    Empty lists and ``None`` are ignored. Returns the non-empty lists.

    >>> a, b = [1, 2, 3, 4, 0], [5, 6, 0]
    >>> truncate_sequences(6, -2, a, b)
    [[1, 2, 0], [5, 6, 0]]
    """
    sequences = [s for s in sequences if s]
    if not isinstance(indices, (list, tuple)):
        indices = [indices] * len(sequences)
    counts = _truncation_counts(maxlen, [len(s) for s in sequences])
    for seq, index, count in zip(sequences, indices, counts):
        _pop_many(seq, index, count)
    return sequences


def text_segmentate(text, maxlen, seps="\n", strips=None):
    """Split ``text`` into pieces of at most ``maxlen`` chars where possible.

    ``seps`` are tried in order (e.g. ``"\\n。！？，"``): the text is cut at
    the first separator and neighbouring parts are greedily re-joined while
    they fit; a part that is still too long is split at the next separator.
    A piece without any usable separator may exceed ``maxlen``.

    >>> text_segmentate("今天天气很好。我们去公园吧！好的。", 8, "。！")
    ['今天天气很好。', '我们去公园吧！', '好的。']
    """
    text = text.strip().strip(strips)
    if not seps or len(text) <= maxlen:
        return [text]
    sep, rest = seps[0], seps[1:]
    parts = text.split(sep)
    pieces, buffer = [], ""
    for i, part in enumerate(parts):
        if buffer and part and len(buffer) + len(part) > maxlen - 1:
            pieces.extend(text_segmentate(buffer, maxlen, rest, strips))
            buffer = ""
        buffer += part if i == len(parts) - 1 else part + sep
    if buffer:
        pieces.extend(text_segmentate(buffer, maxlen, rest, strips))
    return pieces


class DataGenerator:
    """Batch generator template (bert4keras API) for ``model.fit``.

    Subclass it and implement ``__iter__(self, random=False)`` yielding
    batches; ``self.sample(random)`` yields ``(is_end, item)`` pairs so the
    last partial batch can be flushed.

    Example:

    ```python
    class Gen(DataGenerator):
        def __iter__(self, random=False):
            ids, labels = [], []
            for is_end, (text, label) in self.sample(random):
                ids.append(tokenizer.encode(text)[0])
                labels.append([label])
                if len(ids) == self.batch_size or is_end:
                    yield sequence_padding(ids), np.array(labels)
                    ids, labels = [], []

    gen = Gen(data, batch_size=32)
    model.fit(gen.to_pydataset(), epochs=3)            # Keras 3 native
    model.fit(gen.forfit(), steps_per_epoch=len(gen))  # bert4keras style
    ```
    """

    def __init__(self, data, batch_size=32, buffer_size=None):
        self.data = data
        self.batch_size = batch_size
        if hasattr(data, "__len__"):
            self.steps = -(-len(data) // batch_size)
        else:
            self.steps = None
        self.buffer_size = buffer_size or batch_size * 1000

    def __len__(self):
        if self.steps is None:
            raise TypeError(
                "this DataGenerator wraps data without __len__, so it has no "
                "length; pass steps explicitly"
            )
        return self.steps

    def sample(self, random=False):
        """Yield ``(is_end, item)``; ``is_end`` is True for the last item.

        With ``random=True``, sized data is permuted; unsized (streaming) data
        is shuffled through a buffer of ``buffer_size`` items.
        """
        if random and self.steps is not None:
            data = (self.data[i] for i in np.random.permutation(len(self.data)))
        elif random:
            data = self._buffered_shuffle()
        else:
            data = iter(self.data)
        # Look one item ahead so the final item can be flagged.
        sentinel = object()
        current = next(data, sentinel)
        if current is sentinel:
            return
        for item in data:
            yield False, current
            current = item
        yield True, current

    def _buffered_shuffle(self):
        cache = []
        for item in self.data:
            cache.append(item)
            if len(cache) > self.buffer_size:
                yield cache.pop(np.random.randint(len(cache)))
        while cache:
            yield cache.pop(np.random.randint(len(cache)))

    def __iter__(self, random=False):
        raise NotImplementedError

    def forfit(self, random=True):
        """Endless stream of batches (for ``fit(..., steps_per_epoch=len)``).

        Each batch is what ``__iter__`` yields with its lists made tuples:
        bert4keras's ``[token_ids, segment_ids], labels`` becomes
        ``((token_ids, segment_ids), labels)``, the same arrays in a form
        Keras 3 takes from a generator (on TensorFlow it turns batches into a
        ``tf.data`` signature, which has no lists). A ``None`` target (models
        whose loss is a ``Loss`` layer) is dropped: ``(inputs,)``.

        The stream is an iterator that ``model.fit`` also takes as its own
        data adapter (see ``BatchStream``), so batches may be padded to a
        different length each, as bert4keras's are.
        """
        return batch_stream(keras_batch(batch) for batch in self._endless(random))

    def _endless(self, random):
        """`__iter__`'s batches (or samples), pass after pass, as yielded."""
        while True:
            yielded = False
            for batch in self.__iter__(random):
                yielded = True
                yield batch
            if not yielded:
                # Looping again would spin forever without yielding anything.
                raise ValueError(f"{type(self).__name__} yielded no batch in a whole pass "
                                 "over its data (is the data empty, or a one-shot iterator already used up?)")

    def fortest(self, random=False):
        """Endless stream of the input part (``batch[0]``) of each batch, as ``(inputs,)``.

        The one-element tuple keeps Keras's ``predict`` from reading
        ``(token_ids, segment_ids)`` as ``(inputs, targets)``.
        """
        return batch_stream((keras_batch(batch)[0],) for batch in self._endless(random))

    def to_dataset(self, types, shapes, names=None, padded_batch=False):
        """A ``tf.data.Dataset`` over ``forfit()``; ``__iter__`` yields samples.

        ``types``/``shapes`` describe one sample (same nesting). With
        ``names`` the sample is wrapped in dicts: a string names a single
        input, a list of strings names a tuple, a list of lists names each
        element of a tuple. ``padded_batch=True`` pads variable lengths.
        """
        import tensorflow as tf

        # The samples as `__iter__` yields them: their nesting is what
        # `types` and `shapes` describe (lists included).
        def samples():
            return (_as_tuples(sample) for sample in self._endless(random=True))

        if names is None:
            generator = samples
        else:
            if is_string(names):
                wrap = lambda k, v: {k: v}  # noqa: E731
            elif is_string(names[0]):
                wrap = lambda k, v: dict(zip(k, v))  # noqa: E731
            else:
                wrap = lambda k, v: tuple(  # noqa: E731
                    dict(zip(i, j)) for i, j in zip(k, v)
                )

            def generator():
                for d in samples():
                    yield wrap(names, d)

            types = wrap(names, types)
            shapes = wrap(names, shapes)

        tf_shapes = _map_like(types, shapes, lambda t, s: tf.TensorShape(s))
        if padded_batch:
            signature = _map_like(
                types, shapes, lambda t, s: tf.TensorSpec([None] * len(s), t)
            )
            dataset = tf.data.Dataset.from_generator(
                generator, output_signature=signature
            )
            return dataset.padded_batch(self.batch_size, tf_shapes)
        signature = _map_like(types, shapes, lambda t, s: tf.TensorSpec(s, t))
        dataset = tf.data.Dataset.from_generator(
            generator, output_signature=signature
        )
        return dataset.batch(self.batch_size)

    def to_pydataset(self, random=True, steps=None, workers=1, max_queue_size=10):
        """A ``keras.utils.PyDataset`` for ``model.fit`` on any backend.

        Batch ``i`` of an epoch is the ``i``-th batch of the ``forfit(random)``
        stream for that epoch, so one epoch is one pass over the data when
        ``__iter__`` yields ``len(self)`` batches (exactly as bert4keras's
        ``fit(gen.forfit(), steps_per_epoch=len(gen))``). Because the stream
        is sequential, batches produced ahead of the requested index are
        kept until the epoch ends; with Keras' index shuffling this can hold
        one epoch of batches in memory. Multiprocessing is not supported
        (each process would own its own stream).
        """
        steps = steps if steps is not None else self.steps
        if steps is None:
            raise ValueError("data has no __len__: pass steps=...")
        return _pydataset_class()(
            self, random, steps, workers=workers, max_queue_size=max_queue_size
        )


def keras_batch(batch):
    """A bert4keras batch in the form Keras 3 takes from a generator: lists become tuples,
    a ``None`` target is dropped.

    Example:
    >>> ids = np.ones((2, 3), "int32")
    >>> batch = keras_batch([[ids, ids], None])
    >>> type(batch), type(batch[0]), len(batch)
    (<class 'tuple'>, <class 'tuple'>, 1)
    """
    batch = _as_tuples(batch)
    if isinstance(batch, tuple) and len(batch) in (2, 3) and batch[1] is None:
        batch = batch[:1] + batch[2:] if len(batch) == 3 and batch[2] is not None else batch[:1]
    return batch


def batch_stream(batches):
    """An iterator over `batches` that `model.fit`/`predict` take with batches of any length.

    Keras 3 reads a plain generator's first two batches on TensorFlow and
    fixes every size they share into its `tf.data` signature, so a later
    batch padded to another length fails ("Generator yielded an element of
    shape ..."). The returned `BatchStream` is also a Keras data adapter
    whose signature keeps only each array's rank, dtype and axes of size 1
    (so `[label]` targets stay `(batch, 1)`); other backends iterate it as
    a generator. Without Keras (or with a
    Keras that has no such adapter class) the iterator itself is returned.

    Example:
    >>> stream = batch_stream(iter([((np.ones((2, 3)),),), ((np.ones((2, 5)),),)]))
    >>> [batch[0][0].shape for batch in stream]
    [(2, 3), (2, 5)]
    """
    cls = _batch_stream_class()
    return cls(batches) if cls is not None else batches


_BATCH_STREAM_CLASS = []


def _batch_stream_class():
    if not _BATCH_STREAM_CLASS:
        try:
            from keras.src.trainers.data_adapters.generator_data_adapter import (
                GeneratorDataAdapter,
            )
        except ImportError:  # Keras missing, or its adapters moved: a plain iterator
            GeneratorDataAdapter = None
        _BATCH_STREAM_CLASS.append(None if GeneratorDataAdapter is None
                                   else _make_batch_stream_class(GeneratorDataAdapter))
    return _BATCH_STREAM_CLASS[0]


def _make_batch_stream_class(GeneratorDataAdapter):  # noqa: N803 - a class
    import itertools

    class BatchStream(GeneratorDataAdapter):
        """A batch iterator that is its own Keras data adapter (see `batch_stream`)."""

        def __init__(self, batches):
            # The parent's __init__ would read two batches now; they are read
            # only when TensorFlow asks for the signature.
            self._batches = iter(batches)
            self._output_signature = None

        def __iter__(self):
            return self

        def __next__(self):
            return next(self._batches)

        def generator(self):
            return self._batches

        def get_tf_dataset(self):
            import tensorflow as tf

            from keras import tree

            if self._output_signature is None:
                first = next(self._batches, None)
                if first is None or not isinstance(first, tuple):
                    raise ValueError("batch_stream: a batch for Keras must be a tuple "
                                     f"(inputs,) or (inputs, targets[, weights]); got {first!r}")
                self._batches = itertools.chain([first], self._batches)
                self._output_signature = tree.map_structure(_loose_spec, first)
            batches = self._batches
            dataset = tf.data.Dataset.from_generator(lambda: batches,
                                                     output_signature=self._output_signature)
            return dataset.prefetch(tf.data.AUTOTUNE)

    def _loose_spec(x):
        import tensorflow as tf

        # Every size may change from batch to batch except a size of 1, which
        # is kept: `[label]` targets of sparse losses must stay (batch, 1).
        shape = [None] + [1 if n == 1 else None for n in np.shape(x)[1:]]
        return tf.TensorSpec(shape, tf.as_dtype(np.asarray(x).dtype))

    return BatchStream


def _as_tuples(value):
    """`value` with every list (nested in lists, tuples, dicts) made a tuple."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _as_tuples(item) for key, item in value.items()}
    return value


def _map_like(types, shapes, fn):
    """Map ``fn(type, shape)`` over the structure of ``types``.

    Shapes are themselves lists of ints, so only the nesting of ``types``
    (dicts, tuples, lists) is followed.
    """
    if isinstance(types, dict):
        return {k: _map_like(types[k], shapes[k], fn) for k in types}
    if isinstance(types, (list, tuple)):
        return tuple(_map_like(t, s, fn) for t, s in zip(types, shapes))
    return fn(types, shapes)


_PYDATASET_CLASS = None


def _pydataset_class():
    global _PYDATASET_CLASS
    if _PYDATASET_CLASS is None:
        import keras

        class DataGeneratorPyDataset(keras.utils.PyDataset):
            """Indexable view of a ``DataGenerator`` stream (see to_pydataset)."""

            def __init__(self, generator, random, steps, **kwargs):
                super().__init__(**kwargs)
                self.generator = generator
                self.random = random
                self.steps = int(steps)
                self._stream = generator.forfit(random)
                self._batches = []
                self._lock = threading.Lock()

            def __len__(self):
                return self.steps

            def __getitem__(self, index):
                if not 0 <= index < self.steps:
                    raise IndexError(
                        "batch %d out of range [0, %d)" % (index, self.steps)
                    )
                with self._lock:  # threaded workers share one stream
                    while len(self._batches) <= index:
                        self._batches.append(next(self._stream))
                    return self._batches[index]

            def on_epoch_end(self):
                with self._lock:
                    self._batches = []

        _PYDATASET_CLASS = DataGeneratorPyDataset
    return _PYDATASET_CLASS


def orthogonally_resize(a, new_shape, window=2):
    """`a` resized to `new_shape` with its Frobenius norm kept (bert4keras semantics).

    An axis that grows is filled by repeating consecutive blocks of `window`
    entries (its size must be a multiple of `window`); then every axis is cut
    to its new size. `build_transformer_model(..., autoresize_weights=True)`
    uses it to start a wider model from a narrower checkpoint.

    Example:
    >>> orthogonally_resize(np.arange(4.0).reshape(2, 2), (4, 2)).shape
    (4, 2)
    """
    a = np.asarray(a)
    new_shape = tuple(int(n) for n in new_shape)
    if a.ndim != len(new_shape):
        raise ValueError(f"orthogonally_resize: cannot resize an array of shape {a.shape} "
                         f"to rank-{len(new_shape)} shape {new_shape}")
    norm = np.linalg.norm(a)
    for axis, (old, new) in enumerate(zip(a.shape, new_shape)):
        copies = -(-new // old)  # ceil
        if new == old or copies == 1:
            continue
        if old % window:
            raise ValueError(f"orthogonally_resize: axis {axis} has size {old}, not a multiple "
                             f"of window={window}, so it cannot grow to {new}")
        blocks = a.reshape(a.shape[:axis] + (old // window, window) + a.shape[axis + 1:])
        a = np.repeat(blocks, copies, axis=axis).reshape(
            a.shape[:axis] + (old * copies,) + a.shape[axis + 1:])
    a = a[tuple(slice(0, n) for n in new_shape)]
    return a / np.linalg.norm(a) * norm


# bert4keras kept its decoders in `snippets`; here they live in
# `kerasnlp4su.decoding` and resolve lazily, so
# `from kerasnlp4su.snippets import AutoRegressiveDecoder` keeps working
# while importing this module stays Keras-free.
_MOVED = {"AutoRegressiveDecoder": "kerasnlp4su.decoding", "ViterbiDecoder": "kerasnlp4su.decoding"}


def __getattr__(name):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    if name == "uniout":
        # `from bert4keras.snippets import uniout` made Python 2 print
        # Chinese in lists readably; Python 3 does that already.
        return None
    if name in ("keras", "K", "tf"):
        # bert4keras re-exported these from its backend; imported on demand
        # so that tokenizer-only users never load Keras.
        from kerasnlp4su import backend

        return getattr(backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
