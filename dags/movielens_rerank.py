"""movielens_rerank: rank a user's candidate movies by the published ranking, on demand.

Triggered from the UI or the REST API with validated Params. Reads only the published
tables (no model is loaded), writes the sorted answer to ``recsys.rerank_results`` and
returns it as the task's result (XCom). Bad Params are rejected twice: by the Params'
JSON schema when the run is created (the UI form and the REST API answer 400, no run
exists), and again inside the task, so a run created some other way fails with the same
clear message before anything is written.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from movielens_common import START_DATE, bounds, default_args, recsys_engine
from recsys.scoring.rerank_limits import MAX_CANDIDATES, MAX_K, NO_CONTROL_CHARS
from recsys.scoring.rerank_limits import MAX_TITLE_CHARS as MAX_TITLE
from recsys.scoring.rerank_limits import PG_INT_MAX as MAX_ID

CANDIDATE_SCHEMA = {
    "oneOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        {"type": "string", "minLength": 1, "maxLength": MAX_TITLE, "pattern": NO_CONTROL_CHARS},
    ]
}

DOC_MD = f"""
### Rerank candidate movies for one user

Give a `user_id` and a list of `candidate_movies` — **titles** (strings, e.g.
`"Star Wars (1977)"`, case-insensitive) and/or **movie ids** (integers) — and optionally `k`.
The candidates are sorted in the order of the **published ranking** (the same data the
lookup API serves; nothing is re-scored): the user's unseen movies by their `rank` (highest
ranking `score` first), then the movies the user has already rated (no rank), by `score`
the same way. Each movie has two numbers: `score`, the ranking score (orders the list,
higher first; not a rating), and `predicted_rating`, the predicted rating 1–5 (empty for a
ranking published before migration 0007). Titles are not unique in MovieLens: a title
that matches several movies is reported as *ambiguous* (with the ids to use instead), one
that matches nothing as *unknown*, with up to 3 `suggestions` (the movies it may have
meant, as the lookup API gives them); neither stops the request.

The answer is written to `recsys.rerank_requests` (the request, the precompute run and
model version used, unknown/ambiguous titles) and `recsys.rerank_results` (one row per
ranked movie, `position` 1 = best), and returned as the `rerank` task's XCom.

**Params** (the lookup API's rerank request, checked before the run is created; invalid
values are refused with one short reason, and nothing is written): `user_id` integer ≥ 1
(not `17.0`); `candidate_movies` 1–{MAX_CANDIDATES} items, each an integer id ≥ 1 or a title
of 1–{MAX_TITLE} characters without control characters; `k` empty or 1–{MAX_K}.

REST: `POST /api/v2/dags/movielens_rerank/dagRuns` with
`{{"logical_date": null, "conf": {{"user_id": 42, "candidate_movies": ["Star Wars (1977)", 50], "k": 5}}}}`.
"""


class InvalidRequest(ValueError):
    """Params that the schema should have refused; raised before any database access."""


CONF_KEYS = ("user_id", "candidate_movies", "k")  # the DAG's share of recsys.api.schemas.RerankRequest


def check_request(params: dict[str, Any]) -> dict[str, Any]:
    """Validate the rerank Params with the lookup API's own model (one contract for both).

    Why again inside the task: the Params' JSON schema lets through what the model refuses
    (``user_id: 17.0`` is an integer to JSON Schema), and runs can be created without either
    check (an old serialised DAG, a direct database insert). The Airflow API server refuses
    the same conf before a run exists (``plugins/rerank_guard.py``). ``recsys`` is imported
    here, never at parse time. The message is one short line; it never echoes the list.
    """
    from pydantic import ValidationError

    from recsys.api.schemas import RerankRequest, short_reason

    conf = {key: params.get(key) for key in CONF_KEYS if key in params}
    if isinstance(conf.get("candidate_movies"), list):
        conf["candidate_movies"] = from_form(conf["candidate_movies"])
    try:
        request = RerankRequest.model_validate(conf)
    except ValidationError as exc:
        raise InvalidRequest(short_reason(exc)) from None
    return {
        "user_id": request.user_id,
        "titles": request.titles,
        "movie_ids": request.movie_ids,
        "k": request.k,
        "candidates": request.candidate_movies,
    }


def from_form(candidates: list[Any]) -> list[Any]:
    """The trigger form's box gives one string per line: a line of digits is a movie id, a line
    holding a JSON list is its items. MovieLens titles end in "(year)", so no title is digits only."""
    items: list[Any] = []
    for item in candidates:
        text = item.strip() if isinstance(item, str) else None
        if text and text.isascii() and text.isdigit() and len(text) <= 10:
            items.append(int(text))
        elif text and text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except ValueError:
                items.append(item)  # not JSON after all: a title, refused or matched as such
            else:
                items.extend(parsed if isinstance(parsed, list) else [item])
        else:
            items.append(item)
    return items


@dag(
    dag_id="movielens_rerank",
    description="Rank a user's candidate movies by the published ranking (on demand)",
    doc_md=DOC_MD,
    schedule=None,  # on demand: the UI's Trigger form or the REST API
    start_date=START_DATE,
    catchup=False,
    max_active_runs=16,
    dagrun_timeout=timedelta(minutes=10),
    default_args=default_args(timedelta(minutes=2), retries=2),
    tags=["recsys", "movielens", "rerank"],
    params={
        "user_id": Param(
            type="integer", **bounds(1, MAX_ID), title="User id", description="A MovieLens user id, e.g. 42"
        ),
        "candidate_movies": Param(
            type="array",
            minItems=1,
            maxItems=MAX_CANDIDATES,
            items=CANDIDATE_SCHEMA,
            title="Candidate movies",
            description="One per line: a title, e.g. Star Wars (1977), or a movie id, e.g. 50 (a line of "
            'digits is an id; a pasted JSON list such as ["Fargo (1996)", 50] is read as its items). '
            "Through the REST API: a JSON list of titles (strings) and ids (integers).",
        ),
        "k": Param(
            None,
            type=["null", "integer"],
            **bounds(1, MAX_K),
            title="k",
            description="Return only the best k candidates; empty = all",
        ),
    },
)
def movielens_rerank() -> None:
    @task
    def rerank() -> dict:
        """Validate, rank from the published tables and store the answer, in one transaction."""
        from airflow.sdk.exceptions import AirflowFailException

        from recsys.scoring import rerank_results
        from recsys.scoring.rerank import RerankError
        from recsys.scoring.rerank import rerank as rank

        context = get_current_context()
        try:
            request = check_request(dict(context["params"]))
        except InvalidRequest as exc:
            raise AirflowFailException(f"invalid rerank request: {exc}") from None  # no retry, nothing written
        with recsys_engine() as engine, engine.begin() as conn:
            try:
                result = rank(conn, request["user_id"], request["titles"], request["movie_ids"], request["k"])
            except RerankError as exc:  # unknown user, nothing published yet: retrying cannot help
                raise AirflowFailException(str(exc)) from None
            request_id = rerank_results.store(conn, context["dag"].dag_id, context["run_id"], request, result)
        return rerank_results.answer(request_id, result)

    rerank()


movielens_rerank()
