"""The shipped tiny checkpoint's table sizes and the exact first lines of the project's input errors,
shared by test_first_contact.py and test_first_contact_backends.py."""

import os

from backend_utils import REPO

TINY = os.path.join(REPO, "checkpoints", "tiny_bert")
CONFIG = os.path.join(TINY, "bert_config.json")
CKPT = os.path.join(TINY, "bert_model.ckpt")
VOCAB, SEGMENTS, POSITIONS = 2646, 2, 128  # the shipped tiny checkpoint's tables


def ids_message(table, rows, bad=None):
    found = "" if bad is None else f"id {bad} is out of range: "
    return (f"{table}: {found}ids must lie in [0, {rows}); does the tokenizer's vocabulary "
            "(or segment ids) match the model's vocab_size?")


def length_message(length=None):
    length = "" if length is None else f" {length}"  # the in-graph check cannot say it
    return (f"Embedding-Position: sequence length{length} exceeds the maximum position "
            f"{POSITIONS} of the position embedding; truncate inputs (e.g. Tokenizer.encode(maxlen=...))")
