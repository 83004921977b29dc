"""`make run`'s steps show the library's progress on the console while they run (scripts/step.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from recsys.config import PROJECT_ROOT

ROOT = PROJECT_ROOT

JOB = r"""
import sys, time
for i in (1, 2, 3):
    print(f"2026-12-02T02:42:52Z [info     ] ensemble member {i}/3 (seed {41 + i})  [recsys.model.train] loc=x.py:9",
          flush=True)
    print("2026-12-02T02:42:52Z [info     ] some airflow chatter  [airflow.models.dagrun] loc=y.py:1", flush=True)
    time.sleep(0.6)
sys.exit(int(sys.argv[1]))
"""


def run_step(tmp_path: Path, exit_code: int) -> subprocess.CompletedProcess:
    script = f'source {ROOT / "scripts/step.sh"}; step demo python3 -c "$JOB" {exit_code}; echo NEXT-STEP'
    env = {"PATH": "/usr/bin:/bin", "LOGS": str(tmp_path), "STEP_POLL_S": "0.2", "JOB": JOB}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env, timeout=60
    )


def test_a_step_prints_each_new_progress_line_while_it_runs(tmp_path: Path) -> None:
    done = run_step(tmp_path, 0)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    progress = [line.split("s  ", 1)[1] for line in lines if line.startswith("    ") and "s  " in line]
    assert progress == [f"ensemble member {i}/3 (seed {41 + i})" for i in (1, 2, 3)], done.stdout
    assert lines[0].strip() == "demo" and "ok" in lines[-2] and lines[-1] == "NEXT-STEP"
    assert "airflow chatter" not in done.stdout, "only the library's progress, not Airflow's log"
    assert "ensemble member 3/3" in (tmp_path / "demo.log").read_text(), "the whole output stays in the log"


def test_a_failed_step_shows_the_log_end_and_stops(tmp_path: Path) -> None:
    done = run_step(tmp_path, 3)
    assert done.returncode == 1 and "NEXT-STEP" not in done.stdout
    assert "demo FAILED after" in done.stdout and "ensemble member 3/3" in done.stderr
