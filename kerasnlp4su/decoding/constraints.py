"""Decoding constraints: a prefix tree of the token-id sequences generation may produce."""


class Trie:
    """A prefix tree of allowed token-id sequences, usable as a decoding constraint.

    Called with the ids generated so far it returns the ids that may come
    next, so `beam_search(..., constraint=trie)` can only produce stored
    sequences (Su Jianlin's "seq2seq + prefix tree" retrieval). Give
    `end_id` to have it appended to every sequence, so the decoder also
    learns where each one stops.

    Example:
    >>> trie = Trie([[5, 6], [5, 7, 8]], end_id=3)
    >>> sorted(trie([5]))
    [6, 7]
    >>> trie([5, 6])
    [3]
    >>> [5, 7, 8, 3] in trie
    True
    """

    _END = None  # key marking "a stored sequence stops here"

    def __init__(self, sequences=(), end_id=None):
        self.end_id = end_id
        self.root = {}
        self._size = 0
        for sequence in sequences:
            self.add(sequence)

    def add(self, sequence):
        """Store one sequence of token ids (plus `end_id` when set)."""
        sequence = [int(i) for i in sequence]
        if self.end_id is not None and (not sequence or sequence[-1] != self.end_id):
            sequence.append(int(self.end_id))
        node = self.root
        for token in sequence:
            node = node.setdefault(token, {})
        if self._END not in node:
            node[self._END] = True
            self._size += 1

    def _node(self, prefix):
        node = self.root
        for token in prefix:
            node = node.get(int(token))
            if node is None:
                return None
        return node

    def next_tokens(self, prefix):
        """Ids allowed after `prefix`; empty when `prefix` left the tree or a sequence ended."""
        node = self._node(prefix)
        if node is None:
            return []
        return [token for token in node if token is not self._END]

    __call__ = next_tokens

    def __contains__(self, sequence):
        node = self._node(sequence)
        return node is not None and self._END in node

    def __len__(self):
        return self._size

    def __iter__(self):
        stack = [(self.root, [])]
        while stack:
            node, prefix = stack.pop()
            for token, child in node.items():
                if token is self._END:
                    yield list(prefix)
                else:
                    stack.append((child, prefix + [token]))
