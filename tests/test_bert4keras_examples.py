"""bert4keras's own example scripts run here with only mechanical edits.

`tools/run_bert4keras_examples.py` rewrites a bert4keras checkout's scripts
(imports, file paths, epoch counts; see its `REWRITES`) and runs them on
tiny checkpoints and tiny data. The suite runs a small representative
subset in ONE subprocess (TensorFlow starts once; the scripts run one after
the other with runpy) with TensorFlow functions run eagerly (`--eager`:
tracing a tiny model's graphs costs more than its few steps);
`docs/migrating_examples.md` has the full run, in graph mode.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

import run_bert4keras_examples as tool  # noqa: E402

CHECKOUT = tool.find_checkout()
needs_checkout = pytest.mark.skipif(
    CHECKOUT is None, reason="no bert4keras checkout (looked in %s); pass one to "
    "tools/run_bert4keras_examples.py --bert4keras PATH" % ", ".join(tool.DEFAULT_CHECKOUTS))

#: A classifier (ALBERT, Lambda + Dense on the CLS vector, forfit batches of
#: varying lengths, weights saved and re-loaded) and a UniLM seq2seq with an
#: output `Loss` layer on int32 segment ids and beam search: together ~15 s
#: of CPU after TensorFlow's start. The CRF, LM and pointer scripts run in
#: the full run (docs/migrating_examples.md); add one here only if the
#: suite's time allows (task_sequence_labeling_ner_crf.py costs ~8 s more).
SUBSET = ["task_sentiment_albert.py", "task_seq2seq_autotitle.py"]


def test_rewrites_are_mechanical():
    source = ("from bert4keras.models import build_transformer_model\n"
              "config_path = '/root/kg/bert/chinese_L-12_H-768_A-12/bert_config.json'\n"
              "data = load('/root/data/train.json')\n"
              "maxlen = 512\nepochs = 20\n"
              "model.fit(x, epochs=30, steps_per_epoch=1000)\n"
              "model.save_weights('best_model.weights')\nmodel.save('test.model')\n"
              "model = build_transformer_model(config_path, model='albert')\n")

    class StandIns:
        def file_for(self, original, family, config):
            return f"<{family}:{os.path.basename(original)}>"

    context = {"data": "/tmp/d", "checkpoints": StandIns(), "family": tool.family_of(source)}
    assert tool.rewrite(source, context).splitlines() == [
        "from kerasnlp4su.models import build_transformer_model",
        "config_path = '<albert:bert_config.json>'",
        "data = load('/tmp/d/root/data/train.json')",
        "maxlen = 48", "epochs = 1",
        "model.fit(x, epochs=1, steps_per_epoch=2)",
        "model.save_weights('best_model.weights.h5')", "model.save('test.keras')",
        "model = build_transformer_model(config_path, model='albert')"]


def test_first_error_line_names_the_tensorflow_problem():
    output = ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
              "tensorflow.python.framework.errors_impl.InvalidArgumentError: Graph execution "
              "error:\n\nDetected at node a/b defined at (most recent call last):\n\n"
              "indices[0,3] = 120 is not in [0, 100)\n\t [[{{node a/b}}]]\n")
    assert tool.first_error_line(output).endswith("error: indices[0,3] = 120 is not in [0, 100)")


def test_delete_definition_removes_one_top_level_definition():
    source = ("import numpy as np\n\n\ndef helper(\n    model, name\n):\n    x = 1\n\n"
              "    return x\n\n\nclass Helper(Layer):\n    pass\n\n\nhelper(model, 'E')\n")
    old, new = tool.delete_definition("helper")
    assert tool.apply_fix(source, "x.py", old, new) == (
        "import numpy as np\n\n\nclass Helper(Layer):\n    pass\n\n\nhelper(model, 'E')\n")
    old, new = tool.delete_definition("Helper")
    assert "class Helper" not in tool.apply_fix(source, "x.py", old, new)
    with pytest.raises(ValueError, match="matches 0 times"):
        tool.apply_fix(source, "x.py", *tool.delete_definition("missing"))


@needs_checkout
def test_every_listed_fix_matches_its_script_once():
    sources = tool.read_examples(CHECKOUT)
    fixed = {name: example for name, example in tool.EXAMPLES.items() if example.fixes}
    assert "task_sentiment_integrated_gradients.py" in fixed
    for name, example in fixed.items():
        edited = tool.rewrite(sources[name], {"data": "<data>", "checkpoints": tool._NamedStandIns(),
                                              "family": tool.family_of(sources[name])})
        for old, new in example.fixes:
            edited = tool.apply_fix(edited, name, old, new)  # raises unless exactly one match
        assert "K.gradients" not in edited and "_make_train_function" not in edited, name


@needs_checkout
def test_representative_examples_run_with_mechanical_edits(tmp_path):
    results = tmp_path / "results.json"
    command = [sys.executable, os.path.join(REPO, "tools", "run_bert4keras_examples.py"),
               "--in-process", "--eager", "--bert4keras", CHECKOUT, "--only", ",".join(SUBSET),
               "--json", str(results), "--workdir", str(tmp_path / "work")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=600)
    assert results.exists(), completed.stdout[-2000:] + completed.stderr[-2000:]
    by_script = {r["script"]: r for r in json.loads(results.read_text())}
    assert {name: by_script[name]["status"] for name in SUBSET} == dict.fromkeys(SUBSET, "pass"), (
        {name: by_script[name]["detail"] for name in SUBSET})
