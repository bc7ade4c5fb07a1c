"""Training tricks: adversarial training (FGM) and gradient penalty."""

from kerasnlp4su.training.adversarial import (
    adversarial_training,
    gradient_penalty,
    remove_training_tricks,
)

__all__ = ["adversarial_training", "gradient_penalty", "remove_training_tricks"]
