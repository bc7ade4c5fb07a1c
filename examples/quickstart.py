"""Quickstart (the README's main job): load an official-format checkpoint, encode
text, fine-tune a sentence classifier, save it as `.keras` and reload it.

Runs on the tiny checkpoint shipped in `checkpoints/tiny_bert` (no download).
For a real model pass the files of an official release, e.g. Google's
`chinese_L-12_H-768_A-12`:

    python examples/quickstart.py --config .../bert_config.json \
        --checkpoint .../bert_model.ckpt --vocab .../vocab.txt

Data: `examples/data/sentiment.tsv`, 400 short Chinese/English review
sentences generated from templates for this project (CC0).
"""

import argparse
import csv
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasnlp4su.models import TransformerModel, build_transformer_model  # noqa: E402
from kerasnlp4su.optimizers import extend_with_dense_gradients  # noqa: E402
from kerasnlp4su.saving import save_model  # noqa: E402
from kerasnlp4su.snippets import sequence_padding  # noqa: E402
from kerasnlp4su.tokenizers import Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(TINY, "bert_config.json"))
    parser.add_argument("--checkpoint", default=os.path.join(TINY, "bert_model.ckpt"))
    parser.add_argument("--vocab", default=os.path.join(TINY, "vocab.txt"))
    parser.add_argument("--model", default="bert")
    parser.add_argument("--data", default=os.path.join(HERE, "data", "sentiment.tsv"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--maxlen", type=int, default=32)
    parser.add_argument("--fast", action="store_true", help="one short epoch (used by the tests)")
    return parser.parse_args(argv)


def load_data(path):
    with open(path, encoding="utf-8") as f:
        return [(row["text"], int(row["label"])) for row in csv.DictReader(f, delimiter="\t")]


def encode(tokenizer, data, maxlen):
    token_ids, segment_ids = zip(*(tokenizer.encode(text, maxlen=maxlen) for text, _ in data))
    return [sequence_padding(token_ids), sequence_padding(segment_ids)], np.array([y for _, y in data])


def main(argv=None):
    args = parse_args(argv)
    tokenizer = Tokenizer(args.vocab, do_lower_case=True)
    print("tokens:", tokenizer.tokenize("这部电影太棒了! The movie is great."))

    # with_pool=True: the output is the official pooler's tanh([CLS]) vector.
    bert = build_transformer_model(args.config, args.checkpoint, model=args.model, with_pool=True)
    hidden = keras.layers.Dropout(0.1)(bert.output)
    probs = keras.layers.Dense(2, activation="softmax", name="Classifier")(hidden)
    model = TransformerModel(bert.inputs, probs)
    # Keras's AdamW, with repeated tokens' embedding gradients summed first (see README).
    adamw = extend_with_dense_gradients(keras.optimizers.AdamW)
    model.compile(optimizer=adamw(2e-4 if args.fast else 1e-3, weight_decay=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    data = load_data(args.data)
    split = int(len(data) * 0.8)
    train, valid = data[:split], data[split:]
    if args.fast:
        train, valid = train[:64], valid[:32]
    x_train, y_train = encode(tokenizer, train, args.maxlen)
    x_valid, y_valid = encode(tokenizer, valid, args.maxlen)
    model.fit(x_train, y_train, batch_size=16, epochs=1 if args.fast else args.epochs, verbose=2)
    accuracy = float(np.mean(model.predict(x_valid, verbose=0).argmax(-1) == y_valid))
    print(f"validation accuracy: {accuracy:.3f} on {len(valid)} sentences")

    path = os.path.join(tempfile.mkdtemp(), "classifier.keras")
    save_model(model, path)  # atomic: an interrupted save never leaves half a file
    reloaded = keras.saving.load_model(path, safe_mode=True)
    same = np.allclose(reloaded.predict(x_valid, verbose=0), model.predict(x_valid, verbose=0), atol=1e-5)
    print(f"saved to {path}; reloaded with safe_mode=True, identical predictions: {same}")
    return {"accuracy": accuracy, "reload_identical": same}


if __name__ == "__main__":
    main()
