"""Training tricks: adversarial training (FGM), gradient penalty, virtual adversarial training,
integrated gradients, R-Drop, LoRA, prompts,
Ladder Side-Tuning, BERT-of-Theseus, SimBERT,
conditional-LayerNorm multi-task."""

from kerasnlp4su.training.adversarial import (
    adversarial_training,
    gradient_penalty,
    remove_training_tricks,
    virtual_adversarial_training,
)
from kerasnlp4su.training.attribution import integrated_gradients
from kerasnlp4su.training.lora import (
    apply_lora,
    load_lora_weights,
    lora_layers,
    lora_weights,
    merge_lora,
    save_lora_weights,
    unmerge_lora,
)
from kerasnlp4su.training.multitask import task_conditional_encoder
from kerasnlp4su.training.prompts import (
    ClozeScores,
    ClozeTemplate,
    PromptEmbedding,
    cloze_classifier,
    nsp_zero_shot,
    ptuning_model,
)
from kerasnlp4su.training.rdrop import rdrop_penalty, rdrop_training, symmetric_kl
from kerasnlp4su.training.simbert import (
    SimBertLoss,
    seq2seq_loss,
    similarity_loss,
    simbert_encoder,
    simbert_model,
)
from kerasnlp4su.training.side_tuning import LadderDownProjection, LadderGate, ladder_side_model
from kerasnlp4su.training.theseus import (
    TheseusChoice,
    TheseusPart,
    TheseusReplacementSchedule,
    theseus_model,
    theseus_successor,
)

__all__ = [
    "ClozeScores", "ClozeTemplate", "PromptEmbedding", "cloze_classifier", "nsp_zero_shot",
    "ptuning_model",
    "adversarial_training", "apply_lora", "gradient_penalty", "load_lora_weights", "lora_layers",
    "lora_weights", "merge_lora", "rdrop_penalty", "rdrop_training", "remove_training_tricks",
    "save_lora_weights", "symmetric_kl", "unmerge_lora",
    "LadderDownProjection", "LadderGate", "ladder_side_model",
    "TheseusChoice", "TheseusPart", "TheseusReplacementSchedule", "theseus_model", "theseus_successor",
    "integrated_gradients", "virtual_adversarial_training",
    "task_conditional_encoder", "SimBertLoss", "seq2seq_loss", "similarity_loss", "simbert_encoder", "simbert_model",
]
