"""Every ```python block of README.md runs verbatim on the shipped tiny checkpoint.

The only change made to a block is the path of the official release it
names (`chinese_L-12_H-768_A-12/...`), which becomes `checkpoints/tiny_bert/...`
(same file names). The blocks run in one child interpreter, in README order, each
with its own globals (nothing one block defines is visible to the next) and its
own temporary directory as the current folder, so the files it writes
(`mlm.keras`) land there. One interpreter, not one per block: TensorFlow's
start-up is most of a block's cost.
"""

import json
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


# Runs in the child: argv[1] is a JSON list of [code, folder]; writes one traceback or null per
# block to argv[2].
RUNNER = """
import json, os, sys, traceback
results = []
for code, folder in json.load(open(sys.argv[1], encoding="utf-8")):
    os.chdir(folder)
    try:
        exec(compile(code, "<README block>", "exec"), {"__name__": "__main__"})
        results.append(None)
    except BaseException:
        results.append(traceback.format_exc())
json.dump(results, open(sys.argv[2], "w", encoding="utf-8"))
"""


@pytest.fixture(scope="module")
def block_failures(tmp_path_factory):
    """Each block's traceback (None when it ran), from one child running them all."""
    work = tmp_path_factory.mktemp("readme")
    jobs = []
    for i, (_, code) in enumerate(BLOCKS):
        (work / str(i)).mkdir()
        jobs.append([code.replace(RELEASE, TINY), str(work / str(i))])
    (work / "blocks.json").write_text(json.dumps(jobs), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(work / "blocks.json"), str(work / "results.json")],
                          capture_output=True, text=True, env=subprocess_env("tensorflow"), timeout=600)
    assert proc.returncode == 0, f"the README runner itself failed:\n{proc.stderr[-3000:]}"
    return json.loads((work / "results.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("index", range(len(BLOCKS)),
                         ids=[f"{i}-{heading}" for i, (heading, _) in enumerate(BLOCKS)])
def test_readme_block_runs(block_failures, index):
    heading = BLOCKS[index][0]
    assert block_failures[index] is None, f"README block under {heading!r} failed:\n{block_failures[index][-3000:]}"
