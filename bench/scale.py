"""Cost curve of the all-pairs design (issue #12, item 6): synthetic data from 1x to 100x ML-100K's pairs.

    .venv/bin/python bench/scale.py [--sizes 1,10,100,ml-1m] [--admin-url URL]   # make bench-scale

A size ``k`` is k times ML-100K's 1,586,126 pairs at ML-100K's ratings per user (106) and
aspect: users and movies each times sqrt(k), so the ratings grow as sqrt(k) and the density
falls, as in the real releases (``recsys.data.synthetic_structured.scaled``): 1x is 943 x
1,682 with 100,000 ratings, 10x 2,982 x 5,319 with 316,225, 100x 9,430 x 16,820 (158.6 M
pairs) with 1,000,000. ``ml-1m`` is ML-1M's shape: 6,040 x 3,706, 1,000,209 ratings. The data
is the structured generator's (long-tailed popularity, biases plus latent tastes, genres and
demographics that carry signal) in the ML-1M ``.dat`` layout.

Each size runs in a scratch database (created on ``--admin-url``, dropped after) and a scratch
``RECSYS_HOME`` (a temporary directory, removed after), each step as the commands run it:
``recsys ingest``; ``recsys train`` of the ``smoke`` preset held to one epoch (and one list-head
epoch) with ``--no-refit``; ``recsys precompute`` (its own pairs/s line: after the model load);
then ``recsys serve`` and the p99 of a top-10 lookup and of a rerank of 100 candidates at 8
clients (bench/api_load.py's client and scenarios). For each step: the wall time, pairs/s,
the peak RSS of the command's process (``os.wait4``: the process and its children, not the
PostgreSQL backends) and its bytes on disk (the database's growth, the model artifact, the
published ranking's leaves and indexes). Then the slopes fitted over the k sizes and the
targets, PASS or MISS. Top-K retention is not built yet: its row says so.

Before anything runs, each size's precompute memory and ranking size are estimated and a
size that would not fit the machine's available memory or the database's disk is refused.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import sqlalchemy as sa

from api_load import ROOT, run_level, run_loop, scenarios, start_api
from recsys.config import MAX_PAIRS
from recsys.data.synthetic import write_archive
from recsys.data.synthetic_structured import ML_1M, Shape, generate, ml1m_members, scaled
from recsys.db import urls
from recsys.db.admin import create_database, drop_database
from recsys.db.engine import make_engine
from recsys.scoring import runs
from recsys.scoring.commands import DEFAULT_SHARDS

DEFAULT_SIZES = "1,10,100,ml-1m"
CLIENTS = 8
# Shards of at most this many pairs. A writer holds ~210 bytes per pair of its shard while it ranks
# and encodes (ranking.ranks + encode_rows measured on 4 M and 16.8 M pairs: 200 beyond the scored
# arrays), and a scored shard 9 (the job holds the one being scored and at most one waiting for a
# writer); the model and TensorFlow ~0.8 GiB (the 0.1x smoke run's peak).
PAIRS_PER_SHARD = 10_000_000
WRITE_BYTES_PER_PAIR, WAITING_BYTES_PER_PAIR, MODEL_BYTES = 210, 9, 1.5 * 2**30
DISK_BYTES_PER_PAIR = 100  # a published pair on disk, leaf and index (~91 measured), plus slack
TARGET_ML1M_SECONDS, TARGET_ML1M_PAIRS_S = 40.0, 560_000
TARGET_PAIRS_S_RATIO, TARGET_P99_RATIO = 0.75, 1.2
TOP_K = "n/a (top-K not built)"
_PRECOMPUTED = re.compile(
    r"published run (?P<run>\d+): (?P<pairs>[\d,]+) pairs .* in (?P<total>[\d.]+) s: (?P<load>[\d.]+) s loading"
    r".* then (?P<rate>[\d,]+) pairs/s"
)
_TRAINED = re.compile(r"trained on the training part of \S+ in (?P<fit>\d+)s")


@dataclass(frozen=True)
class Size:
    label: str
    shape: Shape
    factor: float | None  # k for the k-times sizes (the slope is fitted over them); None: ML-1M's shape

    def shards(self, pairs_per_shard: int) -> int:
        """The CLI's default, or more where a shard would exceed ``pairs_per_shard`` (memory)."""
        return max(DEFAULT_SHARDS, math.ceil(self.shape.pairs / pairs_per_shard))

    def peak_bytes(self, pairs_per_shard: int, workers: int) -> float:
        """The precompute's estimated peak: the model, a shard scored and one waiting, ``workers`` being written."""
        shard = self.shape.pairs / self.shards(pairs_per_shard)
        return MODEL_BYTES + WAITING_BYTES_PER_PAIR * shard * 2 + WRITE_BYTES_PER_PAIR * shard * workers


@dataclass
class Row:
    step: str
    seconds: float | None = None
    pairs_s: float | None = None
    peak_rss: int | None = None  # bytes
    disk: int | None = None  # bytes
    p99_ms: float | None = None
    note: str = ""


@dataclass
class Result:
    size: Size
    rows: list[Row] = field(default_factory=list)

    def row(self, step: str) -> Row | None:
        return next((r for r in self.rows if r.step == step), None)


def parse_sizes(text: str) -> list[Size]:
    sizes = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item == "ml-1m":
            sizes.append(Size("ml-1m", ML_1M, None))
        else:
            factor = float(item)
            if factor <= 0:
                raise SystemExit(f"--sizes: {item} is not a positive factor")
            sizes.append(Size(f"{factor:g}x", scaled(factor), factor))
    return sizes


def preflight(sizes: list[Size], admin_url: str, pairs_per_shard: int, workers: int) -> None:
    """Refuse, before anything runs, a size whose precompute would not fit memory or whose ranking the disk."""
    available = psutil.virtual_memory().available
    free_disk = _database_disk_free(admin_url)
    for size in sizes:
        need = size.peak_bytes(pairs_per_shard, workers)
        disk = DISK_BYTES_PER_PAIR * size.shape.pairs
        print(
            f"{size.label}: {size.shape.users:,} users x {size.shape.movies:,} movies = {size.shape.pairs:,} pairs, "
            f"{size.shape.ratings:,} ratings; {size.shards(pairs_per_shard)} shards; "
            f"precompute peak ~{need / 2**30:.1f} GiB "
            f"(available {available / 2**30:.1f}), ranking ~{disk / 2**30:.1f} GiB"
            + ("" if free_disk is None else f" (database disk free {free_disk / 2**30:.0f})")
        )
        if need > 0.9 * available:
            raise SystemExit(f"{size.label}: the precompute would need ~{need / 2**30:.1f} GiB; not running")
        if free_disk is not None and 2 * disk > free_disk:  # the ranking and its WAL
            raise SystemExit(f"{size.label}: the ranking needs ~{2 * disk / 2**30:.0f} GiB of disk; not running")


def _database_disk_free(admin_url: str) -> int | None:
    """Free bytes where the PostgreSQL server keeps its data, when it runs on this machine (else None)."""
    engine = make_engine(admin_url)
    try:
        with engine.connect() as conn:
            directory = Path(conn.execute(sa.text("SHOW data_directory")).scalar_one())
    except sa.exc.DBAPIError:
        return None  # not a superuser: the server does not say
    finally:
        engine.dispose()
    return psutil.disk_usage(str(directory)).free if directory.is_dir() else None


def run(command: list[str], env: dict[str, str], log: Path) -> tuple[str, float, int]:
    """(stdout, wall seconds, peak RSS in bytes) of one command; its stderr goes to ``log``."""
    started = time.perf_counter()
    with log.open("ab") as stderr:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr)
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)  # the kernel's peak RSS of it and its reaped children
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{' '.join(command[2:])} failed (exit {proc.returncode}):\n{out}\n{tail}")
    return out, seconds, usage.ru_maxrss * 1024


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """Stop the API (SIGTERM, then SIGKILL) and return its peak RSS in bytes (workers included)."""
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss * 1024
        if time.monotonic() > deadline:
            proc.kill()
            deadline = math.inf
        time.sleep(0.1)


def database_bytes(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(size: Size, args: argparse.Namespace) -> Result:
    """Every step of one size in its own scratch database and RECSYS_HOME, both removed after."""
    result = Result(size)
    pairs, shards = size.shape.pairs, size.shards(args.pairs_per_shard)
    scratch = Path(tempfile.mkdtemp(prefix=f"recsys-scale-{size.label}-"))
    url = create_database(args.admin_url, "recsys_scale")
    engine, api = make_engine(url), None
    try:
        print(f"\n== {size.label}: scratch {scratch}, database {urls.parse(url).database}", flush=True)
        started = time.perf_counter()
        members = ml1m_members(generate(size.shape, seed=args.seed))
        archive = write_archive(scratch / "synthetic-ml-1m.zip", members, folder="ml-1m")
        result.rows.append(
            Row("archive (generate + write)", time.perf_counter() - started, disk=archive.stat().st_size)
        )
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "RECSYS_DATABASE_URL": url,
            "RECSYS_HOME": str(scratch / "home"),
            "RECSYS_DATASET": "ml-1m",
            "RECSYS_DATA_SHA256": "",  # made up here: no official fingerprint to check
            "RECSYS_MAX_MEMBER_BYTES": str(max(32 * 2**20, 2 * max(len(m) for m in members.values()))),
            "RECSYS_MAX_PAIRS": str(max(pairs, MAX_PAIRS)),
        }
        del members
        recsys, log = [sys.executable, "-m", "recsys.cli"], scratch / "stderr.log"
        before = database_bytes(engine)

        out, seconds, rss = run([*recsys, "ingest", "--source", str(archive)], env, log)
        result.rows.append(Row("ingest", seconds, pairs / seconds, rss, database_bytes(engine) - before))
        print(f"   {out.strip()}", flush=True)

        config = scratch / "one-epoch.yaml"
        config.write_text(f"preset: {args.preset}\nname: {args.preset}-1-epoch\nepochs: 1\nretrieval_epochs: 1\n")
        out, seconds, rss = run([*recsys, "train", "--config", str(config), "--no-refit", "--quiet"], env, log)
        fit = _TRAINED.search(out)
        result.rows.append(
            Row(
                f"train ({args.preset}, 1 epoch)", seconds, pairs / seconds, rss, tree_bytes(scratch / "home/artifacts"),
                note=f"fit {fit['fit']} s; holdout metrics, export and registry in the wall time" if fit else "",
            )
        )  # fmt: skip
        print(f"   {out.strip().splitlines()[0]}", flush=True)

        command = [*recsys, "precompute", "--shards", str(shards), "--workers", str(args.workers)]
        out, seconds, rss = run(command, env, log)
        line = _PRECOMPUTED.search(out)
        if line is None:
            raise SystemExit(f"recsys precompute printed no pairs/s line:\n{out}")
        with engine.connect() as conn:
            on_disk = runs.run_bytes(conn, int(line["run"]))
        after_load = float(line["total"]) - float(line["load"])
        result.rows.append(
            Row(
                "precompute all pairs", after_load, float(line["rate"].replace(",", "")), rss, on_disk,
                note=f"after the model load ({line['load']} s); process {seconds:.1f} s; {shards} shards; "
                f"{on_disk / pairs:.0f} B/pair",
            )
        )  # fmt: skip
        result.rows.append(Row("precompute top-K", note=TOP_K))
        print(f"   {out.strip()}", flush=True)

        makers = scenarios(engine)
        api, base = start_api(urls.as_role(url, "recsys_api"), args.api_workers)
        for name, step in (("top10", "API top-10"), ("rerank100", "API rerank-100")):
            level = run_loop(run_level(base, name, makers[name], CLIENTS, args.api_requests, args.api_seconds))
            result.rows.append(
                Row(
                    f"{step} @{CLIENTS} clients", level.seconds, p99_ms=level.p99_ms,
                    note=f"{level.requests:,} requests, {level.rps:,.0f} req/s, {level.errors} errors",
                )
            )  # fmt: skip
        rss = stop(api)
        api = None
        for row in result.rows[-2:]:
            row.peak_rss = rss  # one server for both
    finally:
        if api is not None:
            stop(api)
        engine.dispose()
        drop_database(args.admin_url, url)
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def table(results: list[Result]) -> str:
    lines = [
        "| size | pairs | ratings | step | wall s | pairs/s | peak RSS MiB (largest process) | on disk MiB | p99 ms | note |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        shape = result.size.shape
        for row in result.rows:
            cells = [
                result.size.label, f"{shape.pairs:,}", f"{shape.ratings:,}", row.step,
                _num(row.seconds, "{:.1f}"), _num(row.pairs_s, "{:,.0f}"),
                _num(row.peak_rss and row.peak_rss / 2**20, "{:,.0f}"), _num(row.disk and row.disk / 2**20, "{:,.1f}"),
                _num(row.p99_ms, "{:.2f}"), row.note,
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def slopes(results: list[Result]) -> list[str]:
    """Over the k sizes, least squares: each step's wall time and the API's p99 against the pairs, and
    the exponent (d log y / d log pairs: 1 is linear, 0 flat). The API levels are bounded by
    requests and seconds, so their wall time is left out."""
    fitted = sorted((r for r in results if r.size.factor is not None), key=lambda r: r.size.shape.pairs)
    if len(fitted) < 2:
        return ["slopes: need two or more of the k sizes (--sizes 1,10,...)"]
    lines = [
        f"fitted over {', '.join(r.size.label for r in fitted)} (y = a + b x M pairs; exponent d log y / d log pairs):"
    ]
    for row in fitted[0].rows:
        if row.seconds is not None and row.p99_ms is None:
            lines.append(f"  {row.step} wall s: {_fit(fitted, lambda r, step=row.step: r.row(step).seconds)}")
        elif row.p99_ms is not None:
            lines.append(f"  {row.step} p99 ms: {_fit(fitted, lambda r, step=row.step: r.row(step).p99_ms)}")
    first, last = fitted[0], fitted[-1]
    ratio = last.row("precompute all pairs").pairs_s / first.row("precompute all pairs").pairs_s
    lines.append(f"  precompute pairs/s {last.size.label} / {first.size.label}: {ratio:.2f}")
    lines.append(f"  precompute top-K: {TOP_K}")
    return lines


def _fit(results: list[Result], value) -> str:
    x = np.array([r.size.shape.pairs / 1e6 for r in results])
    y = np.array([value(r) for r in results])
    b, a = np.polyfit(x, y, 1)
    exponent = np.polyfit(np.log(x), np.log(np.maximum(y, 1e-9)), 1)[0]
    return f"{a:.2f} {b:+.3f} per M pairs, exponent {exponent:.2f}"


def targets(results: list[Result]) -> list[str]:
    by_label = {r.size.label: r for r in results}
    lines = ["targets:"]
    ml1m = by_label.get("ml-1m")
    if ml1m is None:
        lines.append(
            f"  ML-1M shape all pairs after model load <= {TARGET_ML1M_SECONDS:.0f} s: not run (--sizes ml-1m)"
        )
    else:
        row = ml1m.row("precompute all pairs")
        ok = row.seconds <= TARGET_ML1M_SECONDS and row.pairs_s >= TARGET_ML1M_PAIRS_S
        lines.append(
            f"  ML-1M shape all pairs after model load <= {TARGET_ML1M_SECONDS:.0f} s (>= {TARGET_ML1M_PAIRS_S:,} "
            f"pairs/s): {'PASS' if ok else 'MISS'} ({row.seconds:.1f} s, {row.pairs_s:,.0f} pairs/s)"
        )
    one, hundred = by_label.get("1x"), by_label.get("100x")
    if one is None or hundred is None:
        lines.append("  100x against 1x (pairs/s within 25%, API p99 within 20%): not run (--sizes 1,100)")
        return lines
    ratio = hundred.row("precompute all pairs").pairs_s / one.row("precompute all pairs").pairs_s
    lines.append(
        f"  precompute pairs/s at 100x within 25% of 1x: {'PASS' if ratio >= TARGET_PAIRS_S_RATIO else 'MISS'} "
        f"(100x / 1x = {ratio:.2f})"
    )
    for step in (f"API top-10 @{CLIENTS} clients", f"API rerank-100 @{CLIENTS} clients"):
        base, big = one.row(step).p99_ms, hundred.row(step).p99_ms
        ok = big <= TARGET_P99_RATIO * base
        lines.append(
            f"  {step} p99 at 100x within 20% of 1x (ML-100K's shape): {'PASS' if ok else 'MISS'} "
            f"({big:.2f} ms vs {base:.2f} ms)"
        )
    lines.append(f"  precompute top-K: {TOP_K}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help="k times ML-100K's pairs, or ml-1m (default: %(default)s)"
    )
    parser.add_argument(
        "--admin-url", default=os.environ.get("RECSYS_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--preset", default="smoke", help="the model preset, held to one epoch")
    parser.add_argument("--workers", type=int, default=2, help="recsys precompute --workers")
    parser.add_argument(
        "--pairs-per-shard", type=int, default=PAIRS_PER_SHARD, help="more shards than the default 4 above this"
    )
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--api-requests", type=int, default=4000, help="per scenario")
    parser.add_argument("--api-seconds", type=float, default=10.0, help="per scenario")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = parse_sizes(args.sizes)
    preflight(sizes, args.admin_url, args.pairs_per_shard, args.workers)
    started = time.perf_counter()
    results = []
    for size in sizes:
        load, began = os.getloadavg()[0], time.perf_counter()
        results.append(measure(size, args))
        print(f"   {size.label} took {time.perf_counter() - began:.0f} s (1-min load average before: {load:.1f})")
    print(f"\n{table(results)}\n")
    print("\n".join(slopes(results) + targets(results)))
    print(f"\n{os.cpu_count()} cores; the whole run {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
