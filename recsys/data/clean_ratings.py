"""A ratings member read at C speed when it is plainly clean; the adapters' parsers otherwise.

The adapters parse line by line in Python so that a bad row is named by member and line,
which takes about a minute for ml-25m's 25 million ratings. A clean member does not need
that: ``read_clean`` reads it with pandas' C parser and checks every rule the line-by-line
parser checks, vectorised. pandas alone accepts more than those parsers do (``1.0`` or
``+1`` as an id, a quoted field, an extra leading column taken as the index), so only a
member made of digits, its separator, newlines and (on a half-star scale) the points of its
ratings goes this way, with its fields counted and its ratings spelt as the scale's levels.
Anything else, and any check that fails, returns None: the adapter's own parser then runs,
accepting what it accepts and naming the first bad line of the rest.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
import pandas as pd

from recsys.data.adapters import RatingScale
from recsys.data.archive import LAST_TIMESTAMP

COLUMNS = ["user_id", "movie_id", "rating", "timestamp"]
_DIGITS = b"0123456789\n"


def read_clean(
    raw: bytes,
    *,
    sep: bytes,
    scale: RatingScale,
    header: bytes | None = None,
    known_users: Iterable[int] | None = None,
    known_movies: Iterable[int] | None = None,
    positive_ids: bool = False,
) -> pd.DataFrame | None:
    """user_id, movie_id, rating, rated_at as the adapters' parsers return them, or None.

    Ids are int64, the rating int64 on whole stars and float64 on half stars, ``rated_at`` UTC.
    """
    body = raw
    if header is not None:
        first, _, body = raw.partition(b"\n")
        if first != header:
            return None
    spellings = _spellings(scale)
    allowed = _DIGITS + sep[:1] + (b"." if any(b"." in s for s in spellings) else b"")
    if not body or body.translate(None, allowed) or body.startswith(b"\n") or b"\n\n" in body:
        return None
    if len(sep) > 1:  # the C parser takes one character; '\t' is not in such a member (checked above)
        body, sep = body.replace(sep, b"\t"), b"\t"
    lines = body.count(b"\n") + (not body.endswith(b"\n"))
    if body.count(sep) != 3 * lines:
        return None
    frame = _parse(body, sep.decode(), spellings)
    if frame is None or len(frame) != lines or frame["rating"].isna().any():
        return None
    codes = frame["rating"].cat.codes.to_numpy()
    if body.count(b".") != sum(np.count_nonzero(codes == i) for i, s in enumerate(spellings) if b"." in s):
        return None  # a point outside the ratings: an id or a timestamp like 12.0
    values = np.array([float(s) for s in spellings])[codes]
    frame["rating"] = values.astype(np.int64) if scale.step == 1 else values
    if not _valid(frame, known_users, known_movies, positive_ids):
        return None
    frame["rated_at"] = pd.to_datetime(frame.pop("timestamp"), unit="s", utc=True)
    return frame


def _spellings(scale: RatingScale) -> list[bytes]:
    """Each level as the releases write it: ``4`` on whole stars; ``4.0``, ``4`` and ``3.5`` on half stars."""
    out = []
    for level in range(scale.levels):
        value = scale.low + level * scale.step
        out.append(f"{value:g}".encode())
        if scale.step != 1 and value == int(value):
            out.append(f"{value:.1f}".encode())
    return out


def _parse(body: bytes, sep: str, spellings: list[bytes]) -> pd.DataFrame | None:
    dtypes = {c: "int64" for c in COLUMNS} | {"rating": pd.CategoricalDtype([s.decode() for s in spellings])}
    try:
        return pd.read_csv(
            io.BytesIO(body), sep=sep, header=None, names=COLUMNS, index_col=False, dtype=dtypes, engine="c"
        )
    except (ValueError, OverflowError, pd.errors.ParserError):
        return None


def _valid(
    frame: pd.DataFrame, known_users: Iterable[int] | None, known_movies: Iterable[int] | None, positive_ids: bool
) -> bool:
    users, movies, stamps = (frame[c].to_numpy() for c in ("user_id", "movie_id", "timestamp"))
    if positive_ids and ((users <= 0).any() or (movies <= 0).any()):
        return False
    if ((stamps < 0) | (stamps > LAST_TIMESTAMP)).any():
        return False
    for ids, known in ((users, known_users), (movies, known_movies)):
        if known is not None and not np.isin(ids, np.fromiter(known, np.int64)).all():
            return False
    return not frame.duplicated(["user_id", "movie_id"]).any()  # the parser names the line of a repeat
