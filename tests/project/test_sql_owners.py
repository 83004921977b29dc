"""One owner per table family: its SQL is in ``sql/queries/<family>.sql``, run only by its owner.

The scan reads the Python sources of recsys/, dags/ and plugins/ (not tests/, not bench/)
for SQL that names a family's table right after a keyword (``FROM recsys.users``,
``INSERT INTO recsys.model_versions``, ``LOCK TABLE ...``), so prose and messages that
mention a table ("no champion model in recsys.model_versions") are not hits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from recsys.config import PROJECT_ROOT
from recsys.db.sql import QUERIES_DIR, queries

SCANNED = ("recsys", "dags", "plugins", "bench", "scripts")
USERS_OF_QUERIES = ("recsys", "dags")  # where a named query must be called from


@dataclass(frozen=True)
class Family:
    tables: tuple[str, ...]
    owners: tuple[str, ...]  # the modules allowed to run the family's SQL, relative to the project


# Family name = its sql/queries/<name>.sql. The runs/publish (ranking) and rerank results
# families get their rows when their SQL moves (recsys/scoring, sql/queries/ranking.sql;
# recsys/scoring/rerank_results.py, sql/queries/rerank_results.sql).
FAMILIES: dict[str, Family] = {
    "feature_store": Family(
        tables=("users", "movies", "ratings", "split_tests", "datasets"),
        owners=("recsys/db/store.py",),
    ),
    "registry": Family(tables=("model_versions",), owners=("recsys/model/registry.py",)),
}

# Not yet moved: SQL on these families in the ranking engineer's files, tolerated until
# their change lands. Empty this on merge; an entry whose file no longer has such SQL fails
# the test below, so the list can only shrink.
NOT_YET_MOVED: set[tuple[str, str]] = set()

_KEYWORD = r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|ONLY|ANALYZE|COPY|TRUNCATE|REFERENCES)\s+"


def _table_pattern(family: Family) -> re.Pattern[str]:
    names = "|".join(family.tables)
    return re.compile(_KEYWORD + rf'(?:"?recsys"?\.)?"?(?P<table>{names})\b')


def _sources(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (PROJECT_ROOT / root).rglob("*.py") if ".venv" not in p.parts)


def _hits(family: Family) -> dict[str, list[str]]:
    """file -> ``file:line: table`` of each statement on the family's tables."""
    pattern, hits = _table_pattern(family), {}
    for path in _sources(*SCANNED):
        text, name = path.read_text(), path.relative_to(PROJECT_ROOT).as_posix()
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start("table")) + 1
            hits.setdefault(name, []).append(f"{name}:{line}: {match.group('table')}")
    return hits


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_only_the_owner_touches_its_tables(family: str) -> None:
    owners = FAMILIES[family].owners
    hits = _hits(FAMILIES[family])
    outside = [hit for name, found in hits.items() if name not in owners for hit in found]
    stray = [hit for hit in outside if (hit.split(":")[0], family) not in NOT_YET_MOVED]
    assert not stray, f"SQL on the {family} tables outside {', '.join(owners)}:\n" + "\n".join(stray)


def test_the_not_yet_moved_list_only_shrinks() -> None:
    stale = sorted((name, family) for name, family in NOT_YET_MOVED if name not in _hits(FAMILIES[family]))
    assert not stale, f"no SQL left there: remove from NOT_YET_MOVED: {stale}"


def test_the_table_pattern_sees_sql_and_not_prose() -> None:
    pattern = _table_pattern(FAMILIES["feature_store"])
    assert pattern.search('"SELECT (SELECT count(*) FROM recsys.users), "')
    assert pattern.search("DELETE FROM\n    recsys.ratings")
    assert pattern.search('COPY "recsys"."movies" (movie_id) FROM STDIN')
    assert not pattern.search("fitted on recsys.ratings in pandas")
    assert not pattern.search('{"tables": "recsys.users, recsys.movies"}')


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_only_the_owner_loads_its_queries(family: str) -> None:
    loads = re.compile(rf"""queries\(\s*["']{family}["']\s*\)""")
    loaders = {p.relative_to(PROJECT_ROOT).as_posix() for p in _sources(*SCANNED) if loads.search(p.read_text())}
    assert loaders <= set(FAMILIES[family].owners), f"sql/queries/{family}.sql loaded outside its owner: {loaders}"


def _query_files() -> list[str]:
    return sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))


def test_every_family_with_an_owner_has_its_file() -> None:
    assert set(FAMILIES) <= set(_query_files())


@pytest.mark.parametrize("family", _query_files())
def test_each_query_file_loads_and_has_no_dead_queries(family: str) -> None:
    loaded = queries(family)
    names = [n for n in loaded.available_queries if not n.endswith("_cursor")]
    assert names, f"sql/queries/{family}.sql has no named queries"
    code = "\n".join(p.read_text() for p in _sources(*USERS_OF_QUERIES))
    dead = [n for n in names if not re.search(rf"""\.{n}(?:_cursor)?\b|["']{n}["']""", code)]
    assert not dead, f"queries in sql/queries/{family}.sql that nothing in recsys/ or dags/ calls: {dead}"
