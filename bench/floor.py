"""The floors of the protocol API's requests and of the sign-in on this stack, measured next to
ours and the peer.

    bench/.venv/bin/python -m bench.floor [--scenarios userinfo,introspection,revocation,flow,...]
                                          [--seconds 6] [--connections 32] [--threads 4]

How cheap can our answers get, on the stack the provider is bound to? The floor application
(``bench.floor_app``) is served by granian, under the production server's bridge and, for the
API's requests, under granian's WSGI interface for comparison. With ``flow``,
``flow+password`` or ``flow+password+otp`` the bench's driver signs in on it
(``bench.signin_floor``), under the bridge only; each password scenario is put against
argon2id's bound, measured just before it (the peer against its own library's, @node-rs/argon2),
and against the share of a flow's CPU that one verify alone takes.

All are pinned to the server core in turn, wrk and the driver to the load core, as
``bench/run`` does; what each costs per request is read from /proc.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench import driver, seed, targets
from bench.cli import Bench, Meter
from bench.floor_app import (
    CLIENT_VARIABLE,
    DATABASE_VARIABLE,
    ISSUER_VARIABLE,
    LOG_VARIABLE,
    PATHS,
    REDIS_VARIABLE,
    THREADS_VARIABLE,
)
from bench.options import parse_args
from bench.report import of_the_bound
from bench.targets import Verify, argon2_verify
from idp.accounts.hashing import PasswordHasher

# The code flows the floor signs in with (the async driver's), without and with the hash.
FLOWS = ("flow", "flow+password", "flow+password+otp")
PASSWORD_FLOWS = FLOWS[1:]
ROOT = Path(__file__).resolve().parent.parent


def floor_server(*, interface: str, core: int, port: int, database_url: str, issuer: str,
                 out: Path, client: tuple[str, str], redis_url: str, threads: int,
                 stack: bool = False) -> targets.Server:
    """A floor served by granian: ``bench.floor_app``'s under ``interface``, or with ``stack``
    the sign-in's floor on the fixed stack (``bench.stack_floor``), under the bridge (RSGI)."""
    label = "stack" if stack else interface
    command = [str(targets.BIN / "granian"), "--interface", interface, "--factory",
               "--loop", "uvloop", "--workers", "1", "--port", str(port), "--no-ws", "--log-level", "warning",
               # RSGI's requests take the bridge's threads; WSGI's, granian's own.
               *(["--blocking-threads", str(threads)] if interface == "wsgi" else []),
               "bench.stack_floor:rsgi_app" if stack else f"bench.floor_app:{interface}_app"]
    env = {**os.environ, DATABASE_VARIABLE: database_url, ISSUER_VARIABLE: issuer,
           LOG_VARIABLE: str(out / f"floor-{label}.log"), "PYTHONPATH": str(ROOT),
           CLIENT_VARIABLE: ":".join(client), REDIS_VARIABLE: redis_url, THREADS_VARIABLE: str(threads)}
    server = targets.Server(command, core=core, env=env, ready_url=f"http://127.0.0.1:{port}/ready",
                            log=out / f"floor-{label}.out")
    server.name = f"floor ({label})"
    return server


def _flows(bench: Bench, name: str, server: targets.Server, url: str, scenario: str,
           members: list[seed.Member], flows: driver.OurFlows | driver.PeerFlows) -> tuple[float, float]:
    """Flows per second and CPU ms a flow, the async driver's browsers signing in (``Bench.flows``)."""
    bench.flows(scenario, name, server, flows, url, members)
    result = bench.run.results[-1]
    if result.errors:
        raise RuntimeError(f"{name} {scenario}: {result.errors} errors; {'; '.join(result.notes)}")
    return result.rate, result.cpu_ms or 0.0


def _requests(bench: Bench, name: str, server: targets.Server, url: str, scenario: str,
              seeded: seed.Seeded, minter: seed.Minter) -> tuple[float, float]:
    """Requests per second and CPU ms a request, wrk sending them."""
    target = "peer" if name == "peer" else "ours"  # the floors answer ours' requests
    # Each its own requests: what the warm-up consumed is not sent again.
    warm_up, mode = bench.scenario_requests(target, seeded, minter, scenario)
    bench.wrk(url, warm_up, mode, seconds=2)
    requests, mode = bench.scenario_requests(target, seeded, minter, scenario)
    meter = Meter(server, None)
    measure = bench.wrk(url, requests, mode)
    cpu, _postgres = meter.per(measure.requests)
    if measure.errors or measure.exhausted:
        raise RuntimeError(f"{name} {scenario}: {measure.errors} errors, "
                           f"{measure.exhausted} out of inputs; see {bench.options.out}")
    return measure.requests / measure.seconds, cpu or 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    known = (*PATHS, *FLOWS)
    parser.add_argument("--scenarios", default=",".join(PATHS), help=f"subset of: {', '.join(known)}")
    parser.add_argument("--seconds", type=float, default=6, help="measured seconds per server (default 6)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--threads", type=int, default=4,
                        help="threads running requests in ours and the floor (default 4, as in production)")
    args = parser.parse_args(argv)
    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if not scenarios or set(scenarios) - set(known):
        parser.error(f"--scenarios: a subset of {', '.join(known)}")
    options = parse_args(["--scenarios", ",".join(scenarios), "--seconds", str(args.seconds),
                          "--connections", str(args.connections), "--threads", str(args.threads),
                          "--soak", "0", "--quick"])
    options.out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict[str, tuple[float, float]]] = {scenario: {} for scenario in scenarios}
    # Measured just before each password scenario: argon2-cffi's (the provider's, ours' and the
    # floors'), the peer's own library's for the peer.
    verifies: dict[tuple[str, str], Verify] = {}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as workdir:
        bench = Bench(options, Path(workdir))
        seed.reset_database(options.database_url)
        seeded = seed.seed(bench.ours_settings(), members=options.members,
                           cheap=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        minter = seed.Minter(bench.ours_settings(), seeded)
        floor_port = options.peer_port + 1
        ours_flows = driver.OurFlows(seeded.client_id, seeded.client_secret, options.database_url)
        pinned = bench.place_services()
        try:
            peer = bench.start(targets.peer(core=options.server_core, port=options.peer_port,
                                            config=bench.peer_config(seeded), log=options.out / "peer.log"))
            bench.bearer = {"ours": minter.tokens(1)[0][0], "peer": bench.peer_mint("access", 1)[0]}
            if "flow+password+otp" in scenarios:
                # Ours' outbox worker sends the codes' emails, ours' and the floor's, on the servers' core.
                bench.start(targets.outbox_worker(core=options.server_core, env=bench.ours_env(),
                                                  log=options.out / "outbox.log"))
            servers = [("ours", bench.start_ours("ours"), bench.ours_url)]
            floors = [("rsgi", False), ("wsgi", False)]
            if set(scenarios) & set(FLOWS):
                floors.append(("rsgi", True))
            for interface, stack in floors:
                server = floor_server(interface=interface, core=options.server_core, port=floor_port,
                                      database_url=options.database_url,
                                      issuer=f"{bench.ours_url}/{seed.TENANT}", out=options.out,
                                      client=(seeded.client_id, seeded.client_secret),
                                      redis_url=options.redis_url, threads=options.threads, stack=stack)
                servers.append((server.name, server, f"http://127.0.0.1:{floor_port}"))
            servers.append(("peer", peer, bench.peer_url))
            for name, server, url in servers:
                if server.process is None:  # the floors take the same port in turn
                    bench.start(server)
                flows = (driver.PeerFlows(seeded.client_id, seeded.client_secret) if name == "peer"
                         else ours_flows)
                for scenario in scenarios:
                    if name == "floor (stack)" and scenario not in FLOWS:
                        continue  # the stack's floor answers the sign-in only
                    if scenario not in FLOWS:
                        figures[scenario][name] = _requests(bench, name, server, url, scenario, seeded,
                                                            minter)
                    elif name != "floor (wsgi)":  # the sign-in's floor under the production bridge only
                        # The flow without the hash: members whose hash has the cheapest cost (ours
                        # is measured so in its own server, below: it would rehash them).
                        cheap = scenario == "flow" and name != "peer"
                        if scenario in PASSWORD_FLOWS:
                            verifies[scenario, name] = argon2_verify(options.server_core, peer=name == "peer")
                        if not (cheap and name == "ours"):
                            members = seeded.cheap_members if cheap else seeded.members
                            figures[scenario][name] = _flows(bench, name, server, url, scenario, members,
                                                             flows)
                if name != "peer":
                    bench.stop(server)
                if name == "ours" and "flow" in scenarios:
                    server = bench.start_ours("ours-cheap-hash", **seed.CHEAP_ARGON2)
                    figures["flow"][name] = _flows(bench, name, server, url, "flow", seeded.cheap_members,
                                                   flows)
                    bench.stop(server)
        finally:
            if pinned is not None:
                pinned.restore()
            bench.stop_all()
            minter.close()
    print(f"one worker on core {options.server_core}, {options.threads} threads, {options.connections} "
          f"clients, {args.seconds:g} s each; PostgreSQL and Redis {bench.run.settings['services']}")
    for scenario, rows in figures.items():
        unit = "flows/s" if scenario in FLOWS else "req/s"
        peer_rate = rows["peer"][0]
        bound = "  argon2id ms  x its bound  argon2id CPU share" if scenario in PASSWORD_FLOWS else ""
        print(f"{scenario:18} {unit:>8} {'CPU ms':>10} {'/ peer':>8}{bound}")
        for name, (rate, cpu) in rows.items():
            verify = verifies.get((scenario, name), Verify(0.0, 0.0))
            share = (f"  {verify.wall_ms:11.1f} {of_the_bound(rate, verify.wall_ms):11.2f} "
                     f"{verify.cpu_ms / cpu if cpu else 0:18.0%}") if bound else ""
            print(f"  {name:16} {rate:8,.1f} {cpu:10.3f} {rate / peer_rate:8.2f}{share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
