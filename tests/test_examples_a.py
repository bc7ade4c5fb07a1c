"""Task examples: classification (Tiger + accumulation + FGM), GlobalPointer NER, GPLinker.

Each example's `main(["--fast"])` runs in-process on the tiny checkpoint, and
the span / triple decoders are checked on hand-made score matrices, where a
wrong index, a missed threshold or a flipped (row, column) gives a wrong set.
"""

import importlib.util
import json
import os

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")


def load_example(name):
    # examples/ is not a package: import each script by path, once.
    module_name = f"kerasnlp4su_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ner():
    return load_example("ner_globalpointer")


@pytest.fixture(scope="module")
def gplinker():
    return load_example("relation_extraction_gplinker")


@pytest.fixture(scope="module")
def tokenizer():
    from kerasnlp4su.tokenizers import Tokenizer
    return Tokenizer(os.path.join(TINY, "vocab.txt"), do_lower_case=True)


# ------------------------------------------------------------ NER decoding
def test_decode_entities_on_a_hand_made_score_matrix(ner):
    # "[CLS] 张 伟 在 北 京 [SEP] pad": token i covers character i - 1.
    mapping = [[], [0], [1], [2], [3], [4], []]
    labels = ["LOC", "PER"]
    scores = np.full((2, 8, 8), -5.0)
    scores[1, 1, 2] = 3.0     # PER 张伟 -> chars (0, 1)
    scores[0, 4, 5] = 0.5     # LOC 北京 -> chars (3, 4)
    scores[0, 3, 3] = 0.0     # exactly at the threshold: not an entity
    scores[0, 5, 4] = 9.0     # end before start
    scores[1, 0, 2] = 9.0     # starts on [CLS]
    scores[1, 2, 6] = 9.0     # ends on [SEP]
    scores[1, 4, 7] = 9.0     # ends on padding, beyond the mapping
    assert ner.decode_entities(scores, mapping, labels) == {(0, 1, "PER"), (3, 4, "LOC")}
    # A lower threshold admits the 0.0 cell, and only it.
    assert ner.decode_entities(scores, mapping, labels, threshold=-1.0) == {
        (0, 1, "PER"), (3, 4, "LOC"), (2, 2, "LOC")}


def test_decode_entities_maps_multi_character_tokens_back_to_characters(ner):
    # "[CLS] hello 世 [SEP]": a WordPiece token spans characters 0..4.
    mapping = [[], [0, 1, 2, 3, 4], [6], []]
    scores = np.full((1, 4, 4), -1.0)
    scores[0, 1, 2] = 1.0
    scores[0, 2, 2] = 1.0
    assert ner.decode_entities(scores, mapping, ["X"]) == {(0, 6, "X"), (6, 6, "X")}
    # Boundaries inside a token cannot be targets; whole-token ones can.
    assert ner.char_spans_to_token_spans({(0, 6, "X"), (1, 6, "X"), (6, 6, "X")}, mapping) == [
        (1, 2, "X"), (2, 2, "X")]


def test_span_prf_counts(ner):
    predicted = [{(0, 1, "PER"), (3, 4, "LOC")}, {(2, 3, "ORG")}, set()]
    gold = [{(0, 1, "PER"), (3, 4, "ORG")}, {(2, 3, "ORG")}, {(5, 6, "LOC")}]
    metrics = ner.span_prf(predicted, gold)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 4)
    assert metrics["f1"] == pytest.approx(2 * 2 / (3 + 4))
    assert ner.span_prf([set()], [{(0, 0, "X")}]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_ner_targets_decode_back_to_every_gold_entity(ner, tokenizer):
    # Through the real tokenizer and rematch: encoding the gold spans as a
    # 0/1 matrix and decoding that matrix must give the gold spans back.
    rows = ner.load_data(os.path.join(EXAMPLES, "data", "ner.jsonl"))
    labels = sorted({label for _, spans in rows for _, _, label in spans})
    _, targets, mappings = ner.encode(tokenizer, rows, labels, maxlen=48)
    for (text, spans), target, mapping in zip(rows, targets, mappings):
        decoded = ner.decode_entities(target * 2 - 1, mapping, labels)
        assert decoded == spans, text
    # The character spans are the annotated strings (inclusive ends).
    with open(os.path.join(EXAMPLES, "data", "ner.jsonl"), encoding="utf-8") as f:
        first = json.loads(f.readline())
    assert {(e["start"], e["end"], e["type"]) for e in first["entities"]} == rows[0][1]
    assert all(first["text"][e["start"]:e["end"] + 1] == e["text"] for e in first["entities"])


# ------------------------------------------------------- GPLinker decoding
def test_decode_triples_on_hand_made_score_matrices(gplinker):
    # "[CLS] 张 伟 生 于 北 京 [SEP]": token i covers character i - 1.
    mapping = [[], [0], [1], [2], [3], [4], [5], []]
    predicates = ["出生地", "工作单位"]
    entity = np.full((2, 8, 8), -3.0)
    head = np.full((2, 8, 8), -3.0)
    tail = np.full((2, 8, 8), -3.0)
    entity[0, 1, 2] = 2.0            # subject 张伟 (0, 1)
    entity[1, 5, 6] = 2.0            # object 北京 (4, 5)
    entity[1, 3, 3] = 2.0            # object 生 (2, 2), linked by head only
    head[0, 1, 5] = 1.0              # 出生地: subject head -> object head
    tail[0, 2, 6] = 1.0              # 出生地: subject tail -> object tail
    head[1, 1, 3] = 1.0              # 工作单位 head link to 生 ...
    tail[1, 2, 6] = 1.0              # ... but the tail link goes to 北京: no triple
    head[1, 1, 5] = 0.0              # at the threshold: not a link
    tail[1, 2, 6] = 1.0
    got = gplinker.decode_triples(entity, head, tail, mapping, predicates)
    assert got == {((0, 1), "出生地", (4, 5))}
    # With the (1, 1, 5) head link admitted, 工作单位 links 张伟 -> 北京 too.
    got = gplinker.decode_triples(entity, head, tail, mapping, predicates, threshold=-0.5)
    assert got == {((0, 1), "出生地", (4, 5)), ((0, 1), "工作单位", (4, 5))}


def test_decode_triples_swaps_nothing_and_ignores_special_tokens(gplinker):
    # Object before subject: links are (subject, object), not (left, right).
    mapping = [[], [0], [1], [2], [3], []]
    entity = np.full((2, 6, 6), -1.0)
    head = np.full((1, 6, 6), -1.0)
    tail = np.full((1, 6, 6), -1.0)
    entity[0, 3, 4] = 1.0            # subject (2, 3)
    entity[1, 1, 1] = 1.0            # object (0, 0)
    entity[0, 0, 4] = 1.0            # subject starting on [CLS]: ignored
    head[0, 3, 1] = 1.0
    tail[0, 4, 1] = 1.0
    assert gplinker.decode_triples(entity, head, tail, mapping, ["p"]) == {((2, 3), "p", (0, 0))}
    head[0, 3, 1], head[0, 1, 3] = -1.0, 1.0     # the transposed link is not the same link
    assert gplinker.decode_triples(entity, head, tail, mapping, ["p"]) == set()


def test_gplinker_targets_decode_back_to_every_gold_triple(gplinker, tokenizer):
    rows = gplinker.load_data(os.path.join(EXAMPLES, "data", "relations.jsonl"))
    predicates = sorted({p for _, triples in rows for _, p, _ in triples})
    _, (entity, head, tail), mappings = gplinker.encode(tokenizer, rows, predicates, maxlen=48)
    assert entity.shape[1:] == (2, entity.shape[2], 2) and head.shape[1] == len(predicates)

    def dense(pairs, length=48):
        scores = np.full((pairs.shape[0], length, length), -1.0)
        for k, group in enumerate(pairs):
            for i, j in group:
                if (i, j) != (0, 0):
                    scores[k, i, j] = 1.0
        return scores

    for n, (text, triples) in enumerate(rows):
        decoded = gplinker.decode_triples(dense(entity[n]), dense(head[n]), dense(tail[n]),
                                          mappings[n], predicates)
        assert decoded == triples, text


def test_sparse_globalpointer_loss_matches_dense_multilabel_ce(gplinker):
    # The sparse loss over listed (row, column) cells must equal the dense
    # multilabel CE over the same positives, with cell (0, 0) (the padding
    # label, [CLS]-[CLS]) taking no part at all: neither label nor candidate.
    from kerasnlp4su.training.losses import multilabel_categorical_crossentropy

    rng = np.random.default_rng(0)
    y_pred = rng.normal(size=(2, 3, 5, 5)).astype("float32")
    pairs = np.zeros((2, 3, 2, 2), dtype="int32")
    pairs[0, 0] = [(1, 2), (3, 4)]
    pairs[0, 2, 0] = (4, 1)
    pairs[1, 1, 0] = (2, 2)
    dense = np.zeros_like(y_pred)
    for b, h, k in zip(*np.nonzero(pairs.any(-1))):
        dense[b, h, pairs[b, h, k, 0], pairs[b, h, k, 1]] = 1
    sparse = float(gplinker.sparse_globalpointer_loss(pairs, y_pred))
    without_cell_zero = y_pred.copy()
    without_cell_zero[:, :, 0, 0] = -1e4
    expected = np.asarray(multilabel_categorical_crossentropy(
        dense.reshape(2, 3, 25), without_cell_zero.reshape(2, 3, 25))).sum(1).mean()
    assert sparse == pytest.approx(float(expected), rel=1e-4)


# ------------------------------------------------------------ fast runs
def check_metrics(metrics, keys):
    for key in keys:
        value = metrics[key]
        assert isinstance(value, float) and np.isfinite(value) and 0.0 <= value <= 1.0, (key, value)


def test_classification_tiger_fast_run():
    metrics = load_example("classification_tiger").main(["--fast"])
    check_metrics(metrics, ["accuracy", "majority_baseline"])
    # Tiger + accumulation + FGM must actually learn, not sit at the baseline
    # (seed 42 reaches 0.83 against 0.60 in the fast run).
    assert metrics["accuracy"] >= metrics["majority_baseline"] + 0.1, metrics


@pytest.mark.parametrize("extra", [[], ["--efficient"]], ids=["global", "efficient"])
def test_ner_globalpointer_fast_run(ner, extra):
    metrics = ner.main(["--fast", *extra])
    check_metrics(metrics, ["f1", "precision", "recall"])


def test_gplinker_fast_run(gplinker):
    metrics = gplinker.main(["--fast"])
    check_metrics(metrics, ["f1", "precision", "recall"])


def test_quickstart_fast_run():
    metrics = load_example("quickstart").main(["--fast"])
    check_metrics(metrics, ["accuracy"])
    assert metrics["reload_identical"] is True


# --------------------------------------------------------- every example
EXAMPLE_NAMES = sorted(name[:-3] for name in os.listdir(EXAMPLES) if name.endswith(".py"))
# Where each example's own run is tested (fast mode, or the JSON run of the
# distributed example); a new example must be added here and get a test.
RUN_BY = {
    "quickstart": "test_examples_a.py::test_quickstart_fast_run",
    "classification_tiger": "test_examples_a.py::test_classification_tiger_fast_run",
    "ner_globalpointer": "test_examples_a.py::test_ner_globalpointer_fast_run",
    "relation_extraction_gplinker": "test_examples_a.py::test_gplinker_fast_run",
    "sentence_embeddings": "test_examples_b.py::test_sentence_embeddings_official_checkpoint_path",
    "bert_whitening": "test_examples_b.py::test_bert_whitening_main",
    "simcse": "test_examples_b.py::test_simcse_main",
    "mlm_gibbs": "test_examples_b.py::test_mlm_gibbs_main",
    "seq2seq_unilm": "test_examples_b.py::test_seq2seq_unilm_main",
    "distributed_training": "test_distributed.py::test_two_device_data_parallel_matches_single_device",
    "finetuning_techniques": "test_examples_techniques.py::test_finetuning_techniques_fast_run",
    "prompt_classification": "test_examples_techniques.py::test_prompt_classification_fast_run",
    "simbert": "test_examples_techniques.py::test_simbert_fast_run",
    "multitask_cln": "test_examples_techniques.py::test_multitask_cln_fast_run",
}


def test_every_example_has_a_run_test_and_a_readme_entry():
    assert set(EXAMPLE_NAMES) == set(RUN_BY)
    for name, where in RUN_BY.items():
        path, test = where.split("::")
        with open(os.path.join(HERE, path), encoding="utf-8") as f:
            assert f"def {test}(" in f.read(), where
    with open(os.path.join(EXAMPLES, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for name in EXAMPLE_NAMES:
        assert f"examples/{name}.py" in readme, name
    for data in os.listdir(os.path.join(EXAMPLES, "data")):
        assert data in readme, data


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_accepts_an_official_release(name):
    # --config/--checkpoint/--vocab point any example at a real release.
    args = load_example(name).parse_args(["--config", "c.json", "--checkpoint", "m.ckpt",
                                          "--vocab", "v.txt"])
    assert (args.config, args.checkpoint, args.vocab) == ("c.json", "m.ckpt", "v.txt")
