"""The registry of model families: detection, model='auto', a test-local family, clean imports."""

import ast
import os
import subprocess
import sys

import numpy as np
import pytest
import tiny_checkpoints
from backend_utils import forward, subprocess_env

from kerasnlp4su.checkpoints.loader import CheckpointMismatchError
from kerasnlp4su.checkpoints.names import DENSE, HFFamily
from kerasnlp4su.checkpoints.readers import TF1CheckpointReader
from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint
from kerasnlp4su.models import FAMILIES, MODEL_REGISTRY, build_transformer_model
from kerasnlp4su.models.bert import (BERT, HF_HEADS, hf_embeddings, hf_encoder_layer,
                                     tiny_bert_heads, tiny_bert_layer)
from kerasnlp4su.models.hf import load_hf_model, save_weights_as_hf
from kerasnlp4su.models.registry import (Family, checkpoint_family, register_family,
                                         unregister_family)
from kerasnlp4su.models.tiny import TINY_BASE, TinyTensors

ROOT = os.path.join(os.path.dirname(__file__), "..")
CHECKPOINTS = os.path.join(ROOT, "kerasnlp4su", "checkpoints")
TOKENS = np.array([[2, 11, 12, 13, 3, 0], [2, 40, 41, 3, 50, 3]])
SEGMENTS = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]])


# ------------------------------------------------------------ checkpoints/ is IO only
def test_checkpoints_package_never_imports_models():
    for filename in sorted(os.listdir(CHECKPOINTS)):
        if not filename.endswith(".py"):
            continue
        with open(os.path.join(CHECKPOINTS, filename), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            assert not any(m.startswith("kerasnlp4su.models") for m in modules), \
                f"kerasnlp4su/checkpoints/{filename} imports {modules}"
    modules = [f"kerasnlp4su.checkpoints.{f[:-3]}" for f in sorted(os.listdir(CHECKPOINTS))
               if f.endswith(".py") and f != "__init__.py"]
    # The package's own __init__ imports the models (for `kerasnlp4su.build_transformer_model`):
    # stand in for it, so only what the checkpoints modules import gets loaded.
    package = os.path.abspath(os.path.join(ROOT, "kerasnlp4su"))
    code = ("import sys, types\n"
            "package = types.ModuleType('kerasnlp4su')\n"
            f"package.__path__ = [{package!r}]\n"
            "sys.modules['kerasnlp4su'] = package\n" + "".join(f"import {m}\n" for m in modules) +
            "loaded = sorted(m for m in sys.modules if m.startswith('kerasnlp4su.models'))\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=subprocess_env("tensorflow"))


# ------------------------------------------------------------------------- detection
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_checkpoints.cached(tmp_path_factory)


@pytest.mark.parametrize("family", sorted(set(tiny_checkpoints.CONFIGS) - {"electra_generator"}))
def test_every_family_detects_its_own_tiny_checkpoint(tiny, family):
    # With its config: NEZHA holds RoFormer v1's names and differs by config keys.
    _, path = tiny(family)
    config = tiny_checkpoints.CONFIGS[family]
    assert checkpoint_family(TF1CheckpointReader(path).names(), config)[0] == family


def test_a_generator_only_checkpoint_is_the_generator_family():
    names = ["electra/embeddings/word_embeddings", "generator/encoder/layer_0/output/dense/kernel"]
    assert checkpoint_family(names) == ("electra_generator", names[1])


def test_model_auto_builds_the_detected_family(tiny):
    config_path, path = tiny("albert")
    t = build_transformer_model(config_path, path, model="auto", return_keras_model=False)
    assert type(t) is MODEL_REGISTRY["albert"]


def test_model_auto_with_no_matching_family_says_so(tmp_path):
    path = write_tf1_checkpoint(str(tmp_path / "model.ckpt"), {"foo/bar": np.zeros(2, "float32")})
    with pytest.raises(ValueError, match="model='auto': checkpoint .* matches no registered "
                                         "model family"):
        build_transformer_model(None, path, model="auto", **tiny_checkpoints.BASE)
    with pytest.raises(ValueError, match="model='auto' needs a checkpoint_path"):
        build_transformer_model(None, model="auto", **tiny_checkpoints.BASE)


# ------------------------------------------------ a family declared in one place (a test file)
class ToyBERT(BERT):
    """BERT under other variable names: a family that only renames variables."""

    prefix = "toy"


def toy_tensors(config, rng):
    # Written from the 'official' toy layout, in bert_tensors' order, so the
    # values equal the BERT tiny checkpoint's of the same seed.
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    t = TinyTensors(rng)
    t.embeddings("toy/embeddings", config, h)
    for layer in range(config["num_hidden_layers"]):
        tiny_bert_layer(t, f"toy/encoder/layer_{layer}", h, i)
    tiny_bert_heads(t, h, h, v, prefix="toy")
    return t.tensors


class ToyRelative(ToyBERT):
    """Same variable names as ToyBERT, told apart by a config key (as NEZHA from RoFormer)."""

    def __init__(self, relative_positions=False, **kwargs):
        super().__init__(**kwargs)
        self.relative_positions = relative_positions


@pytest.fixture
def toy_families():
    toy = Family(
        "toy", {"toy": ToyBERT},
        signature=Signature(required=[r"toy/embeddings/.*"],
                            forbidden_config_keys=["use_relative_position"]),
        hf=HFFamily("toy", "toy", "toy", (
            hf_embeddings("toy", "toy") + hf_encoder_layer("toy/encoder", "toy.encoder")
            + [(DENSE, "toy/pooler/dense", "toy.pooler.dense")] + HF_HEADS)),
        hf_write_config=lambda t: ("ToyModel", {}, []),
        tiny_config=dict(TINY_BASE), tiny_tensors=toy_tensors)
    relative = Family(
        "toy_relative", {"toy_relative": ToyRelative},
        signature=Signature(required=[r"toy/embeddings/.*"],
                            config_keys=["use_relative_position"]),
        config_keys={"use_relative_position": "relative_positions"},
        tiny_config=dict(TINY_BASE, use_relative_position=True), tiny_tensors=toy_tensors)
    register_family(toy)
    register_family(relative)
    try:
        yield toy, relative
    finally:
        unregister_family("toy")
        unregister_family("toy_relative")
    assert "toy" not in FAMILIES and "toy" not in MODEL_REGISTRY


def test_a_test_local_family_loads_through_the_generic_machinery(toy_families, tiny, tmp_path):
    config_path, path = tiny_checkpoints.write(str(tmp_path / "toy"), "toy")
    toy = build_transformer_model(config_path, path, model="toy", with_nsp=True)
    bert_config, bert_path = tiny("bert")
    bert = build_transformer_model(bert_config, bert_path, model="bert", with_nsp=True)
    # Same values under other names: the same function.
    np.testing.assert_allclose(forward(toy, [TOKENS, SEGMENTS]),
                               forward(bert, [TOKENS, SEGMENTS]), atol=1e-6)
    # Detection, model='auto' and the wrong-family error walk the registry too.
    assert checkpoint_family(TF1CheckpointReader(path).names())[0] == "toy"
    auto = build_transformer_model(config_path, path, model="auto", return_keras_model=False)
    assert type(auto) is ToyBERT
    with pytest.raises(CheckpointMismatchError, match="looks like a model='toy' checkpoint"):
        build_transformer_model(config_path, path, model="bert")
    with pytest.raises(CheckpointMismatchError, match="looks like a model='bert' checkpoint"):
        build_transformer_model(bert_config, bert_path, model="toy")


def test_config_keys_tell_apart_families_with_the_same_variable_names(toy_families, tmp_path):
    config_path, path = tiny_checkpoints.write(str(tmp_path / "relative"), "toy_relative")
    auto = build_transformer_model(config_path, path, model="auto", return_keras_model=False)
    assert type(auto) is ToyRelative and auto.relative_positions is True  # the family's config key
    plain_config, plain_path = tiny_checkpoints.write(str(tmp_path / "plain"), "toy")
    auto = build_transformer_model(plain_config, plain_path, model="auto", return_keras_model=False)
    assert type(auto) is ToyBERT


def test_a_test_local_family_round_trips_the_hf_format(toy_families, tmp_path):
    config_path, path = tiny_checkpoints.write(str(tmp_path / "toy"), "toy")
    t = build_transformer_model(config_path, path, model="toy", return_keras_model=False)
    save_weights_as_hf(t, str(tmp_path / "hf"))
    again = load_hf_model(str(tmp_path / "hf"))
    np.testing.assert_allclose(forward(again, [TOKENS, SEGMENTS]),
                               forward(t.model, [TOKENS, SEGMENTS]), atol=1e-6)
    auto = build_transformer_model(None, str(tmp_path / "hf"), model="auto",
                                   return_keras_model=False, **TINY_BASE)
    assert type(auto) is ToyBERT


def test_load_hf_model_checks_keywords_as_build_transformer_model(toy_families, tmp_path):
    config_path, path = tiny_checkpoints.write(str(tmp_path / "toy"), "toy")
    t = build_transformer_model(config_path, path, model="toy", return_keras_model=False)
    save_weights_as_hf(t, str(tmp_path / "hf"))
    with pytest.raises(TypeError, match="'attention_tpye' \\(did you mean 'attention_type'\\?\\)"):
        load_hf_model(str(tmp_path / "hf"), attention_tpye="linear")
