"""Start TensorFlow with its native start-up log sent to Python logging, not to stderr.

TensorFlow's C++ side writes its start-up chatter (oneDNN notices, CUDA probing such as
``failed call to cuInit`` on a machine without a GPU) straight to file descriptor 2. An
Airflow task's stderr is logged at ERROR level, so every successful task that loads a
model showed red error lines. ``start_tensorflow`` imports TensorFlow and lets it probe its
devices with fd 2 pointed at a temporary file, then logs each captured line at DEBUG on
this module's logger: the lines stay available (``-v``, or the task's log level) without
posing as errors. A Python exception during the import still propagates as it would.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def native_stderr_logged(level: int = logging.DEBUG) -> Iterator[None]:
    """Inside the block, what native code writes to fd 2 is captured and then logged at ``level``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip():
                    log.log(level, "native: %s", line)


def start_tensorflow() -> None:
    """Import TensorFlow (legacy Keras, as TFRS needs) and probe its devices, quietly; idempotent."""
    if "tensorflow" in sys.modules:
        return
    with native_stderr_logged():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe happens here, not at import
