"""Run bert4keras's own example scripts on kerasnlp4su, with only mechanical edits.

The promise of kerasnlp4su is that a bert4keras script runs after changing
its imports. This tool checks that promise on bert4keras's `examples/`
folder: it reads each script from a bert4keras checkout (a directory, or a
bare git mirror read with `git show HEAD:...`), applies the edits listed in
`REWRITES` (imports, file paths, epoch counts, sizes; nothing else), writes
tiny checkpoints and tiny synthetic data in the format each script reads,
runs each script and records whether it finished and, if not, the first
line of its error.

    python tools/run_bert4keras_examples.py                      # every script
    python tools/run_bert4keras_examples.py --only task_sentiment_albert.py
    python tools/run_bert4keras_examples.py --show-edits task_seq2seq_autotitle.py
    python tools/run_bert4keras_examples.py --in-process --only a.py,b.py   # one interpreter

By default every script runs in its own subprocess (with `--timeout`);
`--in-process` runs them one after the other in this interpreter with
`runpy` (TensorFlow starts once; the test suite uses it).

The edits are all in `REWRITES` below and nothing here edits a script's
logic: what a reader sees there is exactly what changed. The per-script
table `EXAMPLES` only says which data files a script reads and in which
format, for a script that cannot run here, why, and the migration edits of
docs/migrating_examples.md (`Example.fixes`), applied only with `--with-fixes`.
"""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import runpy
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CHECKOUTS = ("/work/.mirror/bojone+bert4keras/repo", "/tmp/b4k/repo")

# ----------------------------------------------------------------- the edits
#: Where a pretrained model's files lived on bert4keras's author's machine.
PRETRAINED_DIR = "/root/kg/bert/"
#: A shrunk value is never larger than the script's own.
SMALL = {"maxlen": 48, "max_p_len": 48, "max_q_len": 16, "max_a_len": 12, "batch_size": 4,
         "steps_per_epoch": 2, "epochs": 1, "steps": 12, "converged_steps": 2,
         "minlen": 4}


@dataclasses.dataclass
class Rewrite:
    """One mechanical edit: a regex and its replacement (a `re.sub` repl, given the context)."""

    name: str
    pattern: str
    replace: object  # fn(match, context) -> str
    why: str

    def apply(self, source, context):
        return re.sub(self.pattern, lambda m: self.replace(m, context), source, flags=re.M)


#: Caps for keyword arguments where they differ: `maxlen=N` of a decoder is the
#: number of steps an untrained model decodes (it never emits the end token).
SMALL_ARGUMENTS = dict(SMALL, maxlen=16)


def _shrink(match, context, sizes=SMALL):
    name, value = match.group(2), int(match.group(4))
    return f"{match.group(1)}{name}{match.group(3)}{min(value, sizes[name])}"


def _pretrained_file(match, context):
    quote, path = match.group(1), match.group(2)
    return quote + context["checkpoints"].file_for(path, context["family"],
                                                   context.get("config", {})) + quote


REWRITES = [
    Rewrite("import", r"^(\s*)(from|import)(\s+)bert4keras\b",
            lambda m, c: f"{m.group(1)}{m.group(2)}{m.group(3)}kerasnlp4su",
            "`from bert4keras.x import y` -> `from kerasnlp4su.x import y`"),
    Rewrite("pretrained files", r"""(['"])(%s[^'"]*)\1""" % re.escape(PRETRAINED_DIR),
            _pretrained_file,
            "config / checkpoint / vocab / sentencepiece paths -> the tiny checkpoint of the "
            "family the script builds (its `model='...'`, else BERT)"),
    Rewrite("data paths", r"""(['"])(/root/|datasets/)""",
            lambda m, c: m.group(1) + os.path.join(c["data"], m.group(2).strip("/")) + "/",
            "'/root/...' and 'datasets/...' -> the same path under the folder of tiny data"),
    Rewrite("weights files", r"""\.weights(['"])""", lambda m, c: ".weights.h5" + m.group(1),
            "Keras 3 saves weights only to `.weights.h5`"),
    Rewrite("model files", r"""(\.save\(|load_model\()(['"])([^'"]+?)(\.h5|\.model)?\2""",
            lambda m, c: f"{m.group(1)}{m.group(2)}{m.group(3)}.keras{m.group(2)}",
            "`model.save('x')` / `load_model('x')` -> 'x.keras' (Keras 3's file format)"),
    Rewrite("sizes", r"^([ \t]*)(%s)([ \t]*=[ \t]*)(\d+)[ \t]*$" % "|".join(SMALL), _shrink,
            "`maxlen`/`batch_size`/`steps_per_epoch`/`epochs`/`steps = N` -> small values"),
    Rewrite("size arguments", r"([(,][ \t]*(?:#[^\n]*)?\s*)(steps_per_epoch|epochs|maxlen|minlen)(\s*=\s*)(\d+)(?=\s*[,)\n])",
            lambda m, c: _shrink(m, c, SMALL_ARGUMENTS), "literal `epochs=N`, `steps_per_epoch=N`, "
            "`maxlen=N`, `minlen=N` arguments -> small values"),
]


def rewrite(source, context):
    """`source` with every edit of `REWRITES` applied (context: data dir, checkpoints, family)."""
    for edit in REWRITES:
        source = edit.apply(source, context)
    return source


# ------------------------------------------------------- tiny checkpoints
#: bert4keras's `model=` names that load another family's checkpoint.
FAMILY_OF_MODEL = {"roberta": "bert", "gpt2_ml": "gpt2_ml", "mt5.1.1": "mt5.1.1"}


def family_of(source):
    """The family a script's `build_transformer_model(..., model='x')` loads (else 'bert').

    Read from the code (not from comments or docstrings that mention another model).
    """
    import ast

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "build_transformer_model":
            for keyword in node.keywords:
                if keyword.arg == "model" and isinstance(keyword.value, ast.Constant):
                    return FAMILY_OF_MODEL.get(keyword.value.value, keyword.value.value)
    return "bert"


class TinyCheckpoints:
    """Writes one tiny checkpoint per family on first use, sharing the shipped BERT vocab.

    Every family gets the vocabulary of `checkpoints/tiny_bert` (Chinese characters,
    English words), so the scripts' Chinese text tokenizes without [UNK].
    """

    def __init__(self, directory):
        self.directory = directory
        self.written = {}

    def _file_for(self, original, family, config):
        files = self.files(family, config)
        base = os.path.basename(original)
        if base.endswith(".json") and "keep_tokens" in base:
            return files["keep_tokens"]
        if base.endswith(".json"):
            return files["config"]
        if base.endswith(".model"):
            return files["spm"]
        if base.endswith(".txt"):
            return files["vocab"]
        if ".ckpt" in base or base.startswith("model"):
            return files["checkpoint"]
        return None

    def file_for(self, original, family, config=None):
        """The tiny stand-in for a pretrained file, or a named path that does not exist.

        `config`: official config entries that differ from the family's tiny one
        (a script that needs more layers than two, say).
        """
        found = self._file_for(original, family, config or {})
        return found or os.path.join(self.directory, family, "no-tiny-" + os.path.basename(original))

    def files(self, family, config=None):
        key = (family, json.dumps(config or {}, sort_keys=True))
        if key not in self.written:
            self.written[key] = self._write(family, config or {})
        return self.written[key]

    def _write(self, family, overrides):
        shipped = os.path.join(REPO, "checkpoints", "tiny_bert")
        vocab = os.path.join(shipped, "vocab.txt")
        if family == "bert" and not overrides:
            return {"config": os.path.join(shipped, "bert_config.json"), "vocab": vocab,
                    "checkpoint": os.path.join(shipped, "bert_model.ckpt"),
                    "spm": None, "keep_tokens": None}
        import numpy as np

        from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint
        from kerasnlp4su.models.registry import get_family

        spec = get_family(family)
        with open(vocab, encoding="utf-8") as f:
            vocab_size = sum(1 for line in f if line.strip())
        config = dict(spec.tiny_config, vocab_size=vocab_size)
        if "max_position_embeddings" in config:
            config["max_position_embeddings"] = 128
        config.update(overrides)
        directory = os.path.join(self.directory, family + "".join(
            f"_{k}{v}" for k, v in sorted(overrides.items())))
        os.makedirs(directory, exist_ok=True)
        config_path = os.path.join(directory, "config.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        tensors = spec.tiny_tensors(config, np.random.default_rng(0))
        checkpoint = write_tf1_checkpoint(os.path.join(directory, "model.ckpt"), tensors)
        return {"config": config_path, "vocab": vocab, "checkpoint": checkpoint,
                "spm": None, "keep_tokens": None}


# ------------------------------------------------------------- tiny data
WORDS = ["我们", "今天", "天气", "很好", "电影", "不错", "中国", "北京", "上海", "公司", "时间",
         "问题", "世界", "工作", "学习", "发展", "生活", "经济", "文化", "历史", "朋友", "知道"]


def _sentence(i, n=6):
    return "".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + "。"


def _lines(rows):
    return "".join(row + "\n" for row in rows)


def sentiment(n):
    return _lines(f"{_sentence(i)}\t{i % 2}" for i in range(n))


def lcqmc(n):
    return _lines(f"{_sentence(i, 4)}\t{_sentence(i + i % 2, 4)}\t{1 - i % 2}" for i in range(n))


def clue_json(n):
    # Labels cycle through all 119 IFLYTEK classes: the scripts save weights
    # only when validation accuracy beats 0, and an untrained 119-way
    # classifier rarely hits a label drawn from a few classes.
    return _lines(json.dumps({"sentence": _sentence(i), "label": str(i % 119)}, ensure_ascii=False)
                  for i in range(n))


PREDICATES = ["出生地", "国籍", "作者"]


def spo_json(n):
    rows = []
    for i in range(n):
        subject, obj = WORDS[i % len(WORDS)], WORDS[(i + 5) % len(WORDS)]
        text = f"{subject}的{PREDICATES[i % 3]}是{obj}，{_sentence(i, 3)}"
        rows.append(json.dumps({"text": text, "spo_list": [
            {"subject": subject, "predicate": PREDICATES[i % 3], "object": obj,
             "subject_type": "人物", "object_type": "地点"}]}, ensure_ascii=False))
    return _lines(rows)


def schemas(_):
    return _lines(json.dumps({"predicate": p, "subject_type": "人物", "object_type": "地点"},
                             ensure_ascii=False) for p in PREDICATES)


def qa_json(n):
    data = []
    for i in range(n):
        answer = WORDS[(i + 3) % len(WORDS)]
        passage = f"{_sentence(i, 3)}答案是{answer}。"
        data.append({"id": str(i), "question": f"{WORDS[i % len(WORDS)]}是什么",
                     "passages": [{"passage": passage, "answer": answer},
                                  {"passage": _sentence(i + 1, 3), "answer": ""}]})
    return json.dumps(data, ensure_ascii=False)


def ner_corpus(n):
    blocks = []
    for i in range(n):
        place, name = WORDS[(i + 6) % len(WORDS)], WORDS[i % len(WORDS)]
        chars = [(c, "O") for c in "我在"]
        chars += [(c, ("B-" if k == 0 else "I-") + "LOC") for k, c in enumerate(place)]
        chars += [(c, ("B-" if k == 0 else "I-") + "PER") for k, c in enumerate(name)]
        chars += [(c, "O") for c in _sentence(i, 2)]
        blocks.append("\n".join(f"{c} {t}" for c, t in chars))
    return "\n\n".join(blocks) + "\n\n"  # the corpus ends with an empty line


def segmented(n):
    return _lines("  ".join(WORDS[(i * 5 + k) % len(WORDS)] for k in range(6)) + "  。"
                  for i in range(n))


def unsegmented(n):
    return _lines(_sentence(i) for i in range(n))


def title_and_text(i):
    return f"{_sentence(i, 2)}\n{_sentence(i + 1)}{_sentence(i + 2)}"


@dataclasses.dataclass
class DataFile:
    """A file a script reads: its path (as the script spells it, minus the leading '/'),
    a writer `fn(n) -> str` of `n` records and the encoding it is read with."""

    path: str
    write: object
    n: int = 12
    encoding: str = "utf-8"


def _files(*files):
    return list(files)


def _sentiment(train):
    return _files(*(DataFile(f"datasets/sentiment/sentiment.{part}.data", sentiment, n)
                    for part, n in (("train", train), ("valid", 6), ("test", 6))))


SENTIMENT = _sentiment(12)
IFLYTEK = _files(DataFile("root/CLUE-master/baselines/CLUEdataset/iflytek/train.json", clue_json),
                 DataFile("root/CLUE-master/baselines/CLUEdataset/iflytek/dev.json", clue_json, 119))
SPO = _files(DataFile("root/kg/datasets/train_data.json", spo_json),
             DataFile("root/kg/datasets/dev_data.json", spo_json, 4),
             DataFile("root/kg/datasets/all_50_schemas", schemas))
QA = _files(DataFile("root/qa_datasets/WebQA.json", qa_json, 6),
            DataFile("root/qa_datasets/SogouQA.json", qa_json, 9))
THUCNEWS = _files(*(DataFile(f"root/thuctc/THUCNews/news/{i}.txt", lambda _, i=i: title_and_text(i))
                    for i in range(6)))


@dataclasses.dataclass
class Example:
    """What a bert4keras example reads, and why it cannot run here if it cannot."""

    data: list = dataclasses.field(default_factory=list)
    cannot: str = ""   # why the tool does not run it (its own Keras-2 code, a download, ...)
    serve: str = ""    # a URL path to GET when the script serves HTTP (it then never exits)
    after: str = ""    # runs in this script's work folder, after it (reads its saved weights)
    config: dict = dataclasses.field(default_factory=dict)  # tiny checkpoint's config changes
    # The migration edits of docs/migrating_examples.md for Keras-2-only code
    # of the script's own, as (old, new) pairs, `old` a text or a compiled
    # pattern (`delete_definition`); applied with --with-fixes.
    fixes: list = dataclasses.field(default_factory=list)


def delete_definition(name):
    """A fix deleting the script's top-level `def name(...)` or `class name(...)`: from its
    first line to the next line that starts in column 0 (a closing `)` of the
    signature does not count)."""
    return (re.compile(r"^(?:def|class) %s\b.*?\n(?=[^\s)])" % re.escape(name),
                       flags=re.M | re.S), "")


def apply_fix(source, name, old, new):
    """`source` with the fix `(old, new)` applied; it must match exactly once."""
    matches = len(old.findall(source)) if isinstance(old, re.Pattern) else source.count(old)
    if matches != 1:
        shown = old.pattern if isinstance(old, re.Pattern) else old
        raise ValueError(f"run_bert4keras_examples: the fix {shown!r} of {name} matches "
                         f"{matches} times, not once")
    return old.sub(new, source) if isinstance(old, re.Pattern) else source.replace(old, new)


# Below, the README's table "Helpers that bert4keras's examples define themselves".
ADVERSARIAL_FIX = [delete_definition("adversarial_training"), (
    "\nadversarial_training(model, 'Embedding-Token', 0.5)",
    "\nfrom kerasnlp4su.training import adversarial_training\n"
    "adversarial_training(model, 'Embedding-Token', 0.5, include_clean_loss=False)")]
GRADIENT_PENALTY_FIX = [
    delete_definition("sparse_categorical_crossentropy"),
    delete_definition("loss_with_gradient_penalty"),
    ("    loss=loss_with_gradient_penalty,\n", "    loss='sparse_categorical_crossentropy',\n"),
    ("metrics=['sparse_categorical_accuracy'],\n)\n",
     "metrics=['sparse_categorical_accuracy'],\n)\n"
     "from kerasnlp4su.training import gradient_penalty\n"
     "gradient_penalty(model, 'Embedding-Token', epsilon=1)\n")]
GET_OUTPUT_AT_FIX = [(".get_output_at(-1)", ".output")]
VAT_FIX = [
    delete_definition("virtual_adversarial_training"),
    ("\nvirtual_adversarial_training(model_vat, 'Embedding-Token')",
     "\nfrom kerasnlp4su.training import virtual_adversarial_training\n"
     "virtual_adversarial_training(model_vat, 'Embedding-Token')")]
INTEGRATED_GRADIENTS_FIX = [
    delete_definition("Gradient"),
    ("label_in = Input(shape=(1,))  # 指定标签\n"
     "input = model.get_layer('Embedding-Token').output\n"
     "output = model.output\n"
     "grads = Gradient()([input, output, label_in])\n"
     "grad_model = Model(model.inputs + [label_in], grads)\n", ""),
    # Keras 3's predict takes arrays, not nested lists.
    ("preds = model.predict([[token_ids], [segment_ids]])",
     "from kerasnlp4su.snippets import to_array\n"
     "preds = model.predict(to_array([token_ids], [segment_ids]))"),
    (re.compile(r"^pred_grads = \[\]\n.*?^pred_grads = np\.mean\(pred_grads, 0\)\n",
                flags=re.M | re.S),
     "from kerasnlp4su.training import integrated_gradients\n"
     "pred_grads = integrated_gradients(model, [[token_ids], [segment_ids]], "
     "'Embedding-Token', steps=20)[0]\n")]
DICT_TARGET_FIX = [(
    "\n    model.fit(\n        train_dataset,",
    "\n    train_dataset = train_dataset.map(lambda x, y: (x, y['Probas']))\n"
    "    valid_dataset = valid_dataset.map(lambda x, y: (x, y['Probas']))\n"
    "    model.fit(\n        train_dataset,")]

EXAMPLES = {
    "basic_extract_features.py": Example(),
    "basic_gibbs_sampling_via_mlm.py": Example(),
    "basic_language_model_cpm_lm.py": Example(),
    "basic_language_model_gpt2_ml.py": Example(),
    "basic_language_model_nezha_gen_gpt.py": Example(),
    "basic_make_uncased_model_cased.py": Example(),
    "basic_masked_language_model.py": Example(),
    "basic_simple_web_serving_simbert.py": Example(serve="/gen_synonyms?text=我们今天很好"),
    "task_conditional_language_model.py": Example(SENTIMENT),
    "task_iflytek_adversarial_training.py": Example(IFLYTEK, fixes=ADVERSARIAL_FIX),
    # Its successor has 3 layers, each replacing predecessor_layers // 3.
    "task_iflytek_bert_of_theseus.py": Example(IFLYTEK, config={"num_hidden_layers": 6}),
    "task_iflytek_gradient_penalty.py": Example(IFLYTEK, fixes=GRADIENT_PENALTY_FIX),
    "task_iflytek_multigpu.py": Example(IFLYTEK, fixes=DICT_TARGET_FIX),
    "task_image_caption.py": Example(cannot=(
        "needs COCO images and ImageNet weights for keras.applications' ResNet (a download)")),
    "task_language_model.py": Example(_files(*(
        DataFile(f"root/金庸/book/{i}.txt", unsegmented, 8, "gbk") for i in range(2)))),
    "task_language_model_chinese_chess.py": Example(cannot=(
        "needs the `cchess` package and a chess record file")),
    "task_question_answer_generation_by_seq2seq.py": Example(QA),
    "task_reading_comprehension_by_mlm.py": Example(QA),
    "task_reading_comprehension_by_seq2seq.py": Example(QA),
    "task_relation_extraction.py": Example(SPO, fixes=GET_OUTPUT_AT_FIX),
    "task_relation_extraction_gplinker.py": Example(SPO),
    "task_sentence_similarity_lcqmc.py": Example(_files(*(
        DataFile(f"datasets/lcqmc/lcqmc.{part}.data", lcqmc, n)
        for part, n in (("train", 12), ("valid", 6), ("test", 6))))),
    "task_sentiment_albert.py": Example(SENTIMENT),
    "task_sentiment_integrated_gradients.py": Example(SENTIMENT, after="task_sentiment_albert.py",
                                                      fixes=INTEGRATED_GRADIENTS_FIX),
    "task_sentiment_virtual_adversarial_training.py": Example(_sentiment(200), fixes=VAT_FIX),
    "task_seq2seq_ape210k_math_word_problem.py": Example(cannot=(
        "needs `pandas` and the Ape210k data set")),
    "task_seq2seq_autotitle.py": Example(THUCNEWS),
    "task_seq2seq_autotitle_csl.py": Example(cannot="needs `rouge` and `nltk`"),
    "task_seq2seq_autotitle_csl_mt5.py": Example(cannot=(
        "needs `rouge`, `nltk` and an mT5 sentencepiece model")),
    "task_seq2seq_autotitle_multigpu.py": Example(THUCNEWS),
    # `bert_layers = 12`: they read Transformer-11-FeedForward-Norm, so a 12-layer tiny BERT.
    "task_sequence_labeling_cws_crf.py": Example(config={"num_hidden_layers": 12}, data=_files(
        DataFile("root/icwb2-data/training/pku_training.utf8", segmented, 20),
        DataFile("root/icwb2-data/testing/pku_test.utf8", unsegmented, 4))),
    "task_sequence_labeling_ner_crf.py": Example(config={"num_hidden_layers": 12}, data=_files(*(
        DataFile(f"root/ner/china-people-daily-ner-corpus/example.{part}", ner_corpus, n)
        for part, n in (("train", 8), ("dev", 2), ("test", 2))))),
}


def write_data(directory, example):
    for data in example.data:
        path = os.path.join(directory, data.path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding=data.encoding) as f:
            f.write(data.write(data.n))


# -------------------------------------------------------- reading scripts
def read_examples(checkout):
    """`{file name: source}` of `examples/*.py` from a checkout directory or a bare git mirror."""
    folder = os.path.join(checkout, "examples")
    if os.path.isdir(folder):
        return {name: open(os.path.join(folder, name), encoding="utf-8").read()
                for name in sorted(os.listdir(folder)) if name.endswith(".py")}
    git = ["git", "--git-dir", checkout]
    names = subprocess.run(git + ["ls-tree", "--name-only", "HEAD", "examples/"],
                           check=True, capture_output=True, text=True).stdout.split()
    return {os.path.basename(n): subprocess.run(git + ["show", f"HEAD:{n}"], check=True,
                                                capture_output=True, text=True).stdout
            for n in sorted(names) if n.endswith(".py")}


def find_checkout(path=None):
    """The bert4keras checkout to read (`path`, else the first default that exists), or None."""
    for candidate in ([path] if path else DEFAULT_CHECKOUTS):
        if candidate and (os.path.isdir(os.path.join(candidate, "examples"))
                          or os.path.isfile(os.path.join(candidate, "HEAD"))):
            return candidate
    return None


def missing_modules(source, scripts=()):
    """Top-level modules a script imports that are not installed (besides bert4keras and
    the other example `scripts`, which it may import)."""
    import importlib.util

    names = set(re.findall(r"^\s*(?:from|import)\s+(\w+)", source, flags=re.M))
    names -= {"bert4keras", "kerasnlp4su", "__future__"} | {n[:-3] for n in scripts}
    return sorted(n for n in names if importlib.util.find_spec(n) is None)


# ---------------------------------------------------------------- running
@dataclasses.dataclass
class Result:
    script: str
    status: str      # "pass", "fail", "timeout", "not run"
    detail: str = ""
    seconds: float = 0.0


def first_error_line(text):
    """The exception line of a traceback (`Type: message`), else the last non-empty line.

    A TensorFlow "Graph execution error:" gets the first line of its message
    that says what went wrong appended.
    """
    # TensorFlow's C++ log lines (`E0000 00:00:...`) are noise, not the error.
    lines = [line for line in text.strip().splitlines()
             if line.strip() and not re.match(r"[EWIF]\d{4} ", line)]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Traceback"):
            rest = [line for line in lines[i + 1:] if not line.startswith((" ", "\t"))]
            return _with_tf_detail(rest)
    return lines[-1].strip()[:300] if lines else ""


def _with_tf_detail(lines):
    if not lines:
        return ""
    line = lines[0].strip()
    if line.endswith("error:"):
        detail = [x.strip() for x in lines[1:] if x.strip() and not x.startswith(
            ("Detected at node", "[[", "File ", "\t[["))]
        line += " " + (detail[0] if detail else "")
    return line[:300]


class Workspace:
    """Temporary folders for one run: rewritten scripts, tiny data, checkpoints, work dirs."""

    def __init__(self, root):
        self.root = root
        self.scripts = os.path.join(root, "scripts")
        self.data = os.path.join(root, "data")
        self.checkpoints = TinyCheckpoints(os.path.join(root, "checkpoints"))
        os.makedirs(self.scripts, exist_ok=True)

    def prepare(self, sources, names, with_fixes=False):
        """Write the rewritten scripts `names`, those they import, and their data.

        With `with_fixes`, each script's migration edits (`Example.fixes`) are
        applied too; each must match the script exactly once.
        """
        wanted = set(names)
        for name in names:
            imported = re.findall(r"^from (\w+) import", sources[name], flags=re.M)
            wanted.update(n + ".py" for n in imported if n + ".py" in sources)
        for name in sorted(wanted):
            source = sources[name]
            # Each script reads its own copy of the data (sizes differ: VAT
            # needs 100 sentences for its 1% labelled split).
            data = os.path.join(self.data, name[:-3])
            context = {"data": data, "checkpoints": self.checkpoints, "family": family_of(source),
                       "config": EXAMPLES.get(name, Example()).config}
            source = rewrite(source, context)
            for old, new in EXAMPLES.get(name, Example()).fixes if with_fixes else ():
                source = apply_fix(source, name, old, new)
            with open(os.path.join(self.scripts, name), "w", encoding="utf-8") as f:
                f.write(source)
            write_data(data, EXAMPLES.get(name, Example()))

    def workdir(self, name):
        name = EXAMPLES.get(name, Example()).after or name
        # Two levels deep: scripts write '../random_order.json' next to their folder.
        path = os.path.join(self.root, "work", name[:-3], "cwd")
        os.makedirs(path, exist_ok=True)
        return path


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    return env


def run_subprocess(workspace, name, timeout, serve=""):
    script = os.path.join(workspace.scripts, name)
    start = time.time()
    process = subprocess.Popen([sys.executable, script], cwd=workspace.workdir(name), env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if serve:
        return _probe_server(process, serve, timeout, start, name)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return Result(name, "timeout", f"still running after {timeout} s: "
                      + first_error_line(output), time.time() - start)
    status = "pass" if process.returncode == 0 else "fail"
    return Result(name, status, "" if status == "pass" else first_error_line(output),
                  time.time() - start)


def _probe_server(process, path, timeout, start, name):
    """A serving script never exits: wait until it answers `path` on its port, then stop it."""
    import urllib.parse
    import urllib.request

    source = open(os.path.join(os.path.dirname(process.args[1]), name), encoding="utf-8").read()
    port = re.search(r"WebServing\(port=(\d+)", source)
    url = "http://127.0.0.1:%s%s" % (port.group(1) if port else 8864, urllib.parse.quote(path, "/?="))
    try:
        while time.time() - start < timeout and process.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    answer = response.read().decode("utf-8")
                return Result(name, "pass", f"served {path!r}: {answer[:80]}", time.time() - start)
            except OSError:
                time.sleep(1)
        output = process.communicate(timeout=5)[0] if process.poll() is not None else ""
        return Result(name, "fail" if output else "timeout", first_error_line(output) or
                      f"did not answer {url} within {timeout} s", time.time() - start)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def run_in_process(workspace, name):
    """Run one rewritten script here with runpy (as `__main__`); keras state is cleared after."""
    import keras

    script = os.path.join(workspace.scripts, name)
    start, cwd, argv = time.time(), os.getcwd(), sys.argv
    output = io.StringIO()
    sys.path.insert(0, workspace.scripts)
    try:
        os.chdir(workspace.workdir(name))
        sys.argv = [script]
        with contextlib.redirect_stdout(output):
            runpy.run_path(script, run_name="__main__")
        return Result(name, "pass", "", time.time() - start)
    except BaseException as error:  # noqa: BLE001 - a script's SystemExit counts as its result
        if isinstance(error, SystemExit) and error.code in (0, None):
            return Result(name, "pass", "", time.time() - start)
        if isinstance(error, KeyboardInterrupt):
            raise
        text = "".join(traceback.format_exception_only(type(error), error))
        return Result(name, "fail", _with_tf_detail(text.strip().splitlines()) or repr(error),
                      time.time() - start)
    finally:
        os.chdir(cwd)
        sys.argv = argv
        sys.path.remove(workspace.scripts)
        for module in [m for m in list(sys.modules)
                       if os.path.exists(os.path.join(workspace.scripts, m + ".py"))]:
            del sys.modules[module]  # a script imported by another (integrated gradients)
        keras.backend.clear_session()


def run_examples(checkout, names=None, in_process=False, timeout=600, root=None, log=None,
                 with_fixes=False):
    """Rewrite and run the named examples (default: all); returns a list of `Result`.

    `with_fixes`: also apply each script's migration edits (`Example.fixes`).
    """
    sources = read_examples(checkout)
    unknown = sorted(set(names or ()) - set(sources))
    if unknown:
        raise ValueError(f"run_bert4keras_examples: no example named {unknown[0]!r} in {checkout}")
    root = root or tempfile.mkdtemp(prefix="b4k_examples_")
    if log:
        log(f"rewritten scripts, data and work folders: {root}")
    workspace = Workspace(root)
    names = names or sorted(sources)
    runnable = [n for n in names if not (EXAMPLES.get(n, Example()).cannot
                                         or missing_modules(sources[n], sources))]
    workspace.prepare(sources, runnable, with_fixes)
    results = []
    for name in names:
        example = EXAMPLES.get(name, Example())
        missing = missing_modules(sources[name], sources)
        if example.cannot or missing:
            reason = example.cannot or "needs " + ", ".join(f"`{m}`" for m in missing)
            result = Result(name, "not run", reason)
        elif in_process and example.serve:
            result = Result(name, "not run", "serves HTTP until stopped: run it without --in-process")
        elif in_process:
            result = run_in_process(workspace, name)
        else:
            result = run_subprocess(workspace, name, timeout, example.serve)
        results.append(result)
        if log:
            log(f"{result.status:8s} {result.seconds:6.1f}s {name}  {result.detail}")
    return results


def show_edits(checkout, name, with_fixes=False):
    """A unified diff of the edits made to one script."""
    import difflib

    source = read_examples(checkout)[name]
    context = {"data": "<data>", "checkpoints": _NamedStandIns(), "family": family_of(source)}
    edited = rewrite(source, context)
    for old, new in EXAMPLES.get(name, Example()).fixes if with_fixes else ():
        edited = apply_fix(edited, name, old, new)
    return "".join(difflib.unified_diff(source.splitlines(True), edited.splitlines(True),
                                        name, name))


class _NamedStandIns:
    def file_for(self, original, family, config=None):
        return f"<tiny {family} {os.path.basename(original)}>"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bert4keras", help="a bert4keras checkout or bare git mirror "
                        f"(default: the first of {', '.join(DEFAULT_CHECKOUTS)})")
    parser.add_argument("--only", help="comma-separated script names")
    parser.add_argument("--in-process", action="store_true", help="run all in this interpreter")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per script")
    parser.add_argument("--with-fixes", action="store_true",
                        help="also apply the migration edits of docs/migrating_examples.md")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--workdir", help="folder for the rewritten scripts, data and checkpoints "
                        "(default: a new temporary folder, kept for inspection)")
    parser.add_argument("--show-edits", metavar="SCRIPT", help="print the edits of one script")
    parser.add_argument("--eager", action="store_true", help="with --in-process on TensorFlow: "
                        "run tf.functions eagerly (no graph tracing; a tiny model's few steps run "
                        "several times faster, which the test suite's subset needs)")
    args = parser.parse_args(argv)
    # Run the worktree's kerasnlp4su (the subprocesses get it through PYTHONPATH).
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    if args.eager:
        import tensorflow as tf

        tf.config.run_functions_eagerly(True)
    checkout = find_checkout(args.bert4keras)
    if checkout is None:
        parser.error("no bert4keras checkout found; pass --bert4keras PATH")
    if args.show_edits:
        print(show_edits(checkout, args.show_edits, args.with_fixes))
        return 0
    names = args.only.split(",") if args.only else None
    results = run_examples(checkout, names, args.in_process, args.timeout, root=args.workdir,
                           with_fixes=args.with_fixes,
                           log=lambda line: print(line, flush=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([dataclasses.asdict(r) for r in results], f, indent=1, ensure_ascii=False)
    return 0 if all(r.status in ("pass", "not run") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
