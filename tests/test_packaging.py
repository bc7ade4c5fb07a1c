"""What `pip install .` gives a user: every subpackage in the wheel, the suite run against the installed
copy (not the checkout), a quiet `import kerasnlp4su`, and the bert4keras reference usable in a subprocess.

CI installs the wheel (`pip install ".[test]"`, not `-e`) and runs `python -P -m pytest`, so these tests see
what users get; run from a checkout or an editable install, the checks that need a wheel skip and say why.
"""

import doctest
import json
import os
import re
import subprocess
import sys
from importlib import metadata

import pytest
from backend_utils import REPO, package_root, subprocess_env
from bert4keras_runner import run_reference
from setuptools import find_packages

import kerasnlp4su
from kerasnlp4su import _quiet

SOURCE = os.path.join(REPO, "kerasnlp4su")


def source_packages():
    """Every folder under the checkout's kerasnlp4su/ that holds Python modules, as a dotted name."""
    found = set()
    for folder, subfolders, files in os.walk(SOURCE):
        subfolders[:] = [d for d in subfolders if d != "__pycache__"]
        if any(f.endswith(".py") for f in files):
            found.add(os.path.relpath(folder, REPO).replace(os.sep, "."))
    return found


def is_editable():
    """True when kerasnlp4su is pip-installed editable (PEP 610 direct_url.json says so)."""
    direct_url = metadata.distribution("kerasnlp4su").read_text("direct_url.json")
    return bool(direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"))


def test_ci_runs_the_readme_test_command_against_the_wheel():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        command = re.search(r"Set up and run the tests.*?```bash\n(.+?)\n```", f.read(), re.S).group(1)
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        ci_commands = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    assert command == ci_commands[-1]
    assert "pip install -e" not in command and "python -P -m pytest" in command


def test_every_source_package_is_found_by_setup():
    # find_packages skips a folder without __init__.py, and the wheel then lacks it (issue 26:
    # kerasnlp4su.checkpoints was missing, so no wheel install could load a checkpoint).
    packages = set(find_packages(REPO, include=["kerasnlp4su", "kerasnlp4su.*"]))
    assert "kerasnlp4su.checkpoints" in source_packages()
    missing = sorted(source_packages() - packages)
    assert not missing, f"package folders without __init__.py, left out of the wheel: {missing}"


def test_every_source_package_is_in_the_installed_distribution():
    if is_editable():
        pytest.skip("kerasnlp4su is installed editable (pip install -e): its files are the checkout's; "
                    "CI installs the wheel")
    files = metadata.files("kerasnlp4su") or []
    installed = {str(f.parent).replace("/", ".") for f in files if f.suffix == ".py"}
    missing = sorted(source_packages() - installed)
    assert not missing, f"package folders missing from the installed kerasnlp4su: {missing}"


def test_suite_imports_the_installed_package_not_the_checkout():
    imported = os.path.realpath(kerasnlp4su.__file__)
    if is_editable():
        pytest.skip(f"kerasnlp4su is installed editable (pip install -e), imported from {imported}; "
                    "CI installs the wheel and checks that the suite does not run the checkout")
    assert not imported.startswith(os.path.realpath(REPO) + os.sep), (
        f"kerasnlp4su imported from the checkout ({imported}), not the installed wheel: run "
        "`python -P -m pytest` so the current folder is not on sys.path")
    assert os.path.realpath(REPO) not in map(os.path.realpath, sys.path)
    assert package_root() is None  # so subprocess_env puts no checkout on PYTHONPATH


def test_import_is_quiet(tmp_path):
    report = "import os, sys, kerasnlp4su; open(sys.argv[1], 'w').write(kerasnlp4su.__file__ + '\\n' " \
             "+ os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    env = subprocess_env("tensorflow")
    del env["TF_CPP_MIN_LOG_LEVEL"]
    proc = subprocess.run([sys.executable, "-c", report, str(tmp_path / "default")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (proc.stdout, proc.stderr) == ("", ""), f"import kerasnlp4su printed:\n{proc.stdout}{proc.stderr}"
    child_file, child_level = (tmp_path / "default").read_text().splitlines()
    assert child_file == kerasnlp4su.__file__  # the child ran the same package as this suite
    assert child_level == _quiet.DEFAULT_TF_LOG_LEVEL


@pytest.mark.parametrize("user_level, after", [(None, _quiet.DEFAULT_TF_LOG_LEVEL), ("", _quiet.DEFAULT_TF_LOG_LEVEL),
                                               ("0", "0"), ("3", "3")])
def test_quiet_default_keeps_an_explicit_log_level(monkeypatch, user_level, after):
    # In-process (a second child import costs seconds): the same call `import kerasnlp4su` makes
    # first, in a process that has not imported TensorFlow yet.
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    if user_level is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", user_level)
    _quiet.default_tf_log_level()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == after


def test_quiet_default_leaves_the_level_alone_once_tensorflow_is_imported(monkeypatch):
    # TensorFlow read the variable at its import; a later change would only misreport it.
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", object()))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    _quiet.default_tf_log_level()
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ


@pytest.mark.parametrize("level, kept", [
    (0, ["notice", "I", "W", "E", "py"]), (1, ["W", "E", "py"]), (2, ["E", "py"]), (3, ["py"]),
])
def test_native_log_filter_applies_tensorflow_levels(level, kept):
    lines = {
        "notice": _quiet._ABSL_PRE_INIT_NOTICE + "\n",
        "I": "I0000 00:00:1796.5  7982 cudart_stub.cc:31] Could not find cuda drivers\n"
             "To enable the following instructions: AVX2 FMA\n",
        "W": "W0000 00:00:1796.5  7982 a.cc:1] warn\n",
        "E": "E0000 00:00:1796.5  7982 b.cc:2] error\n",
        "py": "/x/y.py:3: UserWarning: from Python\n  warnings.warn(x)\n",
    }
    text = "".join(lines[k] for k in ["notice", "I", "W", "E", "py"])
    assert _quiet.filter_native_logs(text, level) == "".join(lines[k] for k in kept)


def test_quiet_module_doctests():
    result = doctest.testmod(_quiet)
    assert result.attempted >= 3 and result.failed == 0


def test_bert4keras_reference_runs_on_keras_2_in_a_subprocess(tmp_path):
    # Not skipped when missing: the test command installs bert4keras (--no-deps) and tf-keras on purpose.
    # Asked of the shared child every bert4keras reference runs in (tests/bert4keras_runner.py).
    script = tmp_path / "which_keras.py"
    script.write_text("import sys\nfrom bert4keras.backend import keras\nimport bert4keras.models\n"
                      "open(sys.argv[1], 'w').write(keras.layers.Layer.__module__)\n", encoding="utf-8")
    run_reference(str(script), tmp_path / "module.txt")
    module = (tmp_path / "module.txt").read_text(encoding="utf-8")
    assert module.startswith("tf_keras."), module  # Keras 2, not Keras 3
