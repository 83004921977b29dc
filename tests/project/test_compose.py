"""docker-compose.yaml, Dockerfile and .env.example, checked without a Docker engine.

No Docker engine runs here, so the stack is checked the two ways that catch real mistakes:
- the file is valid against the Compose Specification's own JSON schema (as shipped in the
  check-jsonschema package's vendored schemas, Apache-2.0), both as written
  and after ``${VAR}`` interpolation with a generated .env;
- everything it names exists in this project: the Airflow CLI commands, the Airflow config
  options and ``RECSYS_*`` settings in its environment, the ports the apps listen on, the
  image version (= the lock), the variables .env.example declares, and no secret in git.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from recsys.config import PROJECT_ROOT

ROOT = PROJECT_ROOT
COMPOSE = ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
# Options of apache-airflow-providers-celery, which the official image ships and this venv does not.
CELERY_OPTIONS = {("celery", "broker_url"), ("celery", "result_backend")}
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$`` rules."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        value = env.get(name)
        if op in (":-", ":?") and value == "":
            value = None
        if value is not None:
            return value
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op and op.endswith("-") else ""

    return INTERPOLATION.sub(sub, text)


def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def generated_env() -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compose_env.py")], capture_output=True, text=True, check=True
    ).stdout
    env = {}
    for line in out.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return cmd.split() if isinstance(cmd, str) else list(cmd)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    schemas = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(schemas.joinpath("compose-spec.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load()


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), generated_env()))


def test_compose_file_matches_the_compose_spec_schema(schema, compose, rendered) -> None:
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(compose, schema)
    jsonschema.validate(rendered, schema)


def test_schema_validation_catches_mistakes(schema, compose) -> None:
    """The check can fail: a typo'd key or a wrong type is rejected."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["airflow-worker"]["healthchek"] = {"test": ["CMD", "true"]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["postgres"]["ports"] = {"5432": 5432}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_the_stack_has_every_part(compose) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "airflow-init", "recsys-api", *AIRFLOW_SERVICES}
    for name, service in services.items():
        if name != "airflow-init":
            assert "healthcheck" in service, f"{name} has no health check"
            assert service.get("restart") == "always", name
    common = env_of(services["airflow-scheduler"])
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert set(compose["volumes"]) >= {"postgres-data", "recsys-home", "airflow-logs"}


def test_dependencies_exist_and_wait_for_health(compose) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, rule in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if dep == "airflow-init" else "service_healthy"
            assert rule["condition"] == expected, f"{name} -> {dep}"
            if expected == "service_healthy":
                assert "healthcheck" in services[dep]


def test_worker_scales(compose) -> None:
    """`docker compose up --scale airflow-worker=N` needs no fixed name and no host port."""
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert command_of(worker) == ["celery", "worker"]


def test_airflow_commands_exist() -> None:
    """Every Airflow service runs a real `airflow` subcommand of the installed version."""
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    services = load()["services"]
    for name, expected in AIRFLOW_SERVICES.items():
        cmd = command_of(services[name])
        assert " ".join(cmd) == expected
        if cmd[0] == "celery":
            continue  # provided by apache-airflow-providers-celery (in the image, not in this venv)
        parser.parse_known_args(cmd)  # SystemExit on an unknown command
    for check in ("DagProcessorJob", "TriggererJob"):
        parser.parse_known_args(["jobs", "check", "--job-type", check, "--hostname", "h"])
    init = (ROOT / "scripts" / "compose" / "airflow-init.sh").read_text()
    assert "airflow db migrate" in init and "recsys db migrate" in init
    parser.parse_known_args(["db", "migrate"])


def _recsys_parser():
    """The `recsys` CLI; `serve` comes from recsys.api.commands (registered here if cli.py does not yet)."""
    import argparse

    from recsys.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "serve" not in sub.choices:
        from recsys.api.commands import register

        register(sub)
    return parser


def test_lookup_api_command_and_port_match_the_cli(compose) -> None:
    api = compose["services"]["recsys-api"]
    cmd = command_of(api)
    assert cmd[0] == "recsys"
    args = _recsys_parser().parse_args(cmd[1:])
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert api["ports"] == [f"${{RECSYS_API_HOST_PORT:-8000}}:{args.port}"]
    assert f"localhost:{args.port}/health" in " ".join(api["healthcheck"]["test"])
    assert set(env_of(api)) == {"RECSYS_API_DATABASE_URL", "RECSYS_HOME"}  # no writer credentials


def test_airflow_ports_match_the_config(compose) -> None:
    from airflow.configuration import conf

    api = compose["services"]["airflow-apiserver"]
    port = conf.getint("api", "port", fallback=8080)
    assert api["ports"] == [f"${{AIRFLOW_HOST_PORT:-8080}}:{port}"]
    assert f"localhost:{port}/api/v2/version" in " ".join(api["healthcheck"]["test"])
    health_port = conf.getint("scheduler", "scheduler_health_check_server_port", fallback=8974)
    assert f"localhost:{health_port}/health" in " ".join(
        compose["services"]["airflow-scheduler"]["healthcheck"]["test"]
    )
    env = env_of(compose["services"]["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://airflow-apiserver:{port}/execution/"


def test_every_environment_variable_is_known(compose) -> None:
    """AIRFLOW__S__K must be a real Airflow option (config.yml); RECSYS_* a field of a settings class."""
    from airflow.configuration import retrieve_configuration_description

    described = retrieve_configuration_description()
    airflow_options = {(sec, opt) for sec, body in described.items() for opt in body.get("options", {})}

    from recsys.config import setting_fields

    recsys_known = set(setting_fields())  # every settings class: library, API, Airflow side
    other_known = {"AIRFLOW_CONN_RECSYS_DB", "TF_USE_LEGACY_KERAS", "DUMB_INIT_SETSID", "AIRFLOW_ADMIN_USER",
                   "AIRFLOW_ADMIN_PASSWORD", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB",
                   "AIRFLOW_DB_PASSWORD", "RECSYS_WRITER_PASSWORD", "RECSYS_API_PASSWORD", "REDIS_PASSWORD"}  # fmt: skip
    for name, service in compose["services"].items():
        for var in env_of(service):
            if var.startswith("AIRFLOW__"):
                section, key = var[len("AIRFLOW__") :].lower().split("__", 1)
                assert (section, key) in airflow_options | CELERY_OPTIONS, f"{name}: {var} is not an Airflow option"
            elif var.startswith("RECSYS_") and var not in other_known:
                assert var in recsys_known, f"{name}: {var} is not a recsys setting"
            else:
                assert var in other_known, f"{name}: unexpected variable {var}"
    init_script = (ROOT / "scripts" / "compose" / "postgres-init.sh").read_text()
    for var in ("AIRFLOW_DB_PASSWORD", "RECSYS_WRITER_PASSWORD", "RECSYS_API_PASSWORD"):
        assert var in init_script and var in env_of(compose["services"]["postgres"])


def test_env_example_declares_exactly_what_compose_needs() -> None:
    text = COMPOSE.read_text()
    required = {m["name"] for m in INTERPOLATION.finditer(text) if m["name"] and m["op"] in (":?", "?")}
    optional = {m["name"] for m in INTERPOLATION.finditer(text) if m["name"] and m["op"] in (":-", "-")}
    example = dotenv(ROOT / ".env.example")
    commented = set(re.findall(r"^# ([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert required <= set(example), f"missing in .env.example: {required - set(example)}"
    assert set(example) <= required | optional, f"unused in compose: {set(example) - required - optional}"
    assert optional - {"AIRFLOW_UID", "AIRFLOW_ADMIN_USER"} <= commented
    assert set(generated_env()) >= required, "scripts/compose_env.py must generate every required value"
    with pytest.raises(KeyError, match="AIRFLOW_ADMIN_PASSWORD"):  # compose refuses to start without it
        interpolate(text, {k: v for k, v in generated_env().items() if k != "AIRFLOW_ADMIN_PASSWORD"})


def test_no_secrets_in_git_and_no_default_admin_password() -> None:
    text = COMPOSE.read_text()
    example = dotenv(ROOT / ".env.example")
    secret_names = [n for n in example if re.search(r"PASSWORD|SECRET|KEY", n)]
    assert secret_names and all(example[n] == "" for n in secret_names), ".env.example must not hold secrets"
    # every password/secret in compose comes from ${...:?...}: no literal, no default
    for m in re.finditer(r"^\s*([A-Z_]*(?:PASSWORD|SECRET|KEY)[A-Z_]*):\s*(.+)$", text, re.M):
        assert m.group(2).startswith("${"), f"literal secret in compose: {m.group(0).strip()}"
    for m in INTERPOLATION.finditer(text):
        if m["name"] and re.search(r"PASSWORD|SECRET|KEY", m["name"]):
            assert m["op"] == ":?", f"{m['name']} must be required, never defaulted"
    for url in re.findall(r"\w+(?:\+\w+)?://[^\s\"']+", text):
        if "@" in url:
            assert re.search(r"://[^:/]*:\$\{[A-Z_]+:\?", url), f"credentials in {url} must come from .env"
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert ".env" in gitignore
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in dockerignore and ".local" in dockerignore
    env = generated_env()
    assert len(env["AIRFLOW_ADMIN_PASSWORD"]) >= 24 and env["AIRFLOW_ADMIN_PASSWORD"] not in ("admin", "airflow")
    assert generated_env()["AIRFLOW_ADMIN_PASSWORD"] != env["AIRFLOW_ADMIN_PASSWORD"]  # random every time
    from cryptography.fernet import Fernet

    Fernet(env["AIRFLOW_FERNET_KEY"].encode())  # the format Airflow requires


def test_database_roles_are_separate_and_not_superusers(compose) -> None:
    from sqlalchemy.engine import make_url

    env = env_of(compose["services"]["airflow-scheduler"])
    meta = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    writer = make_url(env["AIRFLOW_CONN_RECSYS_DB"])
    reader = make_url(env_of(compose["services"]["recsys-api"])["RECSYS_API_DATABASE_URL"])
    assert (meta.username, meta.database) == ("airflow", "airflow")
    assert (writer.username, writer.database) == ("recsys_writer", "recsys")
    assert (reader.username, reader.database) == ("recsys_api", "recsys")
    init = (ROOT / "scripts" / "compose" / "postgres-init.sh").read_text()
    for role in ("airflow", "recsys_writer", "recsys_reader", "recsys_api"):
        line = next(x for x in init.splitlines() if x.startswith(f"CREATE ROLE {role} "))
        assert "NOSUPERUSER" in line and "NOCREATEROLE" in line, line
    assert "default_transaction_read_only = on" in init


def test_dockerfile_extends_the_official_image_at_the_locked_versions(compose) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    lock = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile, re.M))
    assert args["AIRFLOW_VERSION"] == lock["apache-airflow"]
    assert args["PYTHON_VERSION"] == "3.11"  # pyproject: requires-python >=3.11,<3.12
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in dockerfile
    assert re.search(r"pip install .*-c constraints\.txt .*-e \"\.\[(?:[a-z]+,)*airflow(?:,[a-z]+)*\]\"", dockerfile)
    common = env_of(compose["services"]["airflow-scheduler"])
    assert f"COPY --chown=airflow:0 dags {common['AIRFLOW__CORE__DAGS_FOLDER']}" in dockerfile
    assert f"COPY --chown=airflow:0 plugins {common['AIRFLOW__CORE__PLUGINS_FOLDER']}" in dockerfile
    assert f"RUN mkdir -p {common['RECSYS_HOME']}" in dockerfile
    assert "COPY --chown=airflow:0 sql ./sql" in dockerfile  # migrations next to the editable package
    init_cmd = compose["services"]["airflow-init"]["command"][0]
    assert init_cmd.startswith("/opt/recsys/scripts/") and "COPY --chown=airflow:0 scripts ./scripts" in dockerfile
    for name, service in compose["services"].items():
        if name in AIRFLOW_SERVICES or name in ("airflow-init", "recsys-api"):
            assert service["build"] == "." and service["image"].startswith("${RECSYS_IMAGE:-"), name
    mounted = compose["services"]["postgres"]["volumes"][1].split(":")[0]
    assert (ROOT / mounted).is_file()
