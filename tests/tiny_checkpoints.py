"""Tiny official-format checkpoints for every registered model family, written on demand.

Each family declares its tiny config and tensors (`Family.tiny_config`,
`Family.tiny_tensors` in `kerasnlp4su/models/<family>.py`); this module
walks the registry, so a new family needs no change here.
"""

import os
import sys

# Tests also import the generator script of the shipped checkpoint.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "checkpoints"))

from kerasnlp4su.models import FAMILIES  # noqa: E402
from kerasnlp4su.models.tiny import TINY_BASE, write_tiny_checkpoint  # noqa: E402

BASE = TINY_BASE
CONFIGS = {name: family.tiny_config for name, family in FAMILIES.items()
           if family.tiny_config is not None}


def write(directory, family, seed=0):
    """Write `family`'s tiny checkpoint into `directory`; returns (config_path, ckpt_path)."""
    return write_tiny_checkpoint(directory, family, seed)


def cached(tmp_path_factory):
    """`get(family) -> (config_path, ckpt_path)`, each family written once (for a fixture)."""
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = write(str(tmp_path_factory.mktemp(family)), family)
        return cache[family]

    return get
