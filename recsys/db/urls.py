"""Every rewrite of a database URL, in one place.

The project passes plain URLs around (``postgresql://user:pw@host:5432/db``, or with a
``?host=/socket/dir`` for the managed server); each consumer wants its own form of it:
SQLAlchemy with psycopg 3 (the library), psycopg2 (Airflow's metadata ORM), no driver at all
(yoyo, Airflow connections), a libpq conninfo string (the API's async pool), another role
(the read-only API role) or another database on the same server (tests, Airflow metadata).
Only SQLAlchemy's URL parser is needed, so this module is cheap to import.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

# Airflow renders a Postgres connection's URI as postgres://, which SQLAlchemy 2 no longer knows.
_PLAIN_SCHEMES = ("postgres", "postgresql")


def parse(url: str | URL) -> URL:
    """A SQLAlchemy ``URL`` from a string (Airflow's ``postgres://`` alias accepted)."""
    if isinstance(url, URL):
        return url
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    return make_url(url)


def render(url: URL) -> str:
    """The URL as a string, password included (it is handed to a driver, never logged)."""
    return url.render_as_string(hide_password=False)


def library_url(url: str | URL) -> URL:
    """The library's driver, psycopg 3 (its COPY API, no libpq build); an explicit driver is kept."""
    sa_url = parse(url)
    if sa_url.drivername in _PLAIN_SCHEMES:
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    return sa_url


def plain(url: str | URL) -> str:
    """``postgresql://...`` without a driver suffix: for yoyo and for Airflow connections
    (Airflow would keep ``+psycopg`` in the connection type and no Postgres hook would match)."""
    return render(parse(url).set(drivername="postgresql"))


def airflow_metadata(url: str | URL, database: str) -> str:
    """``database`` on the same server, with Airflow's driver: its ORM is tested upstream with psycopg2."""
    return render(parse(url).set(drivername="postgresql+psycopg2", database=database))


def on_database(url: str | URL, database: str) -> str:
    """The same server and login, another database."""
    return render(parse(url).set(database=database))


def as_role(url: str | URL, role: str, password: str | None = None) -> str:
    """The same server and database as ``role`` (``password`` or none); an empty role keeps the user."""
    sa_url = parse(url)
    if role:
        sa_url = sa_url.set(username=role, password=password or None)
    return render(sa_url)


def conninfo(url: str | URL) -> str:
    """A libpq connection string (any driver suffix; socket hosts given as ``?host=``)."""
    from psycopg.conninfo import make_conninfo

    sa_url = parse(url)
    params = {
        "host": sa_url.host,
        "port": sa_url.port,
        "dbname": sa_url.database,
        "user": sa_url.username,
        "password": sa_url.password,
        **{k: v if isinstance(v, str) else v[-1] for k, v in sa_url.query.items()},
    }
    return make_conninfo("", **{k: v for k, v in params.items() if v not in (None, "")})


def connect_kwargs(url: str | URL) -> dict[str, object]:
    """``psycopg.connect`` keyword arguments (host, port, user, password, dbname)."""
    sa_url = parse(url)
    params = {
        "host": sa_url.host or sa_url.query.get("host"),
        "port": sa_url.port,
        "user": sa_url.username,
        "password": sa_url.password or None,
        "dbname": sa_url.database,
    }
    return {k: v for k, v in params.items() if v is not None}


def describe(url: str | URL) -> str:
    """Where a URL points, without its password."""
    sa_url = parse(url)
    host = sa_url.host or sa_url.query.get("host") or "local socket"
    return f"{host}:{sa_url.port or 5432}/{sa_url.database}"
