"""Data-parallel training on several logical CPU devices equals single-device training."""

import json
import os
import subprocess
import sys

import pytest
from backend_utils import subprocess_env

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "distributed_training.py")


def run(backend, devices):
    env = subprocess_env(backend)
    # One interpreter trains on `devices` and on one device (`--compare`): one start-up, not two.
    proc = subprocess.run([sys.executable, EXAMPLE, "--devices", str(devices), "--compare", "--json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_device_data_parallel_matches_single_device(backend):
    pytest.importorskip(backend)
    runs = run(backend, 2)
    single, double = runs["single"], runs["parallel"]
    assert single["replicas"] == 1 and double["replicas"] == 2
    assert double["loss"] == pytest.approx(single["loss"], abs=1e-5)
    assert double["checksum"] == pytest.approx(single["checksum"], rel=1e-6)
