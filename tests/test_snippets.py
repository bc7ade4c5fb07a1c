"""snippets: padding, truncation, segmentation, DataGenerator -> tf.data / PyDataset."""

import doctest

import keras
import numpy as np
import pytest

from kerasnlp4su import snippets
from kerasnlp4su.snippets import (
    DataGenerator,
    is_string,
    lowercase_and_normalize,
    sequence_padding,
    strQ2B,
    text_segmentate,
    truncate_sequences,
)


def test_doctests():
    result = doctest.testmod(snippets)
    assert result.failed == 0 and result.attempted >= 6


def test_small_helpers():
    assert is_string("a") and not is_string(b"a") and not is_string(1)
    assert strQ2B("ＡＢＣ，１２３　！～") == "ABC,123 !~"
    assert strQ2B("中文。") == "中文。"  # CJK punctuation is not full-width ASCII
    assert lowercase_and_normalize("Crème BRÛLÉE İ") == "creme brulee i"


def test_sequence_padding_post_pre_and_length():
    x = [[1, 2, 3], [4], [5, 6]]
    np.testing.assert_array_equal(
        sequence_padding(x), [[1, 2, 3], [4, 0, 0], [5, 6, 0]])
    np.testing.assert_array_equal(
        sequence_padding(x, mode="pre"), [[1, 2, 3], [0, 0, 4], [0, 5, 6]])
    # Over-long inputs are cut at the end in both modes (bert4keras).
    np.testing.assert_array_equal(
        sequence_padding(x, length=2, value=-1, mode="pre"), [[1, 2], [-1, 4], [5, 6]])
    out = sequence_padding(x, length=5)
    assert out.shape == (3, 5) and out.dtype.kind == "i"
    with pytest.raises(ValueError, match="mode"):
        sequence_padding(x, mode="middle")
    assert sequence_padding([]).shape == (0,)


def test_sequence_padding_trailing_dims_and_seq_dims_2():
    x = [np.ones((2, 3)), np.ones((1, 3)) * 2]
    out = sequence_padding(x)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[1], [[2, 2, 2], [0, 0, 0]])
    # seq_dims=2: pad a batch of [seq, seq] matrices (e.g. span labels).
    m = [np.arange(4).reshape(2, 2), np.full((3, 1), 7)]
    out = sequence_padding(m, seq_dims=2, value=-1)
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[0], [[0, 1], [2, 3], [-1, -1]])
    np.testing.assert_array_equal(out[1], [[7, -1], [7, -1], [7, -1]])
    out = sequence_padding(m, length=2, seq_dims=2, mode="pre")
    np.testing.assert_array_equal(out[1], [[0, 7], [0, 7]])
    assert sequence_padding(m, length=[1, 4], seq_dims=2).shape == (2, 1, 4)
    with pytest.raises(ValueError, match="seq_dims"):
        sequence_padding(m, length=[1, 2, 3], seq_dims=2)


def test_truncate_sequences():
    a, b = [1, 2, 3, 4, 0], [5, 6, 0]
    assert truncate_sequences(6, -2, a, b) == [[1, 2, 0], [5, 6, 0]]
    assert (a, b) == ([1, 2, 0], [5, 6, 0])  # in place
    # Ties: the first sequence loses first; per-sequence indices.
    a, b = [0, 1, 2, 9], [0, 5, 6, 9]
    truncate_sequences(5, [1, -2], a, b)
    assert (a, b) == ([0, 9], [0, 5, 9])
    # None / empty sequences are ignored.
    c = list(range(10))
    assert truncate_sequences(3, -1, None, [], c) == [[0, 1, 2]]
    # Large inputs stay fast (closed form, no per-item loop).
    long = list(range(100000))
    truncate_sequences(512, 1, long)
    assert long == [0] + list(range(99489, 100000))


def test_text_segmentate():
    text = "今天天气很好。我们去公园吧！好的。"
    assert text_segmentate(text, 8, "。！") == ["今天天气很好。", "我们去公园吧！", "好的。"]
    assert text_segmentate(text, 100, "。！") == [text]
    assert text_segmentate("  a\nb\nccc  ", 3) == ["a", "b", "ccc"]
    # No usable separator: the piece may exceed maxlen.
    assert text_segmentate("abcdefgh", 3, "，") == ["abcdefgh"]
    assert text_segmentate("，a，b，", 2, "，", strips="，") == ["a", "b"]


class PairGenerator(DataGenerator):
    """Batches of (padded ids, labels) from (list, label) samples."""

    def __iter__(self, random=False):
        batch_x, batch_y = [], []
        for is_end, (x, y) in self.sample(random):
            batch_x.append(x)
            batch_y.append([y])
            if len(batch_x) == self.batch_size or is_end:
                yield sequence_padding(batch_x, length=4), np.array(batch_y, "float32")
                batch_x, batch_y = [], []


DATA = [([i % 7 + 1] * (i % 4 + 1), float(i % 2)) for i in range(10)]


def test_data_generator_batching_and_sampling():
    gen = PairGenerator(DATA, batch_size=4)
    assert len(gen) == 3 and gen.buffer_size == 4000
    batches = list(gen)
    assert [b[0].shape for b in batches] == [(4, 4), (4, 4), (2, 4)]
    np.testing.assert_array_equal(batches[0][0][1], [2, 2, 0, 0])
    np.testing.assert_array_equal(batches[2][1].ravel(), [0, 1])
    flags = [end for end, _ in gen.sample()]
    assert flags == [False] * 9 + [True]
    np.random.seed(0)
    shuffled = [d for _, d in gen.sample(random=True)]
    assert sorted(map(str, shuffled)) == sorted(map(str, DATA)) and shuffled != DATA
    forfit = gen.forfit(random=False)
    first = [next(forfit)[0].shape[0] for _ in range(6)]
    assert first == [4, 4, 2, 4, 4, 2]  # endless, one pass after another
    # fortest yields (inputs,): Keras reads a bare tuple of arrays as (inputs, targets).
    assert np.array_equal(next(gen.fortest())[0], batches[0][0])


def test_data_generator_streaming_and_empty():
    stream = PairGenerator(iter(DATA), batch_size=4, buffer_size=3)
    assert stream.steps is None
    with pytest.raises(TypeError, match="no length"):
        len(stream)
    np.random.seed(1)
    items = [d for _, d in stream.sample(random=True)]
    assert len(items) == 10 and sorted(map(str, items)) == sorted(map(str, DATA))
    assert list(PairGenerator([], batch_size=2)) == []
    with pytest.raises(ValueError, match="no batch in a whole pass"):
        next(PairGenerator([], batch_size=2).forfit())
    once = PairGenerator(iter(DATA), batch_size=4).fortest()
    assert [next(once)[0].shape[0] for _ in range(3)] == [4, 4, 2]
    with pytest.raises(ValueError, match="one-shot iterator"):
        next(once)  # the stream is used up: an error, not an endless empty loop
    with pytest.raises(ValueError, match="steps"):
        PairGenerator(iter(DATA)).to_pydataset()


def test_to_dataset():
    class SampleGenerator(DataGenerator):
        def __iter__(self, random=False):
            for _, (x, y) in self.sample(random):
                yield np.array(x), np.array([y])

    gen = SampleGenerator(DATA, batch_size=4)
    ds = gen.to_dataset(("int32", "float32"), ([None], [1]), padded_batch=True)
    x, y = next(iter(ds))
    assert x.dtype.name == "int32" and y.shape == (4, 1)
    assert x.shape[0] == 4 and x.shape[1] == max(len(d[0]) for d in DATA[:4])
    named = gen.to_dataset(("int32", "float32"), ([None], [1]),
                           names=("ids", "label"), padded_batch=True)
    batch = next(iter(named))
    assert set(batch) == {"ids", "label"} and batch["label"].shape == (4, 1)
    fixed = SampleGenerator([([1, 2], 0.0)] * 5, batch_size=2)
    ds = fixed.to_dataset(("int32", "float32"), ([2], [1]))
    assert next(iter(ds))[0].shape == (2, 2)


def test_to_dataset_with_bert4keras_nested_samples_and_names():
    # task_iflytek_multigpu.py: samples `[ids, segments], [[label]]` named
    # after the input and output layers, padded by tf.data.
    class NestedGenerator(DataGenerator):
        def __iter__(self, random=False):
            for _, (x, y) in self.sample(random):
                yield [x, [0] * len(x)], [[y]]

    gen = NestedGenerator(DATA, batch_size=4)
    ds = gen.to_dataset(types=[("float32", "float32"), ("float32",)],
                        shapes=[([None], [None]), ([1],)],
                        names=[("Input-Token", "Input-Segment"), ("Probas",)], padded_batch=True)
    inputs, targets = next(iter(ds))
    assert set(inputs) == {"Input-Token", "Input-Segment"} and set(targets) == {"Probas"}
    assert inputs["Input-Token"].shape[0] == 4 and targets["Probas"].shape == (4, 1)
    np.testing.assert_array_equal(inputs["Input-Segment"], np.zeros(inputs["Input-Token"].shape))
    lengths = (inputs["Input-Token"].numpy() != 0).sum(axis=1)
    assert inputs["Input-Token"].shape[1] == lengths.max()  # padded to the longest sample
    assert set(targets["Probas"].numpy().ravel()) <= {0.0, 1.0}


def test_pydataset_in_model_fit():
    keras.utils.set_random_seed(0)
    gen = PairGenerator(DATA, batch_size=4)
    pyds = gen.to_pydataset(random=True)
    assert isinstance(pyds, keras.utils.PyDataset) and len(pyds) == 3
    # Batches are served by index from one pass of the stream; repeated
    # indices (Keras peeks at batches for the signature) are stable.
    assert pyds[1] is pyds[1] and pyds[0][0].shape == (4, 4)
    pyds.on_epoch_end()
    with pytest.raises(IndexError):
        pyds[3]

    inputs = keras.Input((4,), dtype="int32")
    h = keras.layers.Embedding(8, 4)(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(pyds, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    assert all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    # Deterministic order (random=False) matches iterating the generator.
    ordered = gen.to_pydataset(random=False)
    for i, (x, y) in enumerate(gen):
        np.testing.assert_array_equal(ordered[i][0], x)
    assert model.evaluate(ordered, verbose=0) > 0
