"""Fast runs of the technique examples on the tiny checkpoint.

LoRA, R-Drop, ChildTuning, Ladder Side-Tuning and BERT-of-Theseus
(examples/finetuning_techniques.py) must beat the majority-class baseline. PET, P-tuning and NSP zero-shot
(examples/prompt_classification.py) run end to end; on the random tiny
checkpoint with its one-minute stand-in pretraining they stay at the
baseline (measured 2026-12-06), so only their pipeline is checked here; the
numbers of those APIs are checked in test_techniques.py.
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


# pet_zero and nsp_zero only score with heads the few-shot run also builds, and
# assert no learning on the random checkpoint; their numbers are checked in
# test_techniques.py, so the example runs here are the two that train.
@pytest.mark.parametrize("technique", ["pet_few", "ptuning"])
def test_prompt_classification_fast_run(prompts, technique):
    metrics = prompts.main(["--fast", "--technique", technique])
    check_metrics(metrics, ["accuracy", "majority_baseline"])
    if technique == "pet_few":
        # Few-shot PET through the MLM head must at least fit its 16 shots
        # (it stayed at the majority class with 8 steps at lr 1e-4).
        assert metrics["shot_accuracy"] >= 0.875, metrics


def test_simbert_fast_run():
    metrics = load_example("simbert").main(["--fast"])
    check_metrics(metrics, ["accuracy", "untrained_accuracy", "chance"])
    # Retrieval must improve on the untrained model (measured 0.969 vs 0.688 on 32 pairs).
    assert metrics["accuracy"] >= metrics["untrained_accuracy"] + 0.1, metrics
    assert all(len(samples) == 2 for samples in metrics["samples"].values())
