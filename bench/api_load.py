"""Load test of the lookup API on loopback: top-10 lookup and rerank of 100 candidates.

The API runs as ``recsys serve`` runs it (``python -m recsys.api.commands serve``: the
same uvicorn loop, protocol and limits), with the rate limiter on at a limit it never
reaches, so its cost is in the numbers. For each scenario and concurrency level (default
1, 8, 32, 64) one asyncio client keeps ``concurrency`` keep-alive connections busy until
``--requests`` are done or ``--seconds`` have passed, and prints requests/s, p50, p99,
the error rate and where the CPU went, per request: the API workers, their PostgreSQL
backends (when the server runs on this machine) and the load client itself, plus the
share of the machine that everything else used meanwhile (other people's jobs), since
the client, the API and PostgreSQL share the same cores. Then it compares with the
original design, where the service loaded the model and scored the candidate list on
every request: the exported SavedModel of the champion (recsys.model_versions
artifact_uri, or ``--model PATH``) scores 100 candidates per call, in-process and
sequentially, which is a lower bound on that design's cost (no HTTP).

    # a throwaway database on the test server with ML-100K and a published baseline:
    .venv/bin/python bench/api_load.py --temp-db --workers 2
    # an existing deployment (ranking already published):
    .venv/bin/python bench/api_load.py --api-database-url postgresql://recsys_api@host/recsys

Traffic goes to 127.0.0.1 only; every loop is bounded by count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recsys.db import store, urls  # noqa: E402
from recsys.db.admin import create_database, drop_database  # noqa: E402
from recsys.db.engine import make_engine  # noqa: E402
from recsys.model import registry  # noqa: E402

TARGETS = {"top10": (20.0, 1000.0), "rerank100": (30.0, None)}  # p99 ms, req/s


@dataclass
class Level:
    scenario: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray
    cpu: dict[str, float | None] = field(default_factory=dict)  # CPU seconds per group, see CpuMeter

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99)) if len(self.latencies_ms) else float("nan")

    def row(self) -> str:
        p50, p99 = np.percentile(self.latencies_ms, [50, 99]) if len(self.latencies_ms) else (float("nan"),) * 2
        err = 100.0 * self.errors / max(self.requests, 1)

        def per_request(group: str) -> str:
            used = self.cpu.get(group)
            return "-" if used is None or not self.requests else f"{used / self.requests * 1e6:,.0f}"

        others = self.cpu.get("others")
        share = "-" if others is None else f"{100 * others / (self.seconds * CORES):.0f}%"
        return (
            f"| {self.scenario} | {self.concurrency} | {self.requests} | {self.rps:,.0f} | {p50:.2f} | {p99:.2f} "
            f"| {err:.2f}% | {per_request('api')} | {per_request('pg')} | {per_request('client')} | {share} |"
        )


TABLE_HEAD = (
    "| scenario | concurrency | requests | req/s | p50 ms | p99 ms | errors "
    "| API CPU us/req | PG CPU us/req | client CPU us/req | others' CPU |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)
CORES = os.cpu_count() or 1
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> float | None:
    """utime + stime of a process in seconds (Linux /proc), None if it is not on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def _is_postgres(pid: int) -> bool:
    """Whether ``pid`` is a PostgreSQL process here (not a remote server's pid that happens to exist)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres")
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _machine_busy() -> float | None:
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS  # all but idle and iowait


class CpuMeter:
    """CPU used during a level by the API workers, their PostgreSQL backends, this client,
    and everything else on the machine (Linux ``/proc``; groups it cannot see are None).

    The backends are the API pool's sessions (``application_name = 'recsys-api'``) listed
    by the owner connection; their CPU is readable only when PostgreSQL runs here (a pid
    whose command line is not a postgres process counts as not visible).
    """

    def __init__(self, api: subprocess.Popen, engine: sa.Engine) -> None:
        self.api, self.engine = api, engine
        self.start: dict[str, dict[int, float | None]] | None = None

    def _backends(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = 'recsys-api'"
                    )
                ).scalars()
            )

    def _snapshot(self) -> dict[str, dict[int, float | None]]:
        api_pids = [self.api.pid, *_children(self.api.pid)]
        return {
            "api": {pid: _proc_cpu(pid) for pid in api_pids},
            "pg": {pid: _proc_cpu(pid) if _is_postgres(pid) else None for pid in self._backends()},
            "client": {0: time.process_time()},
            "machine": {0: _machine_busy()},
        }

    def begin(self) -> None:
        self.start = self._snapshot()

    def end(self) -> dict[str, float | None]:
        end, start = self._snapshot(), self.start or {}
        used: dict[str, float | None] = {}
        for group, now in end.items():
            before = start.get(group, {})
            if any(v is None for v in now.values()):
                used[group] = None
            else:
                used[group] = sum(v - (before.get(pid) or 0.0) for pid, v in now.items())  # new pids: all theirs
        ours = [used[g] for g in ("api", "pg", "client")]
        used["others"] = None if used["machine"] is None or None in ours else max(used["machine"] - sum(ours), 0.0)
        return used


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    httpx costs ~0.4 ms of CPU per request here, as much as the server's work, and the
    client shares the two cores with the API and PostgreSQL. This one reads the head in
    one ``readuntil`` and runs on uvloop when it is installed (as it is with the API):
    ~0.1 ms per top-10 request, against ~0.15 ms reading the head line by line on the
    default loop. Its own CPU is measured and printed, so the numbers describe the server.
    ``--client httpx`` measures with httpx instead.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: object | None) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(payload)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)
        try:
            response_head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
            status = int(response_head[9:12])
            length = 0
            if (at := response_head.find(b"\r\ncontent-length:")) >= 0:
                length = int(response_head[at + 17 : response_head.index(b"\r\n", at + 2)])
            await self.reader.readexactly(length)
            if b"\r\nconnection: close" in response_head:
                await self.close()
            return status
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            await self.close()
            return -1

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def run_level(
    base: str,
    scenario: str,
    make_request: Callable[[random.Random], tuple],
    concurrency: int,
    n: int,
    seconds: float,
    client_kind: str = "raw",
    meter: CpuMeter | None = None,
) -> Level:
    latencies: list[float] = []
    errors = 0
    issued = 0
    host, port = base.removeprefix("http://").split(":")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    shared = httpx.AsyncClient(base_url=base, limits=limits, timeout=10.0) if client_kind == "httpx" else None

    async def send(raw: RawClient | None, method: str, path: str, body: object | None) -> int:
        if raw is not None:
            return await asyncio.wait_for(raw.request(method, path, body), timeout=10.0)
        return (await shared.request(method, path, json=body)).status_code

    async def worker(seed: int) -> None:
        nonlocal errors, issued
        rng = random.Random(seed)
        raw = RawClient(host, int(port)) if shared is None else None
        for _ in range(max(3, 100 // concurrency)):  # warm up the connections and the servers' statement caches
            await send(raw, *make_request(rng))
        await ready.wait()
        while issued < n and time.perf_counter() < deadline:
            issued += 1
            method, path, body = make_request(rng)
            started = time.perf_counter()
            try:
                ok = await send(raw, method, path, body) == 200
            except (TimeoutError, httpx.HTTPError, OSError):
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            errors += not ok
        if raw is not None:
            await raw.close()

    ready = asyncio.Event()
    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    await asyncio.sleep(1.0 + concurrency * 0.01)
    if meter is not None:
        meter.begin()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    cpu = meter.end() if meter is not None else {}
    if shared is not None:
        await shared.aclose()
    return Level(scenario, concurrency, len(latencies), errors, elapsed, np.array(latencies), cpu)


def run_loop(coroutine: Coroutine[None, None, Level]) -> Level:
    """Run a level on uvloop when it is installed (a cheaper client), else on asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def summary(scenario: str, levels: list[Level], p99_target: float, rps_target: float | None) -> str:
    """Best throughput, where p99 is met, and where both targets are met at the same concurrency."""
    best = max(levels, key=lambda r: r.rps)
    ok_p99 = [r for r in levels if r.p99_ms <= p99_target]
    line = (
        f"{scenario}: best {best.rps:,.0f} req/s at concurrency {best.concurrency}; p99 <= {p99_target} ms "
        f"at concurrency {', '.join(str(r.concurrency) for r in ok_p99) or 'none'}"
    )
    if rps_target:
        both = [r for r in ok_p99 if r.rps >= rps_target]
        line += f"; target >= {rps_target:,.0f} req/s with p99 <= {p99_target} ms met at concurrency " + (
            ", ".join(str(r.concurrency) for r in both) or "none"
        )
    return line


def scenarios(engine: sa.Engine) -> dict[str, Callable[[random.Random], tuple]]:
    with engine.connect() as conn:
        users = store.user_ids(conn).tolist()
        titles = store.movie_titles(conn).tolist()

    def top10(rng: random.Random) -> tuple:
        return "GET", f"/users/{rng.choice(users)}/recommendations?k=10", None

    def rerank100(rng: random.Random) -> tuple:
        body = {"user_id": str(rng.choice(users)), "candidate_movies": rng.sample(titles, 100)}
        return "POST", "/recommendation/ranked_recommendation", body

    return {"top10": top10, "rerank100": rerank100}


def model_per_request(engine: sa.Engine, model_path: str | None, n: int) -> tuple[float, float] | str:
    """(requests/s, p99 ms) of scoring 100 candidates with the SavedModel per call, or why not."""
    if model_path is None and (champion := registry.champion_version_id(engine)) is not None:
        model_path = registry.artifact_uri(engine, champion)
    if not model_path or not (Path(model_path.removeprefix("file://")) / "saved_model.pb").is_file():
        return "no exported champion model (recsys.model_versions artifact_uri) yet: skipped"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pandas as pd

    from recsys.db.store import load_movielens
    from recsys.model.export import load_model
    from recsys.model.inputs import movie_table, user_table

    model = load_model(model_path.removeprefix("file://"))
    ml = load_movielens(engine)
    users, movies = user_table(ml), movie_table(ml)
    rng = random.Random(0)
    user_ids, movie_ids = list(users.index), list(movies.index)
    latencies = []
    for i in range(n + 5):
        started = time.perf_counter()
        pairs = pd.DataFrame({"user_id": rng.choice(user_ids), "movie_id": rng.sample(movie_ids, 100)})
        scores = model.predict(pairs, users, movies)
        np.argsort(-scores)
        if i >= 5:  # first calls trace the graph
            latencies.append((time.perf_counter() - started) * 1000)
    lat = np.array(latencies)
    return 1000.0 / lat.mean(), float(np.percentile(lat, 99))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(api_url: str, workers: int) -> tuple[subprocess.Popen, str]:
    """``recsys serve`` (uvicorn settings as deployed) on a free loopback port, once ready."""
    port = free_port()
    env = {
        **os.environ,
        "RECSYS_API_DATABASE_URL": api_url,
        "RECSYS_API_RATE_LIMIT": "1000000/second",  # keep the limiter's cost in the numbers, not its 429s
        "RECSYS_API_POOL_SIZE": "8",  # 64 concurrent clients over 2 workers
    }
    cmd = [sys.executable, "-m", "recsys.api.commands", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the API exited during startup")
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the API did not become ready in 30 s")


def temp_database(admin_url: str, archive: str) -> str:
    from recsys.api.baseline import publish_baseline
    from recsys.config import Settings
    from recsys.ingest import ingest

    url = create_database(admin_url, "recsys_bench")
    print(
        f"temp database {urls.parse(url).database}: ingesting {archive} and publishing the baseline ranking", flush=True
    )
    ingest(Settings(), url, source=archive)
    publish_baseline(make_engine(url), "bench-baseline")
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-database-url", help="URL the API reads with (read-only role)")
    parser.add_argument("--temp-db", action="store_true", help="create, seed and drop a database on --admin-url")
    parser.add_argument(
        "--admin-url", default=os.environ.get("RECSYS_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument(
        "--archive", default=os.environ.get("RECSYS_TEST_ARCHIVE", str(ROOT.parent / "shared/data/ml-100k.zip"))
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--requests", type=int, default=4000, help="per scenario and level")
    parser.add_argument("--seconds", type=float, default=20.0, help="per scenario and level")
    parser.add_argument("--model", help="SavedModel path for the per-request comparison (default: the champion)")
    parser.add_argument("--model-requests", type=int, default=200)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load generator (see RawClient)")
    args = parser.parse_args()
    if not args.temp_db and not args.api_database_url:
        parser.error("give --api-database-url or --temp-db")

    owner_url = temp_database(args.admin_url, args.archive) if args.temp_db else args.api_database_url
    api_url = urls.as_role(owner_url, "recsys_api") if args.temp_db else owner_url
    proc = None
    try:
        engine = make_engine(owner_url)
        makers = scenarios(engine)
        proc, base = start_api(api_url, args.workers)
        meter = CpuMeter(proc, engine)
        print(
            f"API: {args.workers} uvicorn worker(s) at {base}; {CORES} cores shared with the {args.client} "
            f"client and PostgreSQL; load average before the run {os.getloadavg()[0]:.2f}"
        )
        print("\n" + TABLE_HEAD)
        results: list[Level] = []
        for scenario, maker in makers.items():
            for c in (int(x) for x in args.concurrency.split(",")):
                level = run_loop(run_level(base, scenario, maker, c, args.requests, args.seconds, args.client, meter))
                results.append(level)
                print(level.row(), flush=True)
        print(f"\nload average after the run {os.getloadavg()[0]:.2f}")
        for scenario, (p99_target, rps_target) in TARGETS.items():
            print(summary(scenario, [r for r in results if r.scenario == scenario], p99_target, rps_target))
        comparison = model_per_request(engine, args.model, args.model_requests)
        if isinstance(comparison, str):
            print(f"model per request: {comparison}")
        else:
            rps, p99 = comparison
            rerank = max((r for r in results if r.scenario == "rerank100"), key=lambda r: r.rps)
            print(
                f"model per request (SavedModel, 100 candidates, in-process, sequential): {rps:,.0f} req/s, "
                f"p99 {p99:.1f} ms; API rerank100 best {rerank.rps:,.0f} req/s = {rerank.rps / rps:.1f}x"
            )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=15)
        if args.temp_db:
            drop_database(args.admin_url, owner_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
