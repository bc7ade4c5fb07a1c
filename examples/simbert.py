"""SimBERT: one UniLM model learns to retrieve and to generate paraphrases, against a baseline.

Generated paired data (`老王在家里看书` / `在家里看书的是老王`: name, place,
activity), each pair encoded twice, `[CLS] a [SEP] b [SEP]` and
`[CLS] b [SEP] a [SEP]` in adjacent rows. `training.simbert_model` adds the
UniLM seq2seq loss on the second sentence and the in-batch similarity loss
on the L2-normalised [CLS] vectors (scale 30). Held-out pairs measure
retrieval: for each first sentence, is its paraphrase the nearest of all
held-out second sentences by [CLS] cosine (`simbert_encoder`)? The baseline
is the same retrieval with the untrained model (and chance, 1/N). A few
held-out sentences then get paraphrases by random sampling
(`Seq2SeqDecoder.random_sample`, KV cache).

    python examples/simbert.py          # ~2 min on 2 CPU cores
    python examples/simbert.py --fast   # smoke run
"""

import argparse
import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasnlp4su.decoding import Seq2SeqDecoder  # noqa: E402
from kerasnlp4su.models import build_transformer_model  # noqa: E402
from kerasnlp4su.snippets import sequence_padding  # noqa: E402
from kerasnlp4su.tokenizers import Tokenizer  # noqa: E402
from kerasnlp4su.training import simbert_encoder, simbert_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")
NAMES = "王李张陈马林周黄"
PLACES = "家京城院山海江河"
ACTIVITIES = ["吃米", "看书", "写字", "开车", "听音乐", "唱歌", "喝水", "打球", "画画", "跑步"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(TINY, "bert_config.json"))
    parser.add_argument("--checkpoint", default=os.path.join(TINY, "bert_model.ckpt"))
    parser.add_argument("--vocab", default=os.path.join(TINY, "vocab.txt"))
    parser.add_argument("--train-pairs", type=int, default=400)
    parser.add_argument("--test-pairs", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32, help="rows (two per pair)")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--maxlen", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="a short run (used by the tests)")
    return parser.parse_args(argv)


def make_pairs(rng):
    """All (sentence, paraphrase) pairs, shuffled."""
    pairs = [(f"老{n}在{p}里{a}", f"在{p}里{a}的是老{n}")
             for n, p, a in itertools.product(NAMES, PLACES, ACTIVITIES)]
    rng.shuffle(pairs)
    return pairs


def encode_rows(tokenizer, pairs, maxlen):
    """Each pair as two adjacent rows: (a, b) and (b, a)."""
    rows = [tokenizer.encode(first, second, maxlen=maxlen)
            for a, b in pairs for first, second in ((a, b), (b, a))]
    ids, segments = zip(*rows)
    return [sequence_padding(ids, length=maxlen), sequence_padding(segments, length=maxlen)]


def retrieval_accuracy(encoder, tokenizer, pairs, maxlen):
    def vectors(texts):
        ids = sequence_padding([tokenizer.encode(t, maxlen=maxlen)[0] for t in texts], length=maxlen)
        return encoder.predict([ids, np.zeros_like(ids)], verbose=0)

    queries, targets = vectors([a for a, _ in pairs]), vectors([b for _, b in pairs])
    return float(np.mean((queries @ targets.T).argmax(-1) == np.arange(len(pairs))))


def main(argv=None):
    args = parse_args(argv)
    if args.fast:
        # 128 pairs in batches of 8 pairs (16 rows): the same 64 steps as 256 pairs in
        # batches of 16, at half the rows per step (the MLM's 2,646-word projection dominates
        # a step); maxlen 24 cuts nothing (the longest pair is 21 tokens). 128 pairs in
        # batches of 16 pairs (32 steps) stay near 0.78; 4 pairs a batch are too few negatives.
        args.train_pairs, args.test_pairs, args.epochs = 128, 32, 4
        args.batch_size, args.maxlen = 16, 24
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    tokenizer = Tokenizer(args.vocab, do_lower_case=True)
    pairs = make_pairs(rng)
    train, test = pairs[:args.train_pairs], pairs[-args.test_pairs:]
    maxlen = args.maxlen

    transformer = build_transformer_model(args.config, args.checkpoint, application="unilm",
                                          with_pool="linear", with_mlm=True,
                                          return_keras_model=False)
    bert = transformer.model
    encoder = simbert_encoder(bert)
    baseline = retrieval_accuracy(encoder, tokenizer, test, maxlen)
    model = simbert_model(bert, scale=30.0)
    model.compile(keras.optimizers.Adam(args.learning_rate))
    # Rows stay in pair order (the loss pairs row 2i with 2i + 1): shuffle pairs, not rows.
    model.fit(encode_rows(tokenizer, train, maxlen), None, batch_size=args.batch_size,
              epochs=args.epochs, shuffle=False, verbose=2)
    accuracy = retrieval_accuracy(encoder, tokenizer, test, maxlen)

    decoder = Seq2SeqDecoder(transformer, end_id=tokenizer._token_end_id, maxlen=16)
    samples = {}
    for source, gold in test[:3]:
        token_ids, segment_ids = tokenizer.encode(source)
        outputs = decoder.random_sample([token_ids, segment_ids], n=2, topk=5)
        samples[source] = [tokenizer.decode(o) for o in outputs]
        print(f"  {source} -> {samples[source]}  (paraphrase in the data: {gold})")
    chance = 1.0 / len(test)
    print(f"retrieval accuracy on {len(test)} held-out pairs: {accuracy:.3f} (untrained model "
          f"{baseline:.3f}, chance {chance:.3f})")
    return {"accuracy": accuracy, "untrained_accuracy": baseline, "chance": chance,
            "samples": samples}


if __name__ == "__main__":
    main()
