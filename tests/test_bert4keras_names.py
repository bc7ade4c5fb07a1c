"""bert4keras 0.11.5's public names in `backend`, `snippets`, `optimizers`, `tokenizers`.

(a) every public name of those modules, read from bert4keras's installed
source with `ast`, imports from the same kerasnlp4su module; (b) their
numbers against bert4keras itself, computed once in the shared bert4keras child
(tests/b4k_core_reference.py, tf-keras) on the inputs built here.
"""

import ast
import functools
import importlib
import importlib.util
import os
import pickle
import re
import tempfile
import warnings

import keras
import numpy as np
import pytest

from backend_utils import REPO, to_np
from bert4keras_runner import run_reference

MODULES = ["backend", "layers", "snippets", "optimizers", "tokenizers"]
SIX_MODULES = MODULES + ["models"]  # models' names are tested in test_b4k_models.py; listed here
STATUSES = ("same", "improved", "replaced by", "raises")
# Module objects bert4keras scripts import from these modules; other
# `import`s there (os, sys, six, TF internals) are implementation details.
IMPORTED_API = {"keras", "K", "tf", "np", "strtobool"}
# Keras-2 engine internals bert4keras bound only to patch Keras itself (its
# `Node` fix for old Keras); nothing for a script to import.
KERAS2_PATCH_INTERNALS = {"NodeBase"}


@functools.lru_cache(maxsize=None)
def bert4keras_public_names(module):
    """Top-level names bert4keras's `module` defines or re-exports, minus those it deletes."""
    spec = importlib.util.find_spec("bert4keras")
    if spec is None:
        pytest.skip("bert4keras is not installed")
    path = os.path.join(os.path.dirname(spec.origin), module + ".py")
    with open(path, encoding="utf-8") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # its regexes lack raw strings
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node in tree.body:
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom) and node in tree.body:
            for alias in node.names:
                name = alias.asname or alias.name
                if name == "*":  # layers star-imports backend: its names are layers' too
                    if (node.module or "").startswith("bert4keras."):
                        names |= bert4keras_public_names(node.module.split(".", 1)[1])
                elif (node.module or "").startswith("bert4keras") or name in IMPORTED_API:
                    names.add(name)
        elif isinstance(node, ast.Import) and node in tree.body:
            names.update(a.asname or a.name for a in node.names if (a.asname or a.name)
                         in IMPORTED_API)
    # Module-level assignments, including those under `if` (the _v2 aliases),
    # but not those inside functions or classes defined there.
    def module_level(statements):
        for statement in statements:
            yield statement
            if isinstance(statement, ast.If):
                yield from module_level(statement.body + statement.orelse)

    for node in module_level(tree.body):
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    for node in tree.body:
        if isinstance(node, ast.Delete):  # snippets deletes its `Hook` helper
            names.difference_update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(n for n in names if not n.startswith("_")) - KERAS2_PATCH_INTERNALS


@pytest.mark.parametrize("module", MODULES)
def test_every_public_bert4keras_name_imports(module):
    ours = importlib.import_module(f"kerasnlp4su.{module}")
    expected = bert4keras_public_names(module)
    assert len(expected) > 5
    missing = sorted(n for n in expected if not hasattr(ours, n))
    assert not missing, f"kerasnlp4su.{module} lacks bert4keras names: {missing}"


def readme_tables():
    """`{module: (names, statuses)}` of the README's "bert4keras names" tables, one `### module` each.

    Names are the backticked identifiers of a row's first column; `layers.*`
    stands for every name of that bert4keras module.
    """
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## bert4keras names\n", 1)[1].split("\n## ", 1)[0]
    tables = {}
    for part in re.split(r"^### ", section, flags=re.M)[1:]:
        module, body = part.split("\n", 1)
        names, statuses = set(), []
        for row in body.splitlines():
            cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
            if not row.startswith("| ") or set(cells[0]) <= {"-", " "} or cells[0] in ("name", "bert4keras"):
                continue
            for code in re.findall(r"`([^`]+)`", cells[0]):
                if code.endswith(".*"):
                    names |= bert4keras_public_names(code[:-2])
                elif re.match(r"[A-Za-z_]\w*", code):
                    names.add(re.match(r"[A-Za-z_]\w*", code).group(0))
            statuses.append((cells[0], cells[-1]))
        tables[module.strip()] = (names, statuses)
    return tables


def test_readme_lists_every_bert4keras_name_with_a_status():
    tables = readme_tables()
    assert sorted(tables) == sorted(SIX_MODULES)
    for module in SIX_MODULES:
        names, statuses = tables[module]
        unlisted = sorted(bert4keras_public_names(module) - names)
        assert not unlisted, f"README's bert4keras names table for {module} lacks {unlisted}"
        for name, status in statuses:
            assert status.startswith(STATUSES), f"{module}: row {name} has no status: {status[:60]}"


def test_the_scan_sees_known_names():
    # The scan itself must find the names the drop-in promise is about.
    assert {"set_gelu", "K", "keras", "search_layer"} <= bert4keras_public_names("backend")
    assert {"extend_with_lookahead_v2", "AdaFactor", "Adam"} <= bert4keras_public_names(
        "optimizers")
    assert "Hook" not in bert4keras_public_names("snippets")


def test_v2_forms_are_the_same_objects():
    from kerasnlp4su import optimizers as O

    for name in bert4keras_public_names("optimizers"):
        if name.endswith("_v2"):
            assert getattr(O, name) is getattr(O, name[:-3]), name
    assert O.LionV2 is O.Lion
    assert O.AdaFactorV1 is O.AdaFactorV2 is O.AdaFactorBase is O.AdaFactor


# --------------------------------------------------------------------------- reference

RNG = np.random.default_rng(7)


def _f32(*shape, scale=1.0):
    return (RNG.normal(size=shape) * scale).astype("float32")


def _cases():
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], "float32")
    probs = RNG.uniform(0.05, 1.0, size=(2, 3, 5)).astype("float32")
    probs /= probs.sum(-1, keepdims=True)
    alphabet = "abcab"
    pairs = [("".join(RNG.choice(list(alphabet), n)), "".join(RNG.choice(list(alphabet), m)))
             for n, m in [(6, 7), (8, 5), (3, 9), (7, 7), (1, 4)]] + [("abc", "xyz"), ("", "ab")]
    emb_grads = []
    grads = []
    for step in range(4):
        g = {"embeddings": _f32(6, 4), "kernel": _f32(4, 3), "bias": _f32(3),
             "big_kernel": _f32(130, 128, scale=0.1)}
        g["embeddings"][[1, 4]] = 0.0  # rows of tokens absent from the batch
        g["embeddings"][step % 6] = 0.0
        emb_grads.append(g["embeddings"])
        grads.append(g)
    return {
        "batch_gather": [(_f32(2, 5, 3), RNG.integers(0, 5, (2, 4)).astype("int32")),
                         (_f32(2, 5), RNG.integers(0, 5, (2, 3)).astype("int32"))],
        "x_238": _f32(2, 3, 8), "x_2345": _f32(2, 3, 4, 5),
        "mask": mask, "scores": _f32(2, 2, 4, 4), "bias": _f32(2, 2, 4, 4),
        "q": _f32(1, 5, 2, 6), "k": _f32(1, 5, 2, 6), "seq": _f32(2, 5, 3),
        "cond": RNG.uniform(size=(2, 5, 3)) > 0.5,
        "batch_dot": [(_f32(2, 3), _f32(2, 3), None), (_f32(2, 3, 4), _f32(2, 4, 5), None),
                      (_f32(2, 3, 4), _f32(2, 5, 4), (2, 2)), (_f32(2, 3), _f32(2, 3, 5), (1, 1)),
                      (_f32(2, 4, 3), _f32(2, 3), None), (_f32(2, 3, 4, 5), _f32(2, 5, 6), None),
                      (_f32(2, 3, 4), _f32(2, 3, 4), 1)],
        "dot": [(_f32(2, 3, 4), _f32(4, 5)), (_f32(2, 3), _f32(4, 3, 5))],
        "probs": probs, "labels": RNG.integers(0, 5, (2, 3)).astype("int32"),
        "targets": RNG.uniform(size=(2, 3, 5)).astype("float32"),
        "string_pairs": pairs, "small_matrix": _f32(4, 6),
        "names": ["MLM-Norm", "bias_add", "Pooler-Dense/bias", "Norm-x"],
        "opt_values": {"embeddings": _f32(6, 4, scale=0.1), "kernel": _f32(4, 3, scale=0.5),
                       "bias": _f32(3, scale=0.1), "big_kernel": _f32(130, 128, scale=0.05)},
        "opt_grads": grads,
    }


@pytest.fixture(scope="module")
def reference():
    if importlib.util.find_spec("bert4keras") is None:
        pytest.skip("bert4keras is not installed")
    cases = _cases()
    with tempfile.TemporaryDirectory() as tmp:
        cases_path, out_path = os.path.join(tmp, "cases.pkl"), os.path.join(tmp, "out.pkl")
        with open(cases_path, "wb") as f:
            pickle.dump(cases, f)
        run_reference(os.path.join(REPO, "tests", "b4k_core_reference.py"), cases_path, out_path)
        with open(out_path, "rb") as f:
            return cases, pickle.load(f)


def close(actual, expected, atol=1e-5):
    np.testing.assert_allclose(to_np(actual), np.asarray(expected), rtol=1e-5, atol=atol)


def test_backend_tensor_helpers_match_bert4keras(reference):
    from kerasnlp4su import backend as B

    c, ref = reference
    for (params, indices), expected in zip(c["batch_gather"], ref["batch_gather"]):
        close(B.batch_gather(params, indices), expected)
    close(B.reshape(c["x_238"], (4, -1), 2), ref["reshape"])
    close(B.reshape(c["x_238"], (1, 3), 1, (2, 2, 2), 2), ref["reshape_two"])
    close(B.flatten(c["x_2345"], 1, 3), ref["flatten"])
    assert tuple(B.align(keras.ops.convert_to_tensor(c["mask"]), [0, 3], 4).shape) == \
        tuple(ref["align"])
    scores, mask = c["scores"], c["mask"]
    close(B.sequence_masking(scores, mask, -5.0, 2), ref["masking"]["axis1"])
    close(B.sequence_masking(scores, mask, 0, [2, 3]), ref["masking"]["axes"])
    close(B.sequence_masking(scores, mask, -5.0, -1, keras.ops.convert_to_tensor(c["bias"])),
          ref["masking"]["bias"])
    for method, expected in ref["attention_normalize"].items():
        close(B.attention_normalize(keras.ops.convert_to_tensor(scores), mask, -1, method),
              expected)
    sinusoid = B.sinusoidal_embeddings(keras.ops.arange(5, dtype="float32"), 6)
    close(sinusoid, ref["sinusoidal"])
    close(B.Sinusoidal()((7, 4)), ref["initializer"])
    rotated = B.apply_rotary_position_embeddings(sinusoid[None], keras.ops.convert_to_tensor(c["q"]),
                                                 keras.ops.convert_to_tensor(c["k"]))
    for ours, expected in zip(rotated, ref["rope"]):
        close(ours, expected)
    seq = keras.ops.convert_to_tensor(c["seq"])
    for mode, expected in ref["pool1d"].items():
        close(B.pool1d(seq, 2, 2, pool_mode=mode), expected)
    close(B.pool1d(seq, 3, 1, padding="same"), ref["pool1d_same"])
    close(B.divisible_temporal_padding(seq, 4), ref["divisible"])
    close(B.root_mean_square(seq, axis=-1, keepdims=True), ref["rms"])
    close([B.piecewise_linear(t, {3: 1.0, 6: 0.5}) for t in range(9)], ref["piecewise"])
    close([B.piecewise_linear(t, {3: 1.0, 6: 0.5}, from_zero=False) for t in range(9)],
          ref["piecewise_nz"])
    close(B.leaky_relu(seq), ref["leaky_relu"])
    close(B.where(c["cond"], seq, 0), ref["where"])


def test_K_serves_keras2_backend_semantics(reference):
    from kerasnlp4su.backend import K

    c, ref = reference
    for (a, b, axes), expected in zip(c["batch_dot"], ref["batch_dot"]):
        close(K.batch_dot(keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b), axes),
              expected)
    for (a, b), expected in zip(c["dot"], ref["dot"]):
        close(K.dot(a, b), expected)
    seq, probs, labels = keras.ops.convert_to_tensor(c["seq"]), c["probs"], c["labels"]
    k = ref["K"]
    close(K.l2_normalize(seq, axis=1), k["l2_normalize"])
    close(K.sparse_categorical_crossentropy(labels, probs), k["sparse_ce"])
    close(K.sparse_categorical_crossentropy(labels[..., None], probs), k["sparse_ce"])
    close(K.sparse_categorical_crossentropy(labels, probs, from_logits=True),
          k["sparse_ce_logits"])
    close(K.categorical_crossentropy(K.one_hot(labels, 5), probs), k["ce"])
    close(K.binary_crossentropy(c["targets"], probs), k["bce"], atol=1e-4)
    close(K.relu(seq, alpha=0.1, max_value=1.5, threshold=0.2), k["relu"])
    close(K.cumsum(seq), k["cumsum"])
    close(K.concatenate([seq, seq]), k["concatenate"])
    assert K.int_shape(K.expand_dims(seq)) == tuple(k["expand_dims"])
    close(K.argmax(seq), k["argmax"])
    close(K.repeat(seq[:, 0], 2), k["repeat"])
    close(K.temporal_padding(seq, (1, 2)), k["temporal_padding"])
    close(K.sum(seq, 1, keepdims=True), k["sum"])
    close(K.batch_flatten(seq), k["batch_flatten"])
    close(K.gather(c["small_matrix"], keras.ops.convert_to_tensor([3, 0, 3])), k["gather"])
    close(K.repeat_elements(seq, 2, 1), k["repeat_elements"])
    close(K.permute_dimensions(seq, (2, 0, 1)), k["permute_dimensions"])
    close(K.pow(seq, 2), k["pow"])
    close(K.sqrt(seq), k["sqrt"])  # negatives clip to 0 in Keras 2
    close(K.switch(seq > 0, seq, -seq), k["switch"])
    close(K.one_hot(keras.ops.convert_to_tensor(labels), 5), k["one_hot"])
    close(K.argmin(seq), k["argmin"])
    close(K.reverse(seq, 1), k["reverse"])
    close(K.arange(2, 9, 3), k["arange"])
    close(K.constant(1.5, shape=(2, 3)), k["constant"])
    close(K.l2_normalize(seq), k["l2_all"])
    close(K.in_train_phase(seq * 2, seq, training=1), k["in_train"])
    close(K.in_train_phase(seq * 2, seq, training=0), k["in_test"])
    close(K.ones_like(seq), k["ones_like"])
    close(K.cumprod(seq), k["cumprod"])
    close(K.pool2d(seq[:, :, None], (2, 1), (1, 1), "valid", "channels_last", "max"),
          k["pool_max"])
    close(K.pool2d(seq[:, :, None], (2, 1), (2, 1), "same", "channels_last", "avg"),
          k["pool_avg"])
    last, outputs, _ = K.rnn(lambda x, s: (s[0] * 0.5 + x, [s[0] * 0.5 + x]), seq,
                             [keras.ops.zeros((2, 3))])
    close(last, k["rnn"][0])
    close(outputs, k["rnn"][1])
    assert (K.dtype(seq), K.ndim(seq), K.floatx(), K.epsilon()) == \
        (k["dtype"], k["ndim"], k["floatx"], k["epsilon"])


def test_snippets_match_bert4keras(reference):
    from kerasnlp4su import snippets as S

    c, ref = reference
    for (a, b), lcs, lcsub in zip(c["string_pairs"], ref["lcs"], ref["lcsubstring"]):
        assert S.longest_common_subsequence(a, b) == lcs, (a, b)
        assert S.longest_common_substring(a, b) == lcsub, (a, b)
    close(S.orthogonally_resize(c["small_matrix"], (8, 9)), ref["orthogonally_resize"])
    assert [S.string_matching(s, ["Norm$", "^bias"]) for s in c["names"]] == \
        ref["string_matching"]


def _run_ours(optimizer, cases):
    variables = [keras.Variable(v, name=n) for n, v in cases["opt_values"].items()]
    history = []
    for grads in cases["opt_grads"]:
        optimizer.apply([keras.ops.convert_to_tensor(grads[n]) for n in cases["opt_values"]],
                        variables)
        history.append({n: to_np(v) for n, v in zip(cases["opt_values"], variables)})
    return history


def _our_optimizers():
    from kerasnlp4su import optimizers as O

    return {
        "adam": lambda: O.Adam(learning_rate=0.01),
        "adam_no_bias_correction": lambda: O.Adam(learning_rate=0.01, bias_correction=False,
                                                  epsilon=1e-5),
        "adafactor_relative": lambda: O.AdaFactor(learning_rate=None, beta1=0.9,
                                                  exclude_from_parameter_scale=["bias"]),
        "adafactor_fixed": lambda: O.AdaFactor(learning_rate=0.01, beta2=0.99,
                                               clipping_threshold=None,
                                               multiply_by_parameter_scale=False),
        "lamb": lambda: O.extend_with_layer_adaptation(O.extend_with_weight_decay(O.Adam))(
            learning_rate=0.01, weight_decay_rate=0.01, exclude_from_layer_adaptation=["bias"]),
        "lazy": lambda: O.extend_with_lazy_optimization(O.Adam)(
            learning_rate=0.01, include_in_lazy_optimization=["embeddings"]),
        "piecewise_adam": lambda: O.extend_with_piecewise_linear_lr(O.Adam)(
            learning_rate=0.01, lr_schedule={2: 1.0, 4: 0.5}),
    }


@pytest.mark.parametrize("name", sorted(_our_optimizers()))
def test_optimizer_matches_bert4keras_over_four_steps(reference, name):
    c, ref = reference
    ours = _run_ours(_our_optimizers()[name](), c)
    for step, (got, expected) in enumerate(zip(ours, ref["optimizers"][name])):
        for weight in got:
            np.testing.assert_allclose(got[weight], expected[weight], rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name}: {weight} after step {step + 1}")
    start = c["opt_values"]
    assert not np.allclose(ours[-1]["kernel"], start["kernel"])  # it did train
    if name == "lazy":  # rows 1 and 4 never had a gradient: untouched
        np.testing.assert_array_equal(ours[-1]["embeddings"][[1, 4]], start["embeddings"][[1, 4]])
