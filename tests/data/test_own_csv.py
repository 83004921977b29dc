"""The plain-CSV adapter (``own-csv``): a user's own ratings, recognised, refused in one line when bad, run end to end.

Synthetic archives in the documented layout (recsys/data/synthetic.py ``synthetic_own_members``):
``ratings.csv``, ``items.csv`` and, optionally, ``users.csv``.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from recsys.config import MAX_MEMBER_BYTES
from recsys.data.adapters import ADAPTERS, HALF_STARS, read_dataset, recognise
from recsys.data.synthetic import (
    csv_fingerprint,
    synthetic_1m_members,
    synthetic_csv_members,
    synthetic_members,
    synthetic_own_members,
    write_archive,
)
from recsys.db.engine import make_engine
from recsys.db.store import load_movielens
from recsys.errors import DataError
from recsys.ingest import ingest
from tests.support.db import make_settings, snapshot
from tests.support.pipeline import (
    RECSYS,
    champion_metadata,
    check_top_n_over_http,
    recsys_env,
    run_recsys,
    user_tower_inputs,
)

DEMOGRAPHICS = ["age", "gender", "occupation", "zip_code"]
N_USERS, N_ITEMS, N_RATINGS = 30, 40, 450  # synthetic_own_members' defaults; users.csv lists one more user


def _own(tmp_path: Path, edit=None, *, users: bool = True, folder: str = "", name: str = "own.zip") -> Path:
    members = synthetic_own_members(users=users)
    if edit is not None:
        edit(members)
    return write_archive(tmp_path / name, members, folder=folder)


def _read(path: Path, dataset: str = "own-csv", sha: str | None = None):
    return read_dataset(path, dataset, sha, max_member_bytes=MAX_MEMBER_BYTES)


@pytest.mark.parametrize("folder", ["", "my-data"])
def test_with_users_csv_the_demographics_come_with_the_ratings(tmp_path, folder):
    data = _read(_own(tmp_path, folder=folder))
    assert data.dataset == "own-csv" and data.scale == HALF_STARS
    assert list(data.users.columns) == ["user_id", *DEMOGRAPHICS] and len(data.users) == N_USERS + 1
    assert len(data.movies) == N_ITEMS and len(data.ratings) == N_RATINGS
    assert set(data.ratings["rating"]) <= {x / 2 for x in range(1, 11)}
    assert data.ratings["rated_at"].dt.tz is not None and data.split_tests.empty
    comma, no_genres, no_year, accented = (data.movies.iloc[k] for k in range(4))
    assert comma.title == "Movie 7, The (1957)" and comma.release_year == 1957  # quoted, with a comma
    assert no_genres.genres == [] and no_year.title == "Movie 21" and str(no_year.release_year) == "<NA>"
    assert accented.title == "Amélie 28 (1978)" and accented.release_year == 1978
    assert data.occupations == sorted(set(data.users["occupation"]))
    assert set(data.member_sha256) == {"ratings.csv", "items.csv", "users.csv"}
    assert data.fingerprint == csv_fingerprint(synthetic_own_members())


def test_without_users_csv_the_users_are_the_ids_that_rate(tmp_path):
    data = _read(_own(tmp_path, users=False))
    assert list(data.users.columns) == ["user_id"] and data.users["user_id"].tolist() == list(range(1, N_USERS + 1))
    assert data.occupations == [] and set(data.member_sha256) == {"ratings.csv", "items.csv"}


def test_a_byte_order_mark_and_whole_stars_are_fine(tmp_path):
    def edit(members: dict[str, bytes]) -> None:
        for name in members:
            members[name] = "\ufeff".encode() + members[name]  # what a spreadsheet's "CSV UTF-8" writes
        header, *rows = members["ratings.csv"].decode().splitlines()
        whole = [f"{u},{i},{math.ceil(float(r))},{t}" for u, i, r, t in (row.split(",") for row in rows)]
        members["ratings.csv"] = "\n".join([header, *whole]).encode()  # "4", not "4.0": an integer is a rating too

    data = _read(_own(tmp_path, edit))
    assert len(data.ratings) == N_RATINGS and set(data.ratings["rating"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_each_layout_is_recognised_as_exactly_one_adapter(tmp_path):
    layouts = {
        "ml-100k": synthetic_members(),
        "ml-1m": synthetic_1m_members(),
        "ml-csv": synthetic_csv_members(),
        "own-csv": synthetic_own_members(),
    }
    for name, members in {**layouts, "own-csv without users.csv": synthetic_own_members(users=False)}.items():
        assert [a.name for a in recognise(members)] == [name.split()[0]], name
    own, ml_csv = _own(tmp_path), write_archive(tmp_path / "ml.zip", layouts["ml-csv"], folder="ml-latest-small")
    assert _read(own, "auto").dataset == "own-csv" and _read(ml_csv, "auto").dataset == "ml-csv"
    for chosen in ("ml-csv", "ml-100k", "ml-1m"):
        with pytest.raises(DataError, match=r"in the plain CSV \(own data\) layout .*set RECSYS_DATASET=own-csv"):
            _read(own, chosen)
    with pytest.raises(DataError, match=r"in the MovieLens CSV .* layout .*set RECSYS_DATASET=ml-csv"):
        _read(ml_csv, "own-csv")
    assert ADAPTERS["own-csv"].fingerprint is None and ADAPTERS["own-csv"].native_splits == ()


def _replace(member: str, old: bytes, new: bytes):
    def edit(members: dict[str, bytes]) -> None:
        assert old in members[member], (member, old)
        members[member] = members[member].replace(old, new, 1)

    return edit


def _append(member: str, row: bytes):
    return lambda m: m.__setitem__(member, m[member] + row)


def _line(member: str, line: int):
    """Append a copy of ``member``'s line ``line``: a repeated id (items, users) or rating."""
    return lambda m: m.__setitem__(member, m[member] + m[member].splitlines()[line - 1] + b"\n")


def _set_field(member: str, line: int, column: int, value: bytes):
    def edit(members: dict[str, bytes]) -> None:
        lines = members[member].split(b"\n")
        row = lines[line - 1].split(b",")
        row[column] = value
        lines[line - 1] = b",".join(row)
        members[member] = b"\n".join(lines)

    return edit


def _empty(member: str, header_only: bool = False):
    return lambda m: m.__setitem__(member, m[member].splitlines(keepends=True)[0] if header_only else b"")


RATING_AFTER = N_RATINGS + 2  # the line a row appended to ratings.csv is on
BAD = [
    (_set_field("ratings.csv", 3, 2, b"5.5"), r"ratings\.csv line 3: rating 5\.5 is outside 0\.5-5 in steps of 0\.5"),
    (_set_field("ratings.csv", 3, 2, b"0"), r"ratings\.csv line 3: rating 0 is outside 0\.5-5"),
    (_set_field("ratings.csv", 3, 2, b"3.25"), r"ratings\.csv line 3: rating 3\.25 is outside"),
    (_set_field("ratings.csv", 3, 2, b"four"), r"ratings\.csv line 3: rating 'four' is not a number"),
    (_set_field("ratings.csv", 4, 0, b"0"), r"ratings\.csv line 4: user id 0 is not positive"),
    (_set_field("ratings.csv", 4, 3, b"-5"), r"ratings\.csv line 4: timestamp -5 is not a time between 1970"),
    (
        _replace("ratings.csv", b"user_id,item_id,rating,timestamp", b"user_id,item_id,rating"),
        r"ratings\.csv line 1: header is 'user_id,item_id,rating', expected 'user_id,item_id,rating,timestamp'",
    ),
    (
        _replace("ratings.csv", b"user_id,item_id,rating,timestamp", b"userId,movieId,rating,timestamp"),
        r"ratings\.csv line 1: header is 'userId,movieId,rating,timestamp', .*\(a missing, extra or renamed column\)",
    ),
    (
        _replace("items.csv", b"item_id,title,genres", b"item_id,title,genres,year"),
        r"items\.csv line 1: header is 'item_id,title,genres,year', expected 'item_id,title,genres'",
    ),
    (
        _replace("users.csv", b"user_id,age,gender,occupation,zip_code", b"user_id,age,sex,occupation,zip_code"),
        r"users\.csv line 1: header is 'user_id,age,sex,occupation,zip_code', expected 'user_id,age,gender,",
    ),
    (_append("ratings.csv", b"1,7,4.0\n"), rf"ratings\.csv line {RATING_AFTER}: expected 4 comma-separated fields"),
    (
        _append("ratings.csv", b"3,9999,4.0,1200000000\n"),
        rf"ratings\.csv line {RATING_AFTER}: unknown item id 9999 \(not in items\.csv\)",
    ),
    (
        _append("ratings.csv", b"99,7,4.0,1200000000\n"),
        rf"ratings\.csv line {RATING_AFTER}: unknown user id 99 \(not in users\.csv\)",
    ),
    (_line("ratings.csv", 2), rf"ratings\.csv line {RATING_AFTER}: user 1 rates item \d+ more than once"),
    (_line("items.csv", 2), rf"items\.csv line {N_ITEMS + 2}: duplicate item id 7"),
    (_line("users.csv", 3), rf"users\.csv line {N_USERS + 3}: duplicate user id 2"),
    (_set_field("users.csv", 2, 2, b"X"), r"users\.csv line 2: gender 'X' is not M or F"),
    (_set_field("users.csv", 2, 1, b"0"), r"users\.csv line 2: age 0 is not between 1 and 120"),
    (_set_field("users.csv", 2, 1, b"old"), r"users\.csv line 2: age 'old' is not an integer"),
    (_set_field("items.csv", 3, 1, b" "), r"items\.csv line 3: the title is empty"),
    (_empty("ratings.csv"), r"ratings\.csv: is empty"),
    (_empty("ratings.csv", header_only=True), r"ratings\.csv: no ratings"),
    (_empty("items.csv", header_only=True), r"items\.csv: no items"),
    (_empty("users.csv"), r"users\.csv: is empty"),
    (_empty("users.csv", header_only=True), r"users\.csv: no users \(leave users\.csv out"),
    (
        _replace("items.csv", "Amélie".encode(), "Amélie".encode("latin-1")),  # saved as latin-1, not UTF-8
        r"items\.csv line 5: is not UTF-8 \(own-csv files are\); re-encode it",
    ),
    (lambda m: m.pop("items.csv"), r"missing member file\(s\): items\.csv"),
]


@pytest.mark.parametrize(("edit", "message"), BAD)
def test_bad_input_is_one_line_naming_file_and_line(tmp_path, edit, message):
    with pytest.raises(DataError, match=message) as caught:
        _read(_own(tmp_path, edit))
    assert "\n" not in str(caught.value)


def test_loads_follow_the_archive_and_bad_input_leaves_the_database_as_it_was(empty_db_url, tmp_path):
    settings = make_settings(dataset="own-csv", data_sha256="", home=tmp_path / "home")
    engine = make_engine(empty_db_url)
    try:
        bare = ingest(settings, empty_db_url, source=str(_own(tmp_path, users=False, name="bare.zip")))
        assert (bare.dataset, bare.users, bare.movies, bare.ratings) == ("own-csv", N_USERS, N_ITEMS, N_RATINGS)
        assert list(load_movielens(engine).users.columns) == ["user_id"]  # no users.csv: no demographics

        full = ingest(settings, empty_db_url, source=str(_own(tmp_path)))  # same ratings, users.csv added
        assert full.loaded and full.users == N_USERS + 1
        back = load_movielens(engine)
        assert back.dataset == "own-csv" and back.scale == HALF_STARS
        assert list(back.users.columns) == ["user_id", *DEMOGRAPHICS] and back.users[DEMOGRAPHICS].notna().all().all()
        assert back.occupations == _read(_own(tmp_path, name="again.zip")).occupations
    finally:
        engine.dispose()

    before = snapshot(empty_db_url)
    for k, (edit, message) in enumerate(BAD):
        with pytest.raises(DataError, match=message):
            ingest(settings, empty_db_url, source=str(_own(tmp_path, edit, name=f"bad{k}.zip")), force=True)
        assert snapshot(empty_db_url) == before, message

    env = recsys_env(empty_db_url, "own-csv", tmp_path) | {"RECSYS_DATA_URL": ""}
    unknown_user = _own(tmp_path, _append("ratings.csv", b"99,7,4.0,1200000000\n"), name="unknown-user.zip")
    for args, says in (
        (["ingest", "--source", str(unknown_user), "--force"], "unknown user id 99"),
        (["ingest", "--force"], "RECSYS_DATASET=own-csv has no official download address: set RECSYS_DATA_URL"),
    ):
        done = subprocess.run([*RECSYS, *args], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: "), done.stderr
        assert says in done.stderr
        assert snapshot(empty_db_url) == before


def test_no_address_is_one_line_before_any_database_starts(tmp_path):
    env = recsys_env("", "own-csv", tmp_path) | {"RECSYS_DATA_URL": ""}
    del env["RECSYS_DATABASE_URL"]  # unset: `recsys ingest` would start the managed server in RECSYS_HOME
    done = subprocess.run([*RECSYS, "ingest"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        "error: RECSYS_DATASET=own-csv has no official download address: set RECSYS_DATA_URL "
        "(or recsys ingest --source) to your archive (a path, file:// or https URL)"
    ], done.stderr
    assert not (tmp_path / "home").exists()


def test_a_missing_local_archive_is_one_line_before_any_database_starts(tmp_path):
    env = recsys_env("", "own-csv", tmp_path)
    del env["RECSYS_DATABASE_URL"]
    missing = tmp_path / "nowhere.zip"
    done = subprocess.run(
        [*RECSYS, "ingest", "--source", str(missing)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"error: data archive not found: {missing}; "), done.stderr
    assert not (tmp_path / "home").exists()


@pytest.mark.slow
def test_own_archive_with_users_ingests_trains_precomputes_and_serves(empty_db_url, tmp_path):
    archive = _own(tmp_path, name="my-data.zip")
    env = recsys_env(empty_db_url, "own-csv", tmp_path)
    ingested = run_recsys(["ingest", "--source", str(archive)], env)
    assert ingested.stdout.startswith(f"loaded: {N_USERS + 1} users, {N_ITEMS} movies, {N_RATINGS} ratings")
    trained = run_recsys(["train", "--config", "tiny", "--quiet", "--no-refit"], env)
    assert "registry: champion" in trained.stdout, trained.stdout
    engine = make_engine(empty_db_url)
    try:
        # the demographics of users.csv are the user tower's inputs
        assert sorted(user_tower_inputs(engine)) == sorted(["user_id", *DEMOGRAPHICS])
        assert champion_metadata(engine)["rating_scale"] == [0.5, 5.0, 0.5]
        run_recsys(["precompute", "--shards", "2"], env)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM recsys.current_ranked_scores")).scalar()
            unrated = conn.execute(  # the users.csv user who rates nothing has a list too
                sa.text("SELECT count(*) FROM recsys.current_ranked_scores WHERE user_id = :u"), {"u": N_USERS + 1}
            ).scalar()
        assert rows == (N_USERS + 1) * N_ITEMS and unrated == N_ITEMS
    finally:
        engine.dispose()
    check_top_n_over_http(empty_db_url, k=10, low=0.5, high=5.0)


@pytest.mark.slow
def test_without_users_csv_the_served_model_takes_only_the_user_id(empty_db_url, tmp_path):
    settings = make_settings(dataset="own-csv", data_sha256="", home=tmp_path / "home")
    ingest(settings, empty_db_url, source=str(_own(tmp_path, users=False)))
    # smoke: one pass, one member, one list head; every part a served model has
    trained = run_recsys(
        ["train", "--config", "smoke", "--quiet", "--no-refit"], recsys_env(empty_db_url, "own-csv", tmp_path)
    )
    assert "registry: champion" in trained.stdout, trained.stdout
    engine = make_engine(empty_db_url)
    try:
        assert user_tower_inputs(engine) == ["user_id"]
    finally:
        engine.dispose()
