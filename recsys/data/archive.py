"""Reading a data set's zip archive safely: shared by every dataset adapter.

Members are read straight from the zip (nothing is extracted, so no data file lands in the
work tree), in chunks up to a size limit so that a zip bomb fails fast instead of filling
memory, and every member read is fingerprinted, so a changed side file counts as a
different data set. Every error names the member and, where there is one, the line.
"""

from __future__ import annotations

import csv
import hashlib
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from recsys.errors import DataError

if TYPE_CHECKING:
    from recsys.data.adapters import DatasetAdapter, RatingScale

LATIN1 = "latin-1"
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_CHUNK = 1 << 20  # members are decompressed this much at a time
LAST_TIMESTAMP = int(pd.Timestamp.max.timestamp())  # 2262-04-11: the latest time pandas holds


def open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise DataError("archive not found", source=str(path))
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataError(
            f"not a valid zip archive ({exc}); the download is truncated or corrupt",
            source=str(path),
        ) from exc


def member_names(zf: zipfile.ZipFile) -> dict[str, str]:
    """Bare member names and their path in the zip (the official archives nest under one folder)."""
    return {name.rsplit("/", 1)[-1]: name for name in zf.namelist() if not name.endswith("/")}


def open_layout(
    zf: zipfile.ZipFile, path: Path, adapter: DatasetAdapter, max_member_bytes: int, also: tuple[str, ...] = ()
) -> Archive:
    """The open zip as ``adapter``'s layout: refused naming the members it misses (its own, then ``also``)."""
    names = member_names(zf)
    missing = [m for m in (*adapter.members, *also) if m not in names]
    if missing:
        raise DataError(f"archive is missing member file(s): {', '.join(missing)}", source=str(path))
    return Archive(zf, path, names, max_member_bytes, dataset=adapter.title)


@dataclass
class Archive:
    """The open zip's members by bare name: read within the size limit, fingerprinted as read."""

    zf: zipfile.ZipFile
    path: Path
    names: dict[str, str]
    max_member_bytes: int
    dataset: str = "MovieLens 100K"  # named in the size-limit message
    member_sha256: dict[str, str] = field(default_factory=dict)

    def read(self, name: str) -> bytes:
        raw = read_bytes(self.zf, self.names[name], self.path, self.max_member_bytes, self.dataset)
        self.member_sha256[name] = hashlib.sha256(raw).hexdigest()
        return raw

    def text(self, name: str, encoding: str = LATIN1) -> str:
        raw = self.read(name)
        return decode_latin1(raw, name, self.dataset) if encoding == LATIN1 else decode_utf8(raw, name)

    def read_fingerprinted(self, name: str, expected_sha256: str | None) -> bytes:
        """``name``'s bytes, refused when ``expected_sha256`` is set and its sha256 differs."""
        raw = self.read(name)
        if expected_sha256 and (actual := self.member_sha256[name]) != expected_sha256:
            raise DataError(
                f"content fingerprint mismatch: sha256({name}) is {actual}, expected {expected_sha256}; "
                f"the archive is not the {self.dataset} release (or it was modified). "
                "Set RECSYS_DATA_SHA256 (empty skips the check) if this is intended.",
                source=str(self.path),
            )
        return raw


def read_bytes(zf: zipfile.ZipFile, member: str, path: Path, limit: int, dataset: str = "MovieLens 100K") -> bytes:
    declared = zf.getinfo(member).file_size
    if declared > limit:
        raise DataError(
            f"member {member} declares {declared:,} bytes uncompressed, {_over(limit, dataset)}", source=str(path)
        )
    chunks, size = [], 0
    try:
        with zf.open(member) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > limit:  # the header lied: stop before the rest is decompressed
                    raise DataError(
                        f"member {member} unpacks to more than it declares, {_over(limit, dataset)}",
                        source=str(path),
                    )
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataError(f"member {member} is corrupt ({exc})", source=str(path)) from exc
    return b"".join(chunks)


def _over(limit: int, dataset: str) -> str:
    return f"over the limit of {limit:,} bytes (RECSYS_MAX_MEMBER_BYTES); the archive is not {dataset}"


def _refuse_nul(raw: bytes, member: str) -> None:
    if (nul := raw.find(b"\x00")) >= 0:
        raise DataError("contains a NUL byte; the file is binary or damaged", source=member, line=line_at(raw, nul))


def decode_latin1(raw: bytes, member: str, dataset: str = "MovieLens 100K") -> str:
    """latin-1 decodes any bytes, so a NUL or a UTF-8 file would load silently as garbage."""
    _refuse_nul(raw, member)
    if (first := _NON_ASCII.search(raw)) and _is_utf8(raw):
        raise DataError(
            f"is UTF-8 encoded (multi-byte characters), but {dataset} files are {LATIN1}; "
            f"re-encode it, e.g. iconv -f UTF-8 -t LATIN1",
            source=member,
            line=line_at(raw, first.start()),
        )
    return raw.decode(LATIN1)


def decode_utf8(raw: bytes, member: str, dataset: str = "the MovieLens CSV") -> str:
    """The CSV layouts are UTF-8: a byte that is not names its line instead of loading as mojibake."""
    _refuse_nul(raw, member)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"is not UTF-8 ({dataset} files are); re-encode it, e.g. iconv -f LATIN1 -t UTF-8",
            source=member,
            line=line_at(raw, exc.start),
        ) from None


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def line_at(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def fields(content: str, source: str, sep: str, count: int) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank line split on ``sep``, which must give exactly ``count`` fields."""
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != count:
            raise DataError(
                f"expected {count} {sep!r}-separated fields, got {len(parts)}",
                source=source,
                line=lineno,
            )
        yield lineno, parts


def csv_rows(content: str, member: str, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each data row of a CSV member whose header names exactly ``header``.

    Quoted fields may hold commas (a title such as "Movie, The (1995)"); blank lines are skipped.
    """
    reader = csv.reader(content.splitlines())
    first = next(reader, None)
    if first is None:
        raise DataError("is empty", source=member)
    if tuple(c.strip() for c in first) != header:
        raise DataError(
            f"header is {','.join(first)!r}, expected {','.join(header)!r} (a missing, extra or renamed column)",
            source=member,
            line=1,
        )
    for row in reader:
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            raise DataError(
                f"expected {len(header)} comma-separated fields, got {len(row)}", source=member, line=reader.line_num
            )
        yield reader.line_num, row


def parse_int(value: str, what: str, source: str, lineno: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{what} {value!r} is not an integer", source=source, line=lineno) from None


def parse_positive(value: str, what: str, source: str, lineno: int) -> int:
    """An id: the schema keys users and movies by positive integers."""
    number = parse_int(value, what, source, lineno)
    if number <= 0:
        raise DataError(f"{what} {number} is not positive", source=source, line=lineno)
    return number


def parse_rating(value: str, scale: RatingScale, source: str, lineno: int) -> float:
    """A rating written as a number (``4``, ``3.5``) that ``scale`` allows."""
    try:
        rating = float(value)
    except ValueError:
        raise DataError(f"rating {value!r} is not a number", source=source, line=lineno) from None
    if not scale.allows(rating):
        raise DataError(f"rating {value} is outside {scale}", source=source, line=lineno)
    return rating


def check_timestamp(stamp: int, source: str, lineno: int) -> None:
    if not 0 <= stamp <= LAST_TIMESTAMP:
        raise DataError(
            f"timestamp {stamp} is not a time between 1970 and 2262 (seconds since 1970-01-01 UTC)",
            source=source,
            line=lineno,
        )


def require_unique(
    frame: pd.DataFrame, column: str, source: str, *, lines: Sequence[int] | None = None, label: str | None = None
) -> None:
    """Refuse a repeated ``column`` value, named as ``label`` and at its line when ``lines`` (one per row) are known."""
    dupes = frame[column].duplicated().to_numpy()
    if dupes.any():
        at = int(dupes.argmax())
        line = None if lines is None else lines[at]
        raise DataError(f"duplicate {label or column} {frame[column].iloc[at]}", source=source, line=line)


def refuse_duplicate_ratings(
    ratings: pd.DataFrame, source: str, *, lines: Sequence[int] | None = None, item: str = "movie"
) -> None:
    dupes = ratings.duplicated(["user_id", "movie_id"]).to_numpy()
    if dupes.any():
        at = int(dupes.argmax())
        # by column: a row of ints and float ratings would come back as floats ("user 3.0")
        user, movie = ratings["user_id"].iloc[at], ratings["movie_id"].iloc[at]
        raise DataError(
            f"user {user} rates {item} {movie} more than once",
            source=source,
            line=None if lines is None else lines[at],
        )


def ratings_frame(
    rows: list[tuple], source: str, *, lines: Sequence[int] | None = None, item: str = "movie"
) -> pd.DataFrame:
    """(user, movie, rating, seconds since 1970) rows as the ratings frame; none, or a pair rated twice, is refused."""
    if not rows:
        raise DataError("no ratings", source=source)
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])
    refuse_duplicate_ratings(ratings, source, lines=lines, item=item)
    ratings["rated_at"] = pd.to_datetime(ratings.pop("timestamp"), unit="s", utc=True)
    return ratings
