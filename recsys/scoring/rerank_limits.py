"""The rerank request's limits: one owner for the API's model, the library and the DAG's Params.

Standard library only: the rerank DAG builds its Params' JSON schema from these at parse
time, where nothing heavy may be imported (tests/test_dags.py checks that).
"""

from __future__ import annotations

MAX_CANDIDATES = 1000  # per list of a request (the API's candidate_movies, candidate_movie_ids)
# Titles and ids together: both lists full. A per-list limit is what JSON Schema can state
# exactly (maxItems); a limit on the sum took 1,001 anyOf branches, which Swagger UI could not draw.
MAX_PER_REQUEST = 2 * MAX_CANDIDATES
MAX_K = 1000  # return only the best k
MAX_TITLE_CHARS = 300  # the longest MovieLens 100K title is 81 characters
PG_INT_MAX = 2_147_483_647  # user and movie ids are PostgreSQL integers
CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"  # a regex character range: C0, DEL and C1
NO_CONTROL_CHARS = rf"^[^{CONTROL_CHARS}]*$"  # a title's pattern, in Python and JSON Schema alike
