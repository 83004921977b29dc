"""One owner per table family (#11 item 2), for the ranking runs, the rerank results and the lookup reads.

The SQL that names these tables lives in ``sql/queries/{ranking,rerank_results,lookup}.sql``
and runs only from the families' owner modules; the owners compose with psycopg.sql just the
statements that name a run's own tables. No database needed: the sources are read as text.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys.config import PROJECT_ROOT
from recsys.db.sql import QUERIES_DIR, queries

SCANNED = ("recsys", "dags", "plugins")

# family -> the modules that may run its queries (and hold SQL naming its tables)
OWNERS = {
    "ranking": {
        f"recsys/scoring/{name}.py"
        for name in ("runs", "partitions", "retention", "checks", "ranking", "precompute", "from_frame")
    },
    "rerank_results": {"recsys/scoring/rerank_results.py"},
    # title_match reads only the movie titles (no table of these families) from the lookup file
    "lookup": {"recsys/scoring/rerank.py", "recsys/api/queries.py", "recsys/scoring/title_match.py"},
}
FAMILY_TABLES = re.compile(
    r"\brecsys\.(?:ranked_scores\w*|published_ranking|precompute_runs|rerank_requests|rerank_results"
    r"|current_ranked_scores|top_recommendations)\b"
)
# Upper case, as the project writes SQL: prose that names a table (docs, asset extras) is not a statement.
SQL_WORD = re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE|ALTER|CREATE|DROP|TRUNCATE|COPY|ANALYZE|FROM|JOIN|WHERE)\b")
LOADS = re.compile(r"""queries\(\s*["'](\w+)["']\s*\)\s*\.\s*(\w+)""")


def python_sources() -> Iterator[tuple[str, str]]:
    for top in SCANNED:
        for path in sorted((PROJECT_ROOT / top).rglob("*.py")):
            yield path.relative_to(PROJECT_ROOT).as_posix(), path.read_text(encoding="utf-8")


def sql_in_strings(source: str) -> Iterator[tuple[int, str]]:
    """(line, table) for each string literal (docstrings aside) that is SQL naming a family table."""
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))  # a docstring
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)  # judged as the whole f-string below
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            text = "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if not SQL_WORD.search(text):
            continue
        for match in FAMILY_TABLES.finditer(text):
            yield node.lineno + text.count("\n", 0, match.start()), match.group()


def test_the_scan_sees_sql_and_not_prose() -> None:
    source = '''
"""Module docs may say SELECT * FROM recsys.ranked_scores."""
DOC = "published in `recsys.ranked_scores`, read through recsys.current_ranked_scores"
Q = """
SELECT count(*)
FROM recsys.current_ranked_scores"""
F = f"ALTER TABLE recsys.ranked_scores ATTACH PARTITION {table}"
P = ("SELECT p.run_id FROM recsys.published_ranking p "
     "JOIN recsys.precompute_runs r USING (run_id)")
'''
    assert sorted(sql_in_strings(source)) == [
        (6, "recsys.current_ranked_scores"),
        (7, "recsys.ranked_scores"),
        (8, "recsys.precompute_runs"),
        (8, "recsys.published_ranking"),
    ]


def test_only_the_owners_have_sql_on_these_tables() -> None:
    allowed = set().union(*OWNERS.values())
    hits = [
        f"{path}:{line}: {table}"
        for path, source in python_sources()
        if path not in allowed
        for line, table in sorted(sql_in_strings(source))
    ]
    assert hits == [], "SQL on the ranking/rerank tables outside their owners (use sql/queries/):\n" + "\n".join(hits)


def test_only_the_owners_load_these_families() -> None:
    hits = [
        f"{path}:{source.count(chr(10), 0, match.start()) + 1}: queries({match.group(1)!r})"
        for path, source in python_sources()
        for match in LOADS.finditer(source)
        if match.group(1) in OWNERS and path not in OWNERS[match.group(1)]
    ]
    assert hits == [], "\n".join(hits)


def test_no_other_query_file_names_these_tables() -> None:
    hits = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}: {match.group()}"
        for path in sorted(QUERIES_DIR.glob("*.sql"))
        if path.stem not in OWNERS
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if not line.lstrip().startswith("--")
        for match in FAMILY_TABLES.finditer(line)
    ]
    assert hits == [], "\n".join(hits)


@pytest.mark.parametrize("family", sorted(OWNERS))
def test_every_query_is_used_and_every_use_exists(family: str) -> None:
    """No dead queries: each is called (or its ``.sql`` taken) as ``queries("<family>").<name>`` by an owner."""
    defined = {name for name in queries(family).available_queries if not name.endswith("_cursor")}
    used = {
        match.group(2).removesuffix("_cursor")
        for path in sorted(OWNERS[family])
        for match in LOADS.finditer((PROJECT_ROOT / path).read_text(encoding="utf-8"))
        if match.group(1) == family
    }
    assert sorted(defined - used) == [], f"queries in sql/queries/{family}.sql that nothing uses"
    assert sorted(used - defined) == [], f"queries used but not in sql/queries/{family}.sql"


def test_the_query_files_exist() -> None:
    assert {Path(p).stem for p in QUERIES_DIR.glob("*.sql")} >= set(OWNERS)
