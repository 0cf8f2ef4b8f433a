"""The command line of the bench (no I/O here, so it is tested with the suite)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench.report import SCENARIOS
from bench.seed import is_bench_database

OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class Options:
    seconds: float
    rounds: int
    connections: int
    workers: int
    threads: int
    server_core: int
    load_core: int
    services_anywhere: bool
    scenarios: tuple[str, ...]
    soak_requests: int
    members: int
    database_url: str
    redis_url: str
    ours_port: int
    peer_port: int
    out: Path


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark our provider against node-oidc-provider 9.x on this machine.")
    parser.add_argument("--quick", action="store_true",
                        help="about a minute: 2 s per scenario, a 10 000-request soak")
    parser.add_argument("--seconds", type=float, help="duration of each scenario (default 10, quick 2)")
    parser.add_argument("--rounds", type=int,
                        help="times each scenario runs on each side, ours and the peer taking turns "
                        "(default 3, quick 1)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of our server (default 1: one per core, like the peer)")
    parser.add_argument("--threads", type=int, default=4,
                        help="threads running requests in each worker (default 4, as in production)")
    parser.add_argument("--server-core", type=int, default=0, help="core of both servers (default 0)")
    parser.add_argument("--load-core", type=int, default=1, help="core of the load generators (default 1)")
    parser.add_argument("--services-anywhere", action="store_true",
                        help="leave this machine's PostgreSQL and Redis where it runs them, the server "
                        "core included (default: every other core during the run, as their own "
                        "machines would be)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    parser.add_argument("--soak", type=int, dest="soak_requests",
                        help="requests sent before RSS is read the last time (default 100000, quick 10000; "
                        "0: no soak)")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/idp_bench",
                        help="the bench's own PostgreSQL database (its name must start with idp_bench)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10",
                        help="the bench's own Redis database, flushed at start (default db 10)")
    parser.add_argument("--ours-port", type=int, default=8710)
    parser.add_argument("--peer-port", type=int, default=8711)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where results.json and logs go")
    args = parser.parse_args(argv)

    scenarios = tuple(name.strip() for name in args.scenarios.split(",") if name.strip())
    unknown = [name for name in scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if not is_bench_database(args.database_url):
        parser.error("--database-url must name a database whose name starts with idp_bench")
    if args.redis_url.rstrip("/").endswith("/15"):
        parser.error("--redis-url: Redis db 15 belongs to the test suite")
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if min(args.connections, args.workers, args.threads, rounds) < 1:
        parser.error("--connections, --workers, --threads and --rounds must be at least 1")
    seconds = args.seconds if args.seconds else (2 if args.quick else 10)
    soak = args.soak_requests if args.soak_requests is not None else (10_000 if args.quick else 100_000)
    return Options(
        seconds=seconds, rounds=rounds, connections=args.connections, workers=args.workers,
        threads=args.threads, server_core=args.server_core, load_core=args.load_core,
        services_anywhere=args.services_anywhere, scenarios=scenarios,
        soak_requests=soak, database_url=args.database_url, redis_url=args.redis_url,
        # As many members a round: none reaches the limit of codes sent to an account.
        members=(64 if args.quick else 256) * rounds,
        ours_port=args.ours_port, peer_port=args.peer_port, out=args.out,
    )
