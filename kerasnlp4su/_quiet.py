"""Keep TensorFlow's native start-up log lines off the user's terminal, unless asked for.

TensorFlow 2.21 prints ``cudart_stub`` / ``cpu_feature_guard`` INFO lines while it loads, each behind
absl's "All log messages before absl::InitializeLog() ..." notice, and prints them twice: the core
library and ``_pywrap_profiler_plugin.so`` each link their own copy of absl logging and of the CUDA stub.
Those lines ignore ``TF_CPP_MIN_LOG_LEVEL`` (absl logs them before TensorFlow's own level applies), so
the level is applied here, to what the import writes on file descriptor 2.

The user's setting wins: ``TF_CPP_MIN_LOG_LEVEL`` is only given a default when it is unset, and a level
of 0 shows everything, as TensorFlow documents it.
"""

import os
import re
import sys
import tempfile
from contextlib import contextmanager

DEFAULT_TF_LOG_LEVEL = "2"  # hide INFO and WARNING, show ERROR (TensorFlow's own meaning of the levels)

# A native log record starts with glog's prefix: severity letter then MMDD, e.g. "I0000 00:00:17... file.cc:31]".
_NATIVE_RECORD = re.compile(r"^([IWEF])\d{4} ")
_ABSL_PRE_INIT_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Lines that start a record of their own (never part of a native message): Python warnings and tracebacks.
_PYTHON_RECORD = re.compile(r"^(\S.*:\d+: \w*(Warning|Error)\b|Traceback \(most recent call last\))")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def default_tf_log_level():
    """Give `TF_CPP_MIN_LOG_LEVEL` its quiet default when the user has not set it.

    Only before TensorFlow is imported: TensorFlow reads the variable once.

    >>> default_tf_log_level()  # then: os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2" unless already set
    """
    if "tensorflow" not in sys.modules and not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = DEFAULT_TF_LOG_LEVEL


def tf_min_log_level():
    """`TF_CPP_MIN_LOG_LEVEL` as TensorFlow reads it: an int, 0 when unset or not a number."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_native_logs(text, min_level):
    """Drop native log records below `min_level` (TensorFlow's levels) from captured stderr `text`.

    Everything that is not a native record (Python warnings, tracebacks, other output) is kept.

    >>> text = "I0000 00:00:1.0  7 cudart_stub.cc:31] no cuda\\nE0000 00:00:1.0  7 x.cc:1] real error\\n"
    >>> filter_native_logs(text, 2)
    'E0000 00:00:1.0  7 x.cc:1] real error\\n'
    """
    kept, keep_current = [], True
    for line in text.splitlines(keepends=True):
        native = _NATIVE_RECORD.match(line)
        if native:
            keep_current = _SEVERITY[native.group(1)] >= min_level or native.group(1) == "F"
        elif line.rstrip("\n") == _ABSL_PRE_INIT_NOTICE:
            keep_current = min_level <= 0
        elif _PYTHON_RECORD.match(line):
            keep_current = True
        # Any other line continues the record above it (native messages can span lines).
        if keep_current:
            kept.append(line)
    return "".join(kept)


@contextmanager
def quiet_native_logs():
    """Apply `TF_CPP_MIN_LOG_LEVEL` to native log lines written to stderr inside the block.

    What the block writes to file descriptor 2 is held back, then written out less the native records
    below the level, so Python warnings and errors still show (after the block, in order).

    >>> with quiet_native_logs():
    ...     import math
    """
    min_level = tf_min_log_level()
    try:
        saved_stderr = os.dup(2) if min_level > 0 else None
    except OSError:  # no file descriptor 2 (e.g. pythonw): nothing reaches a terminal anyway
        saved_stderr = None
    if saved_stderr is None:
        yield
        return
    with tempfile.TemporaryFile() as captured:
        _flush_python_stderr()
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            _flush_python_stderr()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            kept = filter_native_logs(captured.read().decode("utf-8", "replace"), min_level)
            if kept:
                os.write(2, kept.encode("utf-8"))


def _flush_python_stderr():
    if sys.stderr is not None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):  # closed or detached by the host application
            pass
