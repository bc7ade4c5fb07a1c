"""Every ```python block of README.md runs verbatim on the shipped tiny checkpoint.

The only change made to a block is the path of the official release it
names (`chinese_L-12_H-768_A-12/...`), which becomes `checkpoints/tiny_bert/...`
(same file names). Each block runs in its own interpreter, in a temporary
directory, so the files it writes (`mlm.keras`) land there.
"""

import os
import re
import subprocess
import sys

import pytest
from backend_utils import REPO, subprocess_env

README = os.path.join(REPO, "README.md")
RELEASE = "chinese_L-12_H-768_A-12/"
TINY = os.path.join(REPO, "checkpoints", "tiny_bert") + os.sep


def python_blocks():
    """`(section heading, block text)` of every ```python block, in order."""
    text = open(README, encoding="utf-8").read()
    blocks, heading = [], "top"
    for match in re.finditer(r"^(#+ [^\n]*)$|^```python\n(.*?)^```", text, re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        else:
            blocks.append((heading, match.group(2)))
    return blocks


BLOCKS = python_blocks()


def test_the_readme_has_the_usage_block():
    # Guards the extraction itself: a fence or heading change must not leave nothing to run.
    assert "Usage" in [heading for heading, _ in BLOCKS]
    assert any(RELEASE in code for _, code in BLOCKS)


@pytest.mark.parametrize("heading, code", BLOCKS,
                         ids=[f"{i}-{heading}" for i, (heading, _) in enumerate(BLOCKS)])
def test_readme_block_runs(heading, code, tmp_path):
    proc = subprocess.run([sys.executable, "-c", code.replace(RELEASE, TINY)], cwd=tmp_path,
                          capture_output=True, text=True, env=subprocess_env("tensorflow"),
                          timeout=600)
    assert proc.returncode == 0, f"README block under {heading!r} failed:\n{proc.stderr[-3000:]}"
