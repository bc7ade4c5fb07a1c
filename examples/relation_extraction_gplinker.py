"""Relation extraction with GPLinker (subject, predicate, object triples).

GPLinker (Su Jianlin, 2022) turns triple extraction into three score
matrices over token pairs, all read off one encoder output:

* entities: 2 types (subject, object); cell (type, head, tail) > 0 marks an
  entity span;
* head links: one matrix per predicate; cell (p, subject head, object head) > 0;
* tail links: one matrix per predicate; cell (p, subject tail, object tail) > 0.

A triple (s, p, o) is decoded when s is a subject, o is an object and both
links for p fire. The links are not spans, so their pointers use neither RoPE
(relative position carries no meaning across two entities) nor the lower
triangle mask (an object may come before its subject).

Targets are sparse: each matrix lists its positive (row, column) pairs,
padded with (0, 0), which is the [CLS]-[CLS] cell and never a real label, and
the loss is the sparse multilabel categorical cross-entropy over the
flattened matrix. Dense targets would be predicates x length^2 per sentence.

    python examples/relation_extraction_gplinker.py           # full run, a few minutes on 2 CPU cores
    python examples/relation_extraction_gplinker.py --fast    # smoke run, well under a minute

For a real model pass an official release, e.g. Google's `chinese_L-12_H-768_A-12`:

    python examples/relation_extraction_gplinker.py --config .../bert_config.json \
        --checkpoint .../bert_model.ckpt --vocab .../vocab.txt --model bert

Data: `examples/data/relations.jsonl`, 300 Chinese sentences with
(subject, predicate, object) triples and their character spans (inclusive
ends), generated from templates by `examples/data/make_data.py` (CC0); the
first 80% train, the rest is held out. The score is triple-level F1 with exact
character spans for subject and object.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from kerasnlp4su.layers.global_pointer import EfficientGlobalPointer  # noqa: E402
from kerasnlp4su.models import TransformerModel, build_transformer_model  # noqa: E402
from kerasnlp4su.optimizers import extend_with_dense_gradients  # noqa: E402
from kerasnlp4su.snippets import sequence_padding  # noqa: E402
from kerasnlp4su.tokenizers import Tokenizer  # noqa: E402
from kerasnlp4su.training.losses import sparse_multilabel_categorical_crossentropy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(TINY, "bert_config.json"))
    parser.add_argument("--checkpoint", default=os.path.join(TINY, "bert_model.ckpt"))
    parser.add_argument("--vocab", default=os.path.join(TINY, "vocab.txt"))
    parser.add_argument("--model", default="bert")
    parser.add_argument("--data", default=os.path.join(HERE, "data", "relations.jsonl"))
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--maxlen", type=int, default=48)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fast", action="store_true", help="a short run on a subset (used by the tests)")
    return parser.parse_args(argv)


def load_data(path):
    """Rows of (text, {((s_start, s_end), predicate, (o_start, o_end)), ...}), inclusive ends."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                triples = {(tuple(t["subject_span"]), t["predicate"], tuple(t["object_span"]))
                           for t in item["spo"]}
                rows.append((item["text"], triples))
    return rows


# ----------------------------------------------------------------- span mapping
def char_to_token_maps(mapping):
    """Character index -> token that starts / ends there (`mapping` from `tokenizer.rematch`)."""
    starts, ends = {}, {}
    for index, chars in enumerate(mapping):
        if chars:
            starts[chars[0]] = index
            ends[chars[-1]] = index
    return starts, ends


def triple_targets(triples, mapping, predicates):
    """Positive cells of the three matrices, as lists of (row, column) token pairs.

    Returns `(entity, head, tail)`: `entity[0]` / `entity[1]` hold subject /
    object (head, tail) spans, `head[p]` (subject head, object head) and
    `tail[p]` (subject tail, object tail) for predicate index `p`. Triples
    whose spans do not fall on token boundaries (e.g. cut by `maxlen`) are left out.
    """
    starts, ends = char_to_token_maps(mapping)
    entity = [set(), set()]
    head = [set() for _ in predicates]
    tail = [set() for _ in predicates]
    predicate_ids = {p: i for i, p in enumerate(predicates)}
    for (ss, se), predicate, (os_, oe) in triples:
        if not all(c in starts for c in (ss, os_)) or not all(c in ends for c in (se, oe)):
            continue
        sh, st, oh, ot = starts[ss], ends[se], starts[os_], ends[oe]
        p = predicate_ids[predicate]
        entity[0].add((sh, st))
        entity[1].add((oh, ot))
        head[p].add((sh, oh))
        tail[p].add((st, ot))
    return [sorted(s) for s in entity], [sorted(s) for s in head], [sorted(s) for s in tail]


def pad_pairs(groups, size):
    """Lists of (row, column) pairs -> int array (len(groups), size, 2), padded with (0, 0)."""
    out = np.zeros((len(groups), size, 2), dtype="int32")
    for g, pairs in enumerate(groups):
        if pairs:
            out[g, :len(pairs)] = pairs
    return out


def decode_triples(entity_scores, head_scores, tail_scores, mapping, predicates, threshold=0.0):
    """Three score matrices -> {((s_start, s_end), predicate, (o_start, o_end))} in characters.

    `entity_scores` is (2, length, length) for subject / object spans;
    `head_scores` and `tail_scores` are (predicates, length, length). Spans on
    special tokens or padding (empty or missing mapping) and spans ending
    before they start are ignored.
    """
    def valid(i, j):
        return i <= j < len(mapping) and bool(mapping[i]) and bool(mapping[j])

    subjects, objects = set(), set()
    for kind, i, j in zip(*np.where(entity_scores > threshold)):
        if valid(i, j):
            (subjects if kind == 0 else objects).add((int(i), int(j)))
    triples = set()
    for sh, st in subjects:
        for oh, ot in objects:
            # Both links must agree on the predicate: the head link alone
            # cannot tell apart two subjects that share a head token.
            linked = (set(np.where(head_scores[:, sh, oh] > threshold)[0])
                      & set(np.where(tail_scores[:, st, ot] > threshold)[0]))
            for p in linked:
                triples.add(((mapping[sh][0], mapping[st][-1]), predicates[p],
                             (mapping[oh][0], mapping[ot][-1])))
    return triples


def triple_prf(predicted, gold):
    """Micro precision / recall / F1 over per-sentence sets of triples."""
    tp = sum(len(p & g) for p, g in zip(predicted, gold))
    n_pred = sum(len(p) for p in predicted)
    n_gold = sum(len(g) for g in gold)
    if n_pred + n_gold == 0:
        return {"f1": 1.0, "precision": 1.0, "recall": 1.0}
    return {"f1": 2 * tp / (n_pred + n_gold),
            "precision": tp / n_pred if n_pred else 0.0,
            "recall": tp / n_gold if n_gold else 0.0}


# ------------------------------------------------------------------------ loss
def sparse_globalpointer_loss(y_true, y_pred):
    """Sparse multilabel CE on a pointer's score matrix.

    `y_true` (batch, heads, pairs, 2) lists positive (row, column) cells
    padded with (0, 0); `y_pred` is (batch, heads, length, length). Cell
    (row, column) is index `row * length + column` of the flattened matrix,
    and `mask_zero=True` makes index 0 (the padding cell) no label.
    """
    shape = ops.shape(y_pred)
    length = shape[-1]
    y_true = ops.cast(y_true, "int32")
    flat_true = y_true[..., 0] * length + y_true[..., 1]
    flat_pred = ops.reshape(y_pred, (shape[0], shape[1], -1))
    loss = sparse_multilabel_categorical_crossentropy(flat_true, flat_pred, mask_zero=True)
    # Sum over pointer heads (each is its own multilabel problem), mean over the batch.
    return ops.mean(ops.sum(loss, axis=1))


# -------------------------------------------------------------------- pipeline
def encode(tokenizer, rows, predicates, maxlen):
    token_ids, mappings, entity, head, tail = [], [], [], [], []
    for text, triples in rows:
        tokens = tokenizer.tokenize(text, maxlen=maxlen)
        mapping = tokenizer.rematch(text, tokens)
        e, h, t = triple_targets(triples, mapping, predicates)
        token_ids.append(tokenizer.tokens_to_ids(tokens))
        mappings.append(mapping)
        entity.append(e)
        head.append(h)
        tail.append(t)
    # One padded size per matrix kind across the split keeps the array shapes fixed.
    sizes = [max(1, max(len(pairs) for sample in kind for pairs in sample))
             for kind in (entity, head, tail)]
    targets = [np.stack([pad_pairs(sample, size) for sample in kind])
               for kind, size in zip((entity, head, tail), sizes)]
    token_ids = sequence_padding(token_ids, length=maxlen)
    return [token_ids, np.zeros_like(token_ids)], targets, mappings


def build_model(args, num_predicates):
    bert = build_transformer_model(args.config, args.checkpoint, model=args.model)
    x = bert.output
    entity = EfficientGlobalPointer(heads=2, head_size=args.head_size, name="Entity-Pointer")(x)
    head = EfficientGlobalPointer(heads=num_predicates, head_size=args.head_size, rope=False,
                                  tril_mask=False, name="Head-Pointer")(x)
    tail = EfficientGlobalPointer(heads=num_predicates, head_size=args.head_size, rope=False,
                                  tril_mask=False, name="Tail-Pointer")(x)
    return TransformerModel(bert.inputs, [entity, head, tail])


def evaluate(model, x, mappings, gold, predicates, batch_size=64):
    entity, head, tail = model.predict(x, batch_size=batch_size, verbose=0)
    predicted = [decode_triples(e, h, t, m, predicates)
                 for e, h, t, m in zip(entity, head, tail, mappings)]
    return triple_prf(predicted, gold), predicted


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    tokenizer = Tokenizer(args.vocab, do_lower_case=True)

    rows = load_data(args.data)
    predicates = sorted({p for _, triples in rows for _, p, _ in triples})
    split = int(len(rows) * 0.8)
    train, valid = rows[:split], rows[split:]
    epochs = args.epochs
    if args.fast:
        train, valid, epochs = train[:128], valid[:32], 8
        # The longest sentence of relations.jsonl is 19 tokens: maxlen 24 cuts nothing, and
        # the three (maxlen x maxlen) score matrices shrink 4x against the default 48.
        args.maxlen = 24
    x_train, y_train, _ = encode(tokenizer, train, predicates, args.maxlen)
    x_valid, _, valid_mappings = encode(tokenizer, valid, predicates, args.maxlen)

    model = build_model(args, len(predicates))
    # Keras's AdamW, with repeated tokens' embedding gradients summed first (see README).
    adamw = extend_with_dense_gradients(keras.optimizers.AdamW)
    model.compile(optimizer=adamw(args.learning_rate, weight_decay=0.01),
                  loss=[sparse_globalpointer_loss] * 3)
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, shuffle=True, verbose=2)

    gold = [triples for _, triples in valid]
    metrics, predicted = evaluate(model, x_valid, valid_mappings, gold, predicates)

    def show(text, triples):
        return sorted((text[s[0]:s[1] + 1], p, text[o[0]:o[1] + 1]) for s, p, o in triples)

    text, triples = valid[0]
    print("example:", text, "->", show(text, predicted[0]), "gold:", show(text, triples))
    print(f"GPLinker triple-level F1: {metrics['f1']:.3f} (precision {metrics['precision']:.3f}, "
          f"recall {metrics['recall']:.3f}) on {len(valid)} held-out sentences, "
          f"{sum(len(g) for g in gold)} triples, {len(predicates)} predicates")
    return metrics


if __name__ == "__main__":
    main()
