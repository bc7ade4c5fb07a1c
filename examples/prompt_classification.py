"""Sentiment classification as a cloze or a next sentence: PET, P-tuning, NSP zero-shot.

PET and NSP zero-shot rest on what pretraining put into the MLM and NSP
heads. The shipped `checkpoints/tiny_bert` has random weights, so this script
first gives it a one-minute stand-in for pretraining: MLM (15% of tokens
masked) and NSP on "web text" made of the training reviews of
`examples/data/sentiment.tsv`, each followed by its writer's verdict
("总之很好。" / "总之很差。"; for NSP's "not next" half, the other verdict). No label is used as a label after that:

* `pet_zero`: zero-shot PET: "{text}总之很[MASK]。", label words 差 / 好;
* `pet_few`:  few-shot PET: the same cloze model fine-tuned on 16 labelled reviews;
* `ptuning`:  P-tuning: the template's words replaced by four virtual tokens
              ([unused1]..[unused4]) whose embeddings alone train on the 16
              reviews; the backbone and all other embeddings stay frozen;
* `nsp_zero`: zero-shot NSP: which of "总之很差。" / "总之很好。" is the likelier
              next sentence.

    python examples/prompt_classification.py --technique pet_zero
    python examples/prompt_classification.py --technique ptuning --fast   # smoke run

Each run prints validation accuracy (the held-out 20% of the reviews, never
seen in pretraining) against the majority-class baseline.
"""

import argparse
import csv
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasnlp4su.models import build_transformer_model  # noqa: E402
from kerasnlp4su.snippets import sequence_padding  # noqa: E402
from kerasnlp4su.tokenizers import Tokenizer  # noqa: E402
from kerasnlp4su.training import (  # noqa: E402
    ClozeTemplate,
    cloze_classifier,
    nsp_zero_shot,
    ptuning_model,
)

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")
TECHNIQUES = ("pet_zero", "pet_few", "ptuning", "nsp_zero")
VERDICTS = ("总之很差。", "总之很好。")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--technique", choices=TECHNIQUES, default="pet_zero")
    parser.add_argument("--config", default=os.path.join(TINY, "bert_config.json"))
    parser.add_argument("--checkpoint", default=os.path.join(TINY, "bert_model.ckpt"))
    parser.add_argument("--vocab", default=os.path.join(TINY, "vocab.txt"))
    parser.add_argument("--data", default=os.path.join(HERE, "data", "sentiment.tsv"))
    parser.add_argument("--pretrain-epochs", type=int, default=30,
                        help="0 for a really pretrained release")
    parser.add_argument("--pretrain-lr", type=float, default=5e-3)
    parser.add_argument("--shots", type=int, default=16, help="labelled reviews for few-shot")
    parser.add_argument("--maxlen", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fast", action="store_true", help="a short run (used by the tests)")
    return parser.parse_args(argv)


def load_reviews(path):
    with open(path, encoding="utf-8") as f:
        rows = [(r["text"], int(r["label"])) for r in csv.DictReader(f, delimiter="\t")]
    split = int(len(rows) * 0.8)
    return rows[:split], rows[split:]


def pretraining_batch(tokenizer, reviews, maxlen, rng):
    """MLM + NSP inputs and targets: review + verdict pairs, half with the opposite verdict."""
    ids, segments, not_next = [], [], []
    for text, label in reviews:
        # Half the pairs get the other review's verdict: NSP's "not next" (1).
        swapped = int(rng.random() < 0.5)
        a, b = tokenizer.encode(text, VERDICTS[label ^ swapped], maxlen=maxlen)
        ids.append(a)
        segments.append(b)
        not_next.append(swapped)
    ids = sequence_padding(ids, length=maxlen)
    segments = sequence_padding(segments, length=maxlen)
    special = np.isin(ids, [0, tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")])
    masked = (rng.random(ids.shape) < 0.15) & ~special
    inputs = np.where(masked, tokenizer.token_to_id("[MASK]"), ids)
    return ([inputs, segments], [np.array(not_next), ids],
            [np.ones(len(ids), "float32"), masked.astype("float32")])


def pretrain(args, tokenizer, reviews, epochs):
    model = build_transformer_model(args.config, args.checkpoint, with_mlm=True, with_nsp=True)
    model.compile(keras.optimizers.Adam(args.pretrain_lr),
                  loss=["sparse_categorical_crossentropy", "sparse_categorical_crossentropy"])
    rng = np.random.default_rng(args.seed)
    for _ in range(epochs):  # fresh masks and random verdicts every epoch
        x, y, weights = pretraining_batch(tokenizer, reviews, args.maxlen, rng)
        model.fit(x, y, sample_weight=weights, batch_size=16, epochs=1, shuffle=True, verbose=2)
    return model


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    tokenizer = Tokenizer(args.vocab, do_lower_case=True)
    train, valid = load_reviews(args.data)
    if args.fast:
        valid = valid[:40]
    epochs = min(15, args.pretrain_epochs) if args.fast else args.pretrain_epochs
    model = pretrain(args, tokenizer, train, epochs)
    texts, labels = [t for t, _ in valid], np.array([label for _, label in valid])
    shots = train[: args.shots]  # few-shot: the first reviews, never the validation ones

    if args.technique == "nsp_zero":
        scores = nsp_zero_shot(model, tokenizer, texts, VERDICTS, maxlen=args.maxlen)
    else:
        backbone = keras.Model(model.inputs, model.outputs[1])  # the MLM output only
        pattern = "{text}总之很{mask}。"
        if args.technique == "ptuning":
            backbone = ptuning_model(backbone, prompt_ids=range(5, 9))  # [unused1]..[unused4]
            pattern = "{text}[unused1][unused2]{mask}[unused3][unused4]"
        template = ClozeTemplate(tokenizer, pattern, {0: "差", 1: "好"}, maxlen=args.maxlen)
        pet = cloze_classifier(backbone, template)
        if args.technique in ("pet_few", "ptuning"):
            # PET few-shot trains the whole tiny model on a handful of shots: 1e-4
            # (a BERT-base setting) for 8 steps barely moved it; 2e-3 for 20 epochs
            # fits the shots.
            lr = 1e-2 if args.technique == "ptuning" else 2e-3
            pet.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy",
                        metrics=["accuracy"])
            pet.fit(template.encode([t for t, _ in shots]), np.array([y for _, y in shots]),
                    batch_size=8, epochs=10 if args.technique == "ptuning" else 20, verbose=2)
            fitted = pet.predict(template.encode([t for t, _ in shots]), verbose=0).argmax(-1)
            shot_accuracy = float(np.mean(fitted == np.array([y for _, y in shots])))
        scores = pet.predict(template.encode(texts), verbose=0)

    accuracy = float(np.mean(scores.argmax(-1) == labels))
    majority = float(max(labels.mean(), 1 - labels.mean()))
    print(f"{args.technique}: validation accuracy {accuracy:.3f} on {len(labels)} reviews "
          f"(majority-class baseline {majority:.3f})")
    result = {"accuracy": accuracy, "majority_baseline": majority}
    if args.technique in ("pet_few", "ptuning"):
        print(f"accuracy on its {len(shots)} training shots: {shot_accuracy:.3f}")
        result["shot_accuracy"] = shot_accuracy
    return result


if __name__ == "__main__":
    main()
