"""One bert4keras 0.11.5 interpreter per test process, shared by every reference script.

bert4keras needs Keras 2 (tf-keras, `TF_KERAS=1 TF_USE_LEGACY_KERAS=1`), so its reference values are
computed outside the suite's Keras 3 process. Starting TensorFlow and tf-keras is most of a small
reference's cost, and four test modules need one; `run_reference(script, *args)` sends each script
to one long-lived child (started on first use, closed at exit) that runs it as `python script args`
would, then resets the global state a script may change (the GELU variant, the Keras session).

    run_reference(os.path.join(HERE, "gpt_b4k_reference.py"), cases_path, out_path)

Run as a script, this file is that child: one JSON request per stdin line, one JSON reply per line
on the stdout it was started with (a script's own prints go to stderr).
"""

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading

_child = None
_child_log = None
_lock = threading.Lock()


class Bert4kerasReferenceFailed(RuntimeError):
    """A bert4keras reference script failed; the message carries its traceback."""


def _start():
    global _child_log
    from backend_utils import bert4keras_env

    env = bert4keras_env()
    env.pop("KERAS_BACKEND", None)
    env["CUDA_VISIBLE_DEVICES"] = ""
    _child_log = tempfile.TemporaryFile("w+")
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=_child_log, text=True, env=env)
    atexit.register(_stop, child)
    return child


def _log_tail():
    _child_log.seek(0)
    return _child_log.read()[-3000:]


def _stop(child):
    if child.poll() is None:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def run_reference(script, *args):
    """Run `script args...` in this process's bert4keras child; raise with its traceback on failure."""
    global _child
    with _lock:
        if _child is None or _child.poll() is not None:
            _child = _start()
        _child.stdin.write(json.dumps({"script": script, "args": [str(a) for a in args]}) + "\n")
        _child.stdin.flush()
        line = _child.stdout.readline()
    if not line:
        raise Bert4kerasReferenceFailed(f"the bert4keras child exited (code {_child.wait()}) running "
                                        f"{os.path.basename(script)}:\n{_log_tail()}")
    reply = json.loads(line)
    if reply["error"]:
        raise Bert4kerasReferenceFailed(f"{os.path.basename(script)} failed in bert4keras 0.11.5:\n{reply['error']}")


def _serve():
    import runpy
    import traceback

    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # a script's prints must not interleave with the replies
    import tensorflow as tf
    from bert4keras.backend import set_gelu

    for line in sys.stdin:
        request = json.loads(line)
        error = None
        sys.argv = [request["script"], *request["args"]]
        try:
            runpy.run_path(request["script"], run_name="__main__")
        except SystemExit as stop:
            if stop.code not in (None, 0):
                error = f"exit code {stop.code}"
        except BaseException:  # noqa: BLE001 - reported to the test that asked
            error = traceback.format_exc()
        finally:
            set_gelu("erf")  # bert4keras's default; a script may switch it
            tf.keras.backend.clear_session()
        replies.write(json.dumps({"error": error}) + "\n")
        replies.flush()


if __name__ == "__main__":
    _serve()
