"""TensorFlow's native start-up log goes to logging (DEBUG), not to stderr, which Airflow logs as ERROR."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")
from recsys.native_log import start_tensorflow
start_tensorflow()
import tensorflow as tf
print("sum", int(tf.constant(1) + 1))
print("a Python warning still reaches stderr", file=sys.stderr)
"""


def test_tensorflow_start_up_chatter_is_logged_not_written_to_stderr() -> None:
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == ["a Python warning still reaches stderr"], done.stderr[-2000:]
    native = [line for line in done.stdout.splitlines() if line.startswith("DEBUG recsys.native_log: native: ")]
    assert native, "TensorFlow printed nothing at start-up here: the capture is untested"
    assert "sum 2" in done.stdout
