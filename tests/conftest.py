import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # CI also runs jax and torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `-n N` the parallelism is N test processes, one per core. Each one's (and each child's)
    # TensorFlow, XLA, PyTorch and BLAS thread pools would otherwise also take every core, and their
    # spinning threads cost CPU time the other worker needed. Explicit settings are kept.
    for variable in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    # Only `--` flags: XLA stops reading XLA_FLAGS at a bare `name=value` (such as the often-quoted
    # `intra_op_parallelism_threads=1`), silently dropping every flag after it.
    if "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = " ".join(filter(None, [
            os.environ.get("XLA_FLAGS"), "--xla_cpu_multi_thread_eigen=false"]))

# `backend_core` cases that the JAX and PyTorch legs (tests/test_backends.py) leave to TensorFlow, because
# another case of theirs runs the same backend code there. Each costs seconds per backend (an eager JAX
# call compiles every op), and the suite must stay under 10 minutes on 2 cores.
TENSORFLOW_ONLY = {
    # Model round trips: one model per kind of layer stack runs on every backend (bert, nezha,
    # roformer_v2, gau_alpha, gpt2, t5.1.1); these repeat one of them with other names or configs.
    "test_saving.py::test_model_round_trips_keras_and_weights_h5": {
        "albert", "albert_unshared", "bert-conditional-layernorm", "bert-linear-attention", "electra",
        "electra_generator", "gpt", "gpt2_ml", "mt5.1.1", "mt5.1.1_decoder", "mt5.1.1_encoder", "roberta",
        "roformer", "t5", "t5.1.0", "t5.1.0_decoder", "t5.1.0_encoder", "t5.1.1_decoder", "t5.1.1_encoder",
        "t5_decoder", "t5_encoder"},
    # Layers whose `check_layer` harness (run on every backend) already round-trips them.
    "test_saving.py::test_layer_round_trips_keras_and_weights_h5": {
        "ConditionalRandomField", "Dense", "EfficientGlobalPointer", "GatedAttentionUnit",
        "GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalPointer", "LayerNormalization",
        "MaximumEntropyMarkovModel", "MultiHeadAttention", "RelativePositionEmbedding",
        "RelativePositionEmbeddingT5", "Concatenate1D"},
    "test_attention.py::test_attention_layers_serialize": {None},  # the harness round-trips them
    "test_attention.py::test_conditional_model_with_zero_condition_equals_plain_model": {None},
    "test_attention.py::test_causal_kv_cache_equals_full_pass": {"linear-standard-64"},
    "test_attention.py::test_gradient_matches_finite_differences": {"softmax-False", "linear-False"},
    "test_attention.py::test_entropy_invariant_counts_visible_keys_per_query": {"False"},
    "test_decoding_compiled.py::test_compiled_step_matches_the_eager_step": {"1"},  # [3] also reorders beams
    "test_compiled_update.py::test_compiled_update_composes_with_accumulation_and_weight_decay": {None},
    "test_compiled_update.py::test_compiled_update_with_clipping_and_schedule": {None},
    "test_techniques.py::test_ptuning_trains_only_the_prompt_rows": {None},  # PromptEmbedding: zoo
    # Parity with transformers runs on TensorFlow only: importing torch and transformers costs a JAX
    # child seconds, and the same layers meet NumPy references on every backend (BERT's sequence
    # output, heads and pooler in test_bert.py; RoFormer's rotary encoder; RoFormer v2).
    "test_model_family.py::test_albert_matches_transformers": {None},
    "test_model_family.py::test_electra_generator_matches_transformers": {None},
    "test_model_family.py::test_electra_discriminator_matches_transformers": {None},
    "test_model_family.py::test_roformer_matches_transformers": {None},
    # The cache path: RoFormer's LM case (rotary offsets) here, UniLM in test_decoding_compiled.
    "test_model_family.py::test_cached_forward_equals_full_recomputation": {"bert-unilm", "albert-unilm"},
    # Off TensorFlow a FrozenModel is the model's own predict_on_batch (test_predict_batches_like_keras).
    "test_inference.py::test_frozen_outputs_equal_the_model_at_any_shape": {None},
    "test_inference.py::test_weights_are_copied_when_frozen": {None},
    "test_techniques.py::test_rdrop_step_matches_finite_differences_of_the_rdrop_objective": {"True"},
    "test_techniques.py::test_child_tuning_f_keeps_a_p_fraction_of_gradients_scaled_by_one_over_p": {"True"},
}


def _left_to_tensorflow(item):
    name, _, param = item.name.partition("[")
    cases = TENSORFLOW_ONLY.get(f"{item.path.name}::{name}")
    return cases is not None and (param.rstrip("]") if param else None) in cases


# What runs on one worker under `--dist loadgroup` (the test command's), by module or by test:
# modules whose module-scoped fixtures cost seconds (the README's child interpreter, the real MiniLM and
# its reference, sets of decoders and T5 models), so each is built once (spread over both workers, the
# README child alone ran twice); and every test that asks bert4keras for reference values, so one
# tf-keras child starts (tests/bert4keras_runner.py) and each reference fixture is computed once.
WORKER_GROUPS = {
    "test_readme.py": "readme", "test_minilm.py": "minilm", "test_sentence_encoder.py": "sentence_encoder",
    "test_decoding.py": "decoding", "test_t5.py": "t5",
    "test_b4k_models.py": "bert4keras", "test_bert4keras_names.py": "bert4keras", "test_gau_alpha.py": "bert4keras",
    "test_gpt.py": "bert4keras",
    "test_packaging.py::test_bert4keras_reference_runs_on_keras_2_in_a_subprocess": "bert4keras",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        # Every layer's shared harness check is backend-specific by construction, wherever it lives.
        if item.name.startswith("test_layer_harness") or item.path.name == "test_layer_harness.py":
            item.add_marker("backend_core")
        group = WORKER_GROUPS.get(f"{item.path.name}::{item.name}", WORKER_GROUPS.get(item.path.name))
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    if os.environ["KERAS_BACKEND"] != "tensorflow":
        left = [item for item in items if _left_to_tensorflow(item)]
        if left:
            config.hook.pytest_deselected(items=left)
            items[:] = [item for item in items if not _left_to_tensorflow(item)]


def pytest_addoption(parser):
    parser.addoption("--cpu-report", metavar="PATH", default=None,
                     help="append each test's CPU seconds (its process and its child processes), wall "
                          "seconds and xdist worker to PATH: unlike --durations, CPU time barely moves when other work "
                          "shares the cores, so figures from a busy machine stay comparable")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    path = item.config.getoption("--cpu-report")
    if path is None:
        yield
        return
    import resource
    import time

    def cpu():
        own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime

    (own, children), wall = cpu(), time.perf_counter()
    yield
    (own_after, children_after), wall = cpu(), time.perf_counter() - wall
    with open(path, "a", encoding="utf-8") as report:
        # Child pytests (the backend legs) inherit PYTEST_XDIST_WORKER; only a real worker has workerinput.
        worker = getattr(item.config, "workerinput", {}).get(
            "workerid", "child" if "PYTEST_XDIST_WORKER" in os.environ else "-")
        report.write(f"{own_after - own:8.2f} {children_after - children:8.2f} {wall:8.2f} {worker} {item.nodeid}\n")


def pytest_collection_finish(session):
    # Everything imported by now (TensorFlow, Keras, JAX, torch, transformers: millions of objects)
    # lives as long as the process. Frozen, it is skipped by every full garbage collection, and Keras
    # runs one per `clear_session`, per replaced variable, ...: a few % of the suite's CPU time.
    import gc

    gc.freeze()
