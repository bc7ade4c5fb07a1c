"""Tiger's embedding fix and the sign update on embedding rows (Tiger and Lion).

From the Tiger post ("Tiger：一个“抠”到极致的优化器", https://kexue.fm/archives/9512, and
the reference code bojone/tiger): a sign update moves every coordinate by the same amount,
so Tiger scales it by the weight's RMS, and for an embedding table by each row's (token's)
own RMS. The NumPy reference in test_optimizers.py covers the whole update; these checks
isolate the two behaviours a user of embeddings meets.
"""

import keras
import numpy as np

from backend_utils import to_np
from kerasnlp4su.optimizers import Lion, Tiger


def one_table(rows):
    return keras.Variable(np.asarray(rows, "float32"), name="embeddings")


def step(optimizer, variable, gradient):
    optimizer.apply([keras.ops.convert_to_tensor(np.asarray(gradient, "float32"))], [variable])
    return to_np(variable)


def test_tiger_scales_each_embedding_row_by_its_own_rms():
    # Row 0 is 10x row 1: with the table's RMS both would move by the same step.
    start = np.array([[1.0, -1.0, 1.0, -1.0], [0.1, 0.1, -0.1, -0.1]], "float32")
    table = one_table(start)
    after = step(Tiger(learning_rate=0.01, weight_decay=0.0, min_rms=0.0), table,
                 np.ones_like(start))
    moved = np.abs(after - start)
    np.testing.assert_allclose(moved[0], 0.01 * 1.0, rtol=1e-5)  # rms(row 0) = 1
    np.testing.assert_allclose(moved[1], 0.01 * 0.1, rtol=1e-5)  # rms(row 1) = 0.1
    # A matrix that is not an embedding table gets one RMS for all its rows.
    kernel = keras.Variable(start, name="kernel")
    after = step(Tiger(learning_rate=0.01, weight_decay=0.0, min_rms=0.0), kernel,
                 np.ones_like(start))
    table_rms = float(np.sqrt(np.mean(start ** 2)))
    np.testing.assert_allclose(np.abs(after - start), 0.01 * table_rms, rtol=1e-5)


def test_a_row_absent_from_the_batch_keeps_moving_with_its_momentum_sign():
    # Step 1: row 0 gets a gradient; step 2: it is absent (zero gradient). Its momentum
    # decays but keeps its sign, so a sign update moves it again by the full step
    # (Tiger: lr * its RMS; Lion: lr). bojone/tiger does the same for sparse gradients
    # (the whole momentum decays, then the batch rows are added); Adam's step would shrink
    # with the decayed first moment instead.
    start = np.array([[0.5, -0.5], [0.2, 0.2]], "float32")
    first = np.array([[1.0, -1.0], [0.0, 0.0]], "float32")
    absent = np.zeros_like(start)
    def row_rms(w):
        return float(np.sqrt(np.mean(w[0] ** 2)))

    for optimizer, size in ((Tiger(learning_rate=0.01, weight_decay=0.0, min_rms=0.0),
                             lambda w: 0.01 * row_rms(w)),
                            (Lion(learning_rate=0.01), lambda w: 0.01)):
        table = one_table(start)
        w1 = step(optimizer, table, first)
        w2 = step(optimizer, table, absent)
        np.testing.assert_allclose(w1[0] - start[0], [-size(start), size(start)], rtol=1e-4)
        np.testing.assert_allclose(w2[0] - w1[0], [-size(w1), size(w1)], rtol=1e-4)
        # A row that never had a gradient has zero momentum: sign(0) = 0, it stays put.
        np.testing.assert_array_equal(w2[1], start[1])
