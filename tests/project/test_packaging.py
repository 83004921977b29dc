"""A built wheel carries every package and the SQL, and an install from it finds its SQL.

``pip install .`` (not ``-e``) puts the package in site-packages, away from the checkout's
``sql/``: the migrations and the table families' queries have to travel inside it.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

from recsys.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
        cwd=PROJECT_ROOT, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_holds_every_package_and_every_sql_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = find_packages(str(PROJECT_ROOT), include=["recsys*"])
    missing = [p for p in packages if f"{p.replace('.', '/')}/__init__.py" not in names]
    assert not missing, f"packages left out of the wheel (pyproject's packages list): {missing}"
    sql = sorted(p.relative_to(PROJECT_ROOT / "sql").as_posix() for p in (PROJECT_ROOT / "sql").rglob("*.sql"))
    absent = [f for f in sql if f"recsys/sql_files/{f}" not in names]
    assert sql and not absent, f"SQL files left out of the wheel: {absent}"


def test_an_installed_wheel_reads_its_own_migrations_and_queries(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import recsys.config as c, recsys.db.migrate as m, recsys.db.sql as s\n"
        "from yoyo import read_migrations\n"
        "print(c.SQL_DIR)\n"
        "print(len(read_migrations(str(m.MIGRATIONS_DIR))))\n"
        "print(len(list(s.queries('lookup').available_queries)))\n"
    )
    # The extracted wheel comes first on the path, before the checkout's editable install.
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    where, migrations, queries = done.stdout.split()
    assert Path(where) == site / "recsys" / "sql_files"
    assert int(migrations) == len(list((PROJECT_ROOT / "sql").glob("*.sql")))
    assert int(queries) > 0
