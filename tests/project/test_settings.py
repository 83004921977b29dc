"""Every ``RECSYS_*`` variable is a settings field, documented in the README with the field's default.

The names are collected from the code (recsys, dags, plugins, scripts), the fields from the
settings classes (``recsys.config.setting_fields``), the documented defaults from the
README's settings table (and docs/API.md's, which must agree), and shell defaults
(``${RECSYS_X:-default}``) from scripts/*.sh. Each check is also run on a broken copy, so
it is shown to fail.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, TypeAdapter

from recsys.config import PROJECT_ROOT, AirflowSettings, load_settings, setting_fields
from recsys.errors import ConfigError

ROOT = PROJECT_ROOT
SCANNED = ("recsys", "dags", "plugins", "scripts")
NAME = re.compile(r"\bRECSYS_[A-Z0-9_]*[A-Z0-9]\b")  # not the prefixes `RECSYS_` / `RECSYS_API_*`
SHELL_DEFAULT = re.compile(r"\$\{(RECSYS_[A-Z0-9_]+):-([^}]*)\}")
# RECSYS_* names in the code that are not settings of a process, and why.
NOT_SETTINGS = {
    "RECSYS_URL": "a shell variable of scripts/airflow_env.sh: the resolved RECSYS_DATABASE_URL",
    "RECSYS_TEST_AIRFLOW_HOME": "set by the test harness itself (scripts/airflow_env.py isolate_for_tests)",
    "RECSYS_WRITER_PASSWORD": "docker-compose .env input (.env.example), never read by a recsys process",
    "RECSYS_API_PASSWORD": "docker-compose .env input (.env.example), never read by a recsys process",
}


def names_in_code() -> dict[str, set[str]]:
    """``{name: {files using it}}`` over the scanned folders."""
    found: dict[str, set[str]] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".sh", ".html") and "__pycache__" not in path.parts:
                for name in NAME.findall(path.read_text()):
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def documented_defaults(markdown: str) -> dict[str, str]:
    """``{name: documented default}`` from every ``| variable | default | ... |`` table."""
    documented: dict[str, str] = {}
    in_table = False
    for line in markdown.splitlines():
        if line.startswith("| variable | default |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        if not in_table or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`(RECSYS_[A-Z0-9_]+)`", cells[0])
        defaults = [d.strip() for d in cells[1].split(", ")] if len(names) > 1 else [cells[1]]
        assert len(defaults) == len(names), f"one default per variable: {line}"
        documented.update(zip(names, defaults, strict=True))
    return documented


def _doc_value(text: str) -> str:
    """`` `300/second` `` -> ``300/second``; ``33554432 (32 MiB)`` -> ``33554432``; ``empty`` -> ``""``."""
    text = text.split(" (")[0].split(": ")[0].strip().strip("`")
    return "" if text == "empty" else text


def default_problem(name: str, documented: str) -> str | None:
    """Why the documented default is not the field's, or None when they agree."""
    cls, field_name = setting_fields()[name]
    field = cls.model_fields[field_name]
    value = _doc_value(documented)
    if field.default is None:
        return None if value == "unset" else f"{name}: the field's default is unset, documented {documented!r}"
    if value == "unset":
        return f"{name}: documented unset, the field's default is {field.default!r}"
    if isinstance(field.default, Path):
        parsed: Any = PROJECT_ROOT / value
    elif field.annotation in (SecretStr, SecretStr | None):
        parsed = SecretStr(value)
    else:
        parsed = TypeAdapter(field.annotation).validate_python(value)
    if parsed != field.default:
        return f"{name}: documented default {documented!r}, the field's is {field.default!r}"
    return None


def problems(code_names: dict[str, set[str]], readme: str, others: list[str], shell: str) -> list[str]:
    fields = setting_fields()
    found = []
    for name, files in sorted(code_names.items()):
        if name in NOT_SETTINGS:
            continue
        if name not in fields:
            found.append(f"{name} (used in {', '.join(sorted(files))}) is not a field of a settings class")
    documented = documented_defaults(readme)
    for name in sorted(set(fields) - set(documented)):
        found.append(f"{name} is missing from the README's settings table")
    for name in sorted(set(documented) - set(fields)):
        found.append(f"{name} is in the README's settings table but no settings class has it")
    tables = [documented] + [documented_defaults(text) for text in others]
    for table in tables:
        for name, default in sorted(table.items()):
            if name in fields and (problem := default_problem(name, default)):
                found.append(problem)
    for name, default in SHELL_DEFAULT.findall(shell):
        literal = default and not default.startswith("$")  # not `${X:-}` (is it set?) nor `${X:-$(cmd)}`
        if name in fields and literal and (problem := default_problem(name, default)):
            found.append(f"shell default: {problem}")
    return found


def _inputs() -> tuple[dict[str, set[str]], str, list[str], str]:
    shell = "".join(p.read_text() for p in sorted((ROOT / "scripts").rglob("*.sh")))
    return names_in_code(), (ROOT / "README.md").read_text(), [(ROOT / "docs" / "API.md").read_text()], shell


def test_every_setting_is_a_field_and_documented_with_its_default() -> None:
    code_names, readme, others, shell = _inputs()
    assert len(documented_defaults(readme)) == len(setting_fields())
    assert problems(code_names, readme, others, shell) == []


def test_the_check_catches_an_undeclared_a_missing_and_a_wrong_default() -> None:
    code_names, readme, others, shell = _inputs()
    undeclared = {**code_names, "RECSYS_NEW_KNOB": {"recsys/x.py"}}
    assert problems(undeclared, readme, others, shell) == [
        "RECSYS_NEW_KNOB (used in recsys/x.py) is not a field of a settings class"
    ]
    missing = re.sub(r"^\| `RECSYS_NO_SERVE` .*\n", "", readme, flags=re.M)
    assert problems(code_names, missing, others, shell) == [
        "RECSYS_NO_SERVE is missing from the README's settings table"
    ]
    wrong = readme.replace("| `RECSYS_PRECOMPUTE_SHARDS` | 4 |", "| `RECSYS_PRECOMPUTE_SHARDS` | 8 |")
    assert problems(code_names, wrong, others, shell) == [
        "RECSYS_PRECOMPUTE_SHARDS: documented default '8', the field's is 4"
    ]
    unset = readme.replace("| `RECSYS_API_WORKERS` | 1 |", "| `RECSYS_API_WORKERS` | unset |")
    assert problems(code_names, unset, others, shell) == [
        "RECSYS_API_WORKERS: documented unset, the field's default is 1"
    ]
    api_md = [others[0].replace("| `RECSYS_API_DOCS` | true |", "| `RECSYS_API_DOCS` | false |")]
    assert problems(code_names, readme, api_md, shell) == [
        "RECSYS_API_DOCS: documented default 'false', the field's is True"
    ]
    shell_drift = shell.replace("${RECSYS_AIRFLOW_STOP_TIMEOUT:-20}", "${RECSYS_AIRFLOW_STOP_TIMEOUT:-30}")
    assert problems(code_names, readme, others, shell_drift) == [
        "shell default: RECSYS_AIRFLOW_STOP_TIMEOUT: documented default '30', the field's is 20"
    ]


def test_every_name_the_code_uses_is_found() -> None:
    """The scan sees the names that moved into settings classes and the ones still read by shell."""
    names = names_in_code()
    for name in ("RECSYS_PRECOMPUTE_SHARDS", "RECSYS_AIRFLOW_RETRY_DELAY_S", "RECSYS_API_DB_ROLE", "RECSYS_NO_SERVE"):
        assert name in names, name
    assert set(NOT_SETTINGS) <= set(names), "a NOT_SETTINGS entry no longer used: drop it"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("RECSYS_PRECOMPUTE_SHARDS", "x"), ("RECSYS_PRECOMPUTE_SHARDS", "65"), ("RECSYS_AIRFLOW_RETRY_DELAY_S", "soon")],
)
def test_a_bad_airflow_setting_is_one_line_naming_it(monkeypatch, variable: str, value: str) -> None:
    """The DAGs ignored a bad retry delay silently and crashed with a traceback on bad shards."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings(AirflowSettings)
    message = str(raised.value)
    assert message.startswith(f"invalid RECSYS_* setting {variable}: ") and "\n" not in message
    assert value not in message.split(": ", 1)[0]


def test_the_precompute_dag_default_is_the_clis(monkeypatch) -> None:
    from recsys.scoring.commands import DEFAULT_SHARDS

    monkeypatch.delenv("RECSYS_PRECOMPUTE_SHARDS", raising=False)
    assert load_settings(AirflowSettings).precompute_shards == DEFAULT_SHARDS
    monkeypatch.setenv("RECSYS_PRECOMPUTE_SHARDS", "8")
    assert load_settings(AirflowSettings).precompute_shards == 8
