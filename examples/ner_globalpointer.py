"""Named-entity recognition with GlobalPointer (or EfficientGlobalPointer).

GlobalPointer scores every (start, end) token pair for every entity type, so
nested and overlapping entities need no special tagging scheme: an entity is
simply a cell of the (type, start, end) score matrix above 0. Training uses
the multilabel categorical cross-entropy over all cells (`globalpointer_crossentropy`).

Character offsets in the data are mapped to token offsets with the
tokenizer's `rematch`, and predicted token spans are mapped back the same
way, so the reported score is entity-level precision / recall / F1 on
*character* spans of the held-out split (exact start, end and type).

    python examples/ner_globalpointer.py              # full run, a few minutes on 2 CPU cores
    python examples/ner_globalpointer.py --efficient  # EfficientGlobalPointer head
    python examples/ner_globalpointer.py --fast       # smoke run, well under a minute

For a real model pass an official release, e.g. Google's `chinese_L-12_H-768_A-12`:

    python examples/ner_globalpointer.py --config .../bert_config.json \
        --checkpoint .../bert_model.ckpt --vocab .../vocab.txt --model bert

Data: `examples/data/ner.jsonl`, 300 Chinese sentences with PER / LOC / ORG
character spans (inclusive ends), generated from templates by
`examples/data/make_data.py` (CC0); the first 80% train, the rest is held out.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasnlp4su.layers.global_pointer import EfficientGlobalPointer, GlobalPointer  # noqa: E402
from kerasnlp4su.models import TransformerModel, build_transformer_model  # noqa: E402
from kerasnlp4su.optimizers import extend_with_dense_gradients  # noqa: E402
from kerasnlp4su.snippets import sequence_padding  # noqa: E402
from kerasnlp4su.tokenizers import Tokenizer  # noqa: E402
from kerasnlp4su.training.losses import globalpointer_crossentropy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(TINY, "bert_config.json"))
    parser.add_argument("--checkpoint", default=os.path.join(TINY, "bert_model.ckpt"))
    parser.add_argument("--vocab", default=os.path.join(TINY, "vocab.txt"))
    parser.add_argument("--model", default="bert")
    parser.add_argument("--data", default=os.path.join(HERE, "data", "ner.jsonl"))
    parser.add_argument("--efficient", action="store_true",
                        help="use EfficientGlobalPointer (fewer parameters per entity type)")
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--maxlen", type=int, default=48)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fast", action="store_true", help="a short run on a subset (used by the tests)")
    return parser.parse_args(argv)


def load_data(path):
    """Rows of (text, {(start, end, type), ...}) with inclusive character ends."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                spans = {(e["start"], e["end"], e["type"]) for e in item["entities"]}
                rows.append((item["text"], spans))
    return rows


# ----------------------------------------------------------------- span mapping
def char_to_token_maps(mapping):
    """Character index -> index of the token that starts / ends there.

    `mapping` is `tokenizer.rematch(text, tokens)`: one list of character
    indices per token, empty for [CLS] / [SEP]. A character inside a token
    (e.g. the middle of a WordPiece) is in neither dict, so an entity
    boundary that falls inside a token cannot be expressed and is skipped.
    """
    starts, ends = {}, {}
    for index, chars in enumerate(mapping):
        if chars:
            starts[chars[0]] = index
            ends[chars[-1]] = index
    return starts, ends


def char_spans_to_token_spans(spans, mapping):
    """{(start_char, end_char, type)} -> [(start_token, end_token, type)], dropping unmappable spans."""
    starts, ends = char_to_token_maps(mapping)
    return [(starts[s], ends[e], label) for s, e, label in sorted(spans)
            if s in starts and e in ends]


def decode_entities(scores, mapping, labels, threshold=0.0):
    """Score matrix (types, length, length) -> {(start_char, end_char, type)}.

    A cell above `threshold` is an entity. Cells that cannot be an entity are
    ignored rather than trusted: end before start, special tokens (empty
    mapping) and padding beyond the text.
    """
    entities = set()
    for label, start, end in zip(*np.where(scores > threshold)):
        if end < start or end >= len(mapping) or not mapping[start] or not mapping[end]:
            continue
        entities.add((mapping[start][0], mapping[end][-1], labels[label]))
    return entities


def span_prf(predicted, gold):
    """Micro precision / recall / F1 over per-sentence sets of spans (or triples)."""
    tp = sum(len(p & g) for p, g in zip(predicted, gold))
    n_pred = sum(len(p) for p in predicted)
    n_gold = sum(len(g) for g in gold)
    if n_pred + n_gold == 0:
        return {"f1": 1.0, "precision": 1.0, "recall": 1.0}
    return {"f1": 2 * tp / (n_pred + n_gold),
            "precision": tp / n_pred if n_pred else 0.0,
            "recall": tp / n_gold if n_gold else 0.0}


# -------------------------------------------------------------------- pipeline
def encode(tokenizer, rows, labels, maxlen):
    """Token ids, segment ids, dense (types, maxlen, maxlen) 0/1 targets and the rematch maps."""
    label_ids = {label: i for i, label in enumerate(labels)}
    token_ids, mappings = [], []
    targets = np.zeros((len(rows), len(labels), maxlen, maxlen), dtype="float32")
    for n, (text, spans) in enumerate(rows):
        tokens = tokenizer.tokenize(text, maxlen=maxlen)
        mapping = tokenizer.rematch(text, tokens)
        for start, end, label in char_spans_to_token_spans(spans, mapping):
            targets[n, label_ids[label], start, end] = 1
        token_ids.append(tokenizer.tokens_to_ids(tokens))
        mappings.append(mapping)
    token_ids = sequence_padding(token_ids, length=maxlen)
    return [token_ids, np.zeros_like(token_ids)], targets, mappings


def build_model(args, num_labels):
    bert = build_transformer_model(args.config, args.checkpoint, model=args.model)
    pointer = EfficientGlobalPointer if args.efficient else GlobalPointer
    # The encoder output carries the padding mask, so padded rows/columns of
    # the score matrix come out very negative and never decode as entities.
    scores = pointer(heads=num_labels, head_size=args.head_size, name="Entity-Pointer")(bert.output)
    return TransformerModel(bert.inputs, scores)


def evaluate(model, x, mappings, gold, labels, batch_size=64):
    scores = model.predict(x, batch_size=batch_size, verbose=0)
    predicted = [decode_entities(s, m, labels) for s, m in zip(scores, mappings)]
    return span_prf(predicted, gold), predicted


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    tokenizer = Tokenizer(args.vocab, do_lower_case=True)

    rows = load_data(args.data)
    labels = sorted({label for _, spans in rows for _, _, label in spans})
    split = int(len(rows) * 0.8)
    train, valid = rows[:split], rows[split:]
    epochs = args.epochs
    if args.fast:
        train, valid, epochs = train[:96], valid[:32], 3
        # The longest sentence of ner.jsonl is 19 tokens: maxlen 24 cuts nothing, and the
        # (maxlen x maxlen) score matrices shrink 4x against the default 48.
        args.maxlen = 24
    x_train, y_train, _ = encode(tokenizer, train, labels, args.maxlen)
    x_valid, _, valid_mappings = encode(tokenizer, valid, labels, args.maxlen)

    model = build_model(args, len(labels))
    # Keras's AdamW, with repeated tokens' embedding gradients summed first (see README).
    adamw = extend_with_dense_gradients(keras.optimizers.AdamW)
    model.compile(optimizer=adamw(args.learning_rate, weight_decay=0.01),
                  loss=globalpointer_crossentropy)
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, shuffle=True, verbose=2)

    gold = [spans for _, spans in valid]
    metrics, predicted = evaluate(model, x_valid, valid_mappings, gold, labels)
    text, spans = valid[0]
    print("example:", text, "->", sorted((text[s:e + 1], t) for s, e, t in predicted[0]),
          "gold:", sorted((text[s:e + 1], t) for s, e, t in spans))
    head = "EfficientGlobalPointer" if args.efficient else "GlobalPointer"
    print(f"{head} entity-level F1: {metrics['f1']:.3f} (precision {metrics['precision']:.3f}, "
          f"recall {metrics['recall']:.3f}) on {len(valid)} held-out sentences, "
          f"{sum(len(g) for g in gold)} entities")
    return metrics


if __name__ == "__main__":
    main()
