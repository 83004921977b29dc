"""Request and response models: the API's contract, validated before any database call.

Inputs are bounded (id ranges that fit PostgreSQL integers, title length, list length)
and text must be valid UTF-8 without control characters, which PostgreSQL could not store
or compare anyway (a NUL byte would be a driver error, a lone surrogate an encoding
error): such input is a 422, never a database round trip.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from recsys.scoring.rerank_limits import (
    CONTROL_CHARS,
    MAX_CANDIDATES,
    MAX_K,
    MAX_TITLE_CHARS,
    NO_CONTROL_CHARS,
    PG_INT_MAX,
)

_CONTROL = re.compile(f"[{CONTROL_CHARS}]")


def clean_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid UTF-8 text") from exc
    return value


USER_ID_STRING = re.compile(r"^[1-9][0-9]{0,8}$")


def _user_id(value: Any) -> Any:
    """Accept 17 or "17" (the original service took strings); reject bools, floats (even 17.0), padding."""
    if isinstance(value, bool | float):
        raise ValueError("user_id must be an integer or a string of digits")
    if isinstance(value, str):
        if not USER_ID_STRING.match(value):
            raise ValueError("user_id must be an integer or a string of digits")
        return int(value)
    return value


UserId = Annotated[
    int,
    Field(ge=1, le=PG_INT_MAX),
    BeforeValidator(_user_id),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": PG_INT_MAX},
                {"type": "string", "pattern": USER_ID_STRING.pattern},
            ],
            "examples": [17, "17"],
        }
    ),
]
CANONICAL_DIGITS = re.compile(r"0|[1-9][0-9]{0,9}")  # ranges are checked after


def _canonical_digits(value: Any) -> Any:
    """Path and query integers arrive as text; int() would also take "1_7", "017", "+17" or " 17"
    and pydantic "1.0", so anything but plain ASCII digits is refused."""
    if isinstance(value, str) and not CANONICAL_DIGITS.fullmatch(value):
        raise ValueError("must be an integer in plain digits")
    return value


DIGITS = BeforeValidator(_canonical_digits)  # for int path and query parameters: Annotated[int, Query(...), DIGITS]
MovieId = Annotated[int, Field(ge=1, le=PG_INT_MAX, strict=True)]
# NO_CONTROL_CHARS is in the spec too, so clients and fuzzers know
Title = Annotated[
    str, Field(min_length=1, max_length=MAX_TITLE_CHARS, pattern=NO_CONTROL_CHARS), AfterValidator(clean_text)
]


def _candidate_kind(value: Any) -> str | None:
    """Which kind of candidate ``value`` is: JSON tells titles (strings) from ids (integers) apart."""
    if isinstance(value, str):
        return "title"
    if isinstance(value, int) and not isinstance(value, bool):
        return "id"
    return None  # pydantic reports one error, naming both tags, instead of one per union branch


# An item of candidate_movies: a title, or (as in the rerank DAG) a movie id, moved to the ids.
Candidate = Annotated[
    Annotated[Title, Tag("title")] | Annotated[MovieId, Tag("id")],
    Discriminator(
        _candidate_kind,
        custom_error_type="candidate_type",
        custom_error_message="must be a title (string) or a movie id (integer)",
    ),
]
K = Annotated[int, Field(ge=1, le=MAX_K, strict=True)]


class RerankRequest(BaseModel):
    """Candidates to rank for one user: titles (the original payload), ids, or both; up to 1,000 in each list.

    The API's body and the rerank DAG's conf (``user_id``, ``candidate_movies``, ``k``), checked
    by the DAG's task and by the Airflow API server's guard (``plugins/rerank_guard.py``).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # In the spec, so clients and fuzzers know: at least one candidate (each list's
            # maxItems states its limit).
            "anyOf": [
                {"required": ["candidate_movies"], "properties": {"candidate_movies": {"minItems": 1}}},
                {"required": ["candidate_movie_ids"], "properties": {"candidate_movie_ids": {"minItems": 1}}},
            ],
            "examples": [
                {"user_id": "17", "candidate_movies": ["Toy Story (1995)", "GoldenEye (1995)", "Heat (1995)"]},
                {"user_id": 17, "candidate_movie_ids": [1, 2, 273], "candidate_movies": ["Chasing Amy (1997)"]},
                {"user_id": 17, "candidate_movies": ["Heat (1995)", 1, 2], "k": 2},
            ],
        },
    )

    user_id: UserId
    candidate_movies: list[Candidate] = Field(
        default_factory=list,
        max_length=MAX_CANDIDATES,
        description="Titles (case-insensitive exact matches); integer movie ids are accepted too and ranked "
        "as if given in candidate_movie_ids (a string of digits stays a title).",
    )
    candidate_movie_ids: list[MovieId] = Field(default_factory=list, max_length=MAX_CANDIDATES)
    k: K | None = Field(
        None,
        description=f"Return only the best k ranked candidates (1-{MAX_K}); omitted or null: all of them. "
        "The other lists (unknown_titles, suggestions, ...) are not cut.",
    )

    @property
    def titles(self) -> list[str]:
        return [c for c in self.candidate_movies if isinstance(c, str)]

    @property
    def movie_ids(self) -> list[int]:
        """candidate_movie_ids, then the ids given in candidate_movies, in their order."""
        return self.candidate_movie_ids + [c for c in self.candidate_movies if not isinstance(c, str)]

    @model_validator(mode="after")
    def _some_candidates(self) -> RerankRequest:
        total = len(self.candidate_movies) + len(self.candidate_movie_ids)
        if total == 0:
            raise ValueError("give candidate_movies and/or candidate_movie_ids")
        return self


MAX_REASON_CHARS = 200


def short_reason(exc: ValidationError) -> str:
    """One line, at most ~250 characters, for a refused request: the first error and how many more.

    pydantic's own text repeats (a truncated) input and a URL per error; a list of 10,000 bad
    items would make a message of megabytes. This never echoes the input.
    """
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid request"
    first = errors[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first.get("loc", ())).lstrip(".")
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    reason = f"{where}: {message}" if where else message
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3] + "..."
    more = len(errors) - 1
    return reason + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


class RunInfo(BaseModel):
    """Which published ranking answered: every field comes from the same snapshot as the scores."""

    model_version: str
    run_id: int
    published_at: datetime


SCORE_DESCRIPTION = (
    "Ranking score from the published model version: orders the list; higher first; not a rating. "
    "Any finite number (a top-N list head's output); only its order means something. "
    "For a run published before migration 0007 it is the predicted rating."
)
PREDICTED_RATING_DESCRIPTION = (
    "Predicted rating of this user for this movie on the data set's scale (MovieLens 100K: 1-5, the "
    "half-star CSV releases: 0.5-5), from the published model version; it does not "
    "order the list. Null for a run published before migration 0007 (whose score is the predicted rating)."
)


class RankedMovie(BaseModel):
    movie_id: int
    title: str
    genres: list[str]
    score: float = Field(description=SCORE_DESCRIPTION)
    predicted_rating: float | None = Field(ge=0.5, le=5, description=PREDICTED_RATING_DESCRIPTION)
    rank: int | None = Field(
        description="Rank among the user's unseen movies in the published ranking (1 = highest score); "
        "null when already rated."
    )
    seen: bool = Field(description="The user has already rated this movie.")


class AmbiguousTitle(BaseModel):
    title: str
    movie_ids: list[int] = Field(description="Every movie with this title; all of them are ranked.")


class Suggestion(BaseModel):
    movie_id: int
    title: str


class TitleSuggestions(BaseModel):
    title: str = Field(description="An entry of unknown_titles.")
    matches: list[Suggestion] = Field(
        description="Up to 3 closest movies: titles containing it (prefixes first), then the closest spellings; "
        "may be empty."
    )


class RerankResponse(RunInfo):
    user_id: int
    ranked: list[RankedMovie] = Field(
        description="Resolved candidates in the published ranking's order: the unseen ones by rank (highest "
        "score first, equal scores by lower movie id), then the ones the user has rated (rank null), by score "
        "the same way. Never ordered by predicted_rating. With k, only the first k of them."
    )
    unknown_titles: list[str] = Field(description="Titles that match no movie (case-insensitive exact match).")
    suggestions: list[TitleSuggestions] = Field(
        description="One entry per unknown title, in the same order: the movies it may have meant."
    )
    ambiguous_titles: list[AmbiguousTitle] = Field(description="Titles shared by several movies.")
    unknown_movie_ids: list[int] = Field(description="Ids that are not in recsys.movies.")
    unscored_movie_ids: list[int] = Field(description="Movies added after the published run was computed.")
    duplicates: list[str | int] = Field(description="Repeated candidates, answered once.")


class Recommendation(BaseModel):
    rank: int = Field(description="Rank among the user's unseen movies (1 = highest score).")
    movie_id: int
    title: str
    genres: list[str]
    score: float = Field(description=SCORE_DESCRIPTION)
    predicted_rating: float | None = Field(ge=0.5, le=5, description=PREDICTED_RATING_DESCRIPTION)


class TopKResponse(RunInfo):
    user_id: int
    k: int
    recommendations: list[Recommendation] = Field(
        description="Top unseen movies, rank 1 (highest ranking score) first; not ordered by predicted_rating."
    )


class Movie(BaseModel):
    movie_id: int
    title: str
    release_year: int | None
    genres: list[str]


class MovieSearchResponse(BaseModel):
    query: str
    movies: list[Movie] = Field(description="Exact (case-insensitive) matches first, then prefixes, then the rest.")


class Health(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str = Field(examples=["ready"])
    model_version: str
    run_id: int
    published_at: datetime


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable code, e.g. unknown_user, invalid_request, unavailable.")
    detail: Any = Field(description="What went wrong, for humans (a list of field errors for 422).")


ERROR_DESCRIPTIONS = {
    400: "The body is not valid UTF-8 or cannot be parsed",
    404: "The user is not in the published ranking",
    413: "The request body is larger than the limit",
    422: "Invalid request: types, ranges, text, or more than 1,000 candidates",
    429: "Too many requests from this client; retry after the Retry-After seconds",
    503: "Database unavailable, timed out, no ranking published yet, or the server at its limit of requests in "
    "progress; retry after Retry-After",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error codes, all with the ErrorBody shape."""
    return {code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in codes}
