"""The servers under test, each pinned to the server core: our provider under its production
server (idp.web.server), the peer; and the argon2id verify each signs in with, timed alone on
that core."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench import proc
from idp.config import Settings

ROOT = Path(__file__).resolve().parent.parent
# The environment the harness runs in: ours' servers run from it too (bench/run makes it, from the
# interpreter it chooses; bench/README.md).
BIN = Path(sys.executable).parent


def environment(settings: dict) -> dict[str, str]:
    """The provider's settings as the environment variables it reads them from (``IDP_…``)."""
    return {f"IDP_{key.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in settings.items()}


def tenants_dir(workdir: Path) -> str:
    """The shipped tenants, with passkeys set on localhost: the bench serves 127.0.0.1 over
    plain HTTP, which cannot be a WebAuthn relying party, and passkeys are not measured."""
    directory = workdir / "tenants"
    directory.mkdir(parents=True, exist_ok=True)
    for source in (ROOT / "config" / "tenants").glob("*.toml"):
        text = source.read_text(encoding="utf-8")
        (directory / source.name).write_text(
            f'{text}\n[passkeys]\nrp_id = "localhost"\norigins = ["http://localhost"]\n', encoding="utf-8")
    return str(directory)
PEER_DIR = Path(__file__).resolve().parent / "peer"


class Server:
    """A process started with taskset, stopped by ``stop`` (also from the run's cleanup)."""

    name = "server"

    def __init__(self, command: list[str], *, core: int, env: dict[str, str], ready_url: str | None,
                 log: Path):
        self.command = ["taskset", "-c", str(core), *command]
        self.env = env
        self.ready_url = ready_url
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        with open(self.log, "ab") as log:
            # A process group of its own: stop() ends the server and its workers, nothing else.
            self.process = subprocess.Popen(  # noqa: S603 - our own fixed command line
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        if self.ready_url is None:
            return  # nothing to ask: it serves no HTTP
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as response:  # noqa: S310 - local
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not answer {self.ready_url} within {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def group(self) -> list[proc.Stat]:
        """Every process of the server: it runs in a process group of its own, led by the command."""
        return proc.group(self.process.pid) if self.process else []

    def pids(self) -> list[int]:
        """The processes that serve requests: the workers of a pre-forking server, not their parent."""
        return [member.pid for member in proc.serving(self.group())]

    def rss_mib(self) -> dict[int, float]:
        return {pid: proc.rss_mib(pid) for pid in self.pids()}

    def cpu_ticks(self) -> dict[int, int]:
        """CPU ticks of every process of the server (``proc.spent_ms`` turns two readings into ms)."""
        return proc.ticks(self.group())


class Ours(Server):
    name = "ours (granian)"


class Peer(Server):
    name = "peer (node-oidc-provider)"


def ours(*, core: int, port: int, env: dict[str, str], workers: int, threads: int, log: Path) -> Ours:
    command = [
        str(BIN / "python"), "-m", "idp.web.server",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
    ]
    return Ours(command, core=core, env={**os.environ, **env}, ready_url=f"http://127.0.0.1:{port}/healthz",
                log=log)


def outbox_worker(*, core: int, env: dict[str, str], log: Path) -> Server:
    """``idp outbox work``, which sends what our pages queue (the second factor's codes), as in
    production: without it each code page would wait ``message_sent_wait_ms`` for nothing."""
    server = Server([str(BIN / "idp"), "outbox", "work"], core=core,
                    env={**os.environ, **env}, ready_url=None, log=log)
    server.name = "ours' outbox worker"
    return server


def peer(*, core: int, port: int, config: Path, log: Path) -> Peer:
    command = ["node", str(PEER_DIR / "provider.mjs"), str(port), str(config)]
    return Peer(command, core=core, env=dict(os.environ), ready_url=f"http://127.0.0.1:{port}/bench/ready",
                log=log)


def trivial(*, core: int, port: int, log: Path) -> Peer:
    """The smallest HTTP server node offers: measures what the load generators can send."""
    script = (f"require('http').createServer((q, s) => s.end('ok'))"
              f".listen({port}, '127.0.0.1')")
    server = Peer(["node", "-e", script], core=core, env=dict(os.environ),
                  ready_url=f"http://127.0.0.1:{port}/", log=log)
    server.name = "trivial server"
    return server


@dataclass(frozen=True)
class Verify:
    """One argon2id verify at the configured parameters, timed on the server core (the mean of
    30): its wall time, which sets the bound, and its CPU time."""

    wall_ms: float
    cpu_ms: float


def argon2_verify(core: int, *, peer: bool = False) -> Verify:
    """argon2-cffi's verify, the provider's (the bound of the targets), or with ``peer`` the peer's
    own library's (@node-rs/argon2, ``bench/peer/verify.mjs``), timed alike."""
    cost = Settings()
    parameters = (cost.argon2_time_cost, cost.argon2_memory_cost, cost.argon2_parallelism)
    if peer:
        command = ["node", str(PEER_DIR / "verify.mjs"), *map(str, parameters)]
    else:
        command = [sys.executable, "-c", (
            "import sys, time\nfrom argon2 import PasswordHasher\n"
            "t, m, p = map(int, sys.argv[1:])\n"
            "h = PasswordHasher(time_cost=t, memory_cost=m, parallelism=p)\n"
            "s = h.hash('x'); h.verify(s, 'x'); n = 30; w = time.perf_counter(); c = time.process_time()\n"
            "for _ in range(n): h.verify(s, 'x')\n"
            "print((time.perf_counter() - w) / n * 1000, (time.process_time() - c) / n * 1000)\n"
        ), *map(str, parameters)]
    done = subprocess.run(["taskset", "-c", str(core), *command],  # noqa: S603,S607
                          capture_output=True, text=True, check=True, cwd=PEER_DIR)
    wall, cpu = map(float, done.stdout.split())
    return Verify(wall, cpu)
