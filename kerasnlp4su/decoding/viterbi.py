"""NumPy Viterbi decoding for linear-chain CRFs."""

import numpy as np


class ViterbiDecoder:
    """Best label path under emission scores plus a transition matrix.

    `trans[i, j]` scores moving from label i to label j (e.g.
    `keras.ops.convert_to_numpy(crf.trans)` of a trained
    `ConditionalRandomField`). `starts` / `ends` optionally restrict which
    labels may open / close a sequence (e.g. forbid an `I-` tag first).

    Example:
    >>> trans = np.array([[0.0, -5.0], [0.0, 0.0]])
    >>> nodes = np.array([[1.0, 0.0], [0.0, 0.5], [0.0, 0.0]])
    >>> ViterbiDecoder(trans).decode(nodes).tolist()
    [0, 0, 0]
    """

    def __init__(self, trans, starts=None, ends=None):
        self.trans = np.asarray(trans, dtype="float64")
        self.num_labels = len(self.trans)
        labels = range(self.num_labels)
        self.non_starts = [] if starts is None else [i for i in labels if i not in set(starts)]
        self.non_ends = [] if ends is None else [i for i in labels if i not in set(ends)]

    def decode(self, nodes):
        """`nodes`: `(length, num_labels)` emission scores -> label ids `(length,)`.

        The input is not modified (bert4keras edited it in place).
        """
        nodes = np.array(nodes, dtype="float64")
        if nodes.ndim != 2 or nodes.shape[1] != self.num_labels:
            raise ValueError(f"nodes must have shape (length, {self.num_labels}), got {nodes.shape}")
        if len(nodes) == 0:
            return np.zeros((0,), dtype="int64")
        nodes[0, self.non_starts] = -np.inf
        nodes[-1, self.non_ends] = -np.inf
        score = nodes[0]
        backpointers = []
        for emission in nodes[1:]:
            candidates = score[:, None] + self.trans  # previous label x next label
            best = candidates.argmax(axis=0)
            backpointers.append(best)
            score = candidates[best, np.arange(self.num_labels)] + emission
        path = [int(score.argmax())]
        for best in reversed(backpointers):
            path.append(int(best[path[-1]]))
        return np.array(path[::-1], dtype="int64")
