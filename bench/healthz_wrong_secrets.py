"""Does a flood of wrong API-token secrets stall the gateway? /healthz latency with and
without attackers that send a KNOWN token id with wrong secrets (each one costs the server
a scrypt check, tens of ms of CPU by design).

    # a throwaway gateway of this checkout (or of --repo DIR), SQLite, loopback only:
    python bench/healthz_wrong_secrets.py --clients 8 --duration 10
    # or a running one (bench/run.sh healthz_wrong_secrets 8 2000 passes these):
    python bench/healthz_wrong_secrets.py --home HOME --clients 8 --count 2000 --pid PID

Phase 1 measures /healthz alone; phase 2 the same while --clients connections (one each,
keep-alive) send `Authorization: Bearer cgt_<admin token id>_<random wrong secret>` to
/api/v1/me. Each phase ends after --duration seconds or --count /healthz samples. Prints
p50/p95/p99 of /healthz per phase and a one-line `JSON {...}` summary. Never prints a
secret.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_seconds

MAX_DURATION = 120.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return round(ordered[int(rank) - 1] * 1000, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# The `certgate` entry point: gateway.app:main since the layout change, gateway.cli:main
# before it (so one driver measures both sides of a change).
_SERVE = """
try:
    from gateway.app import main
except ImportError:
    from gateway.cli import main
main()
"""


def start_server(repo: Path, home: Path) -> subprocess.Popen[bytes]:
    """`certgate serve` of `repo` on free loopback ports, SQLite in `home`."""
    env = dict(os.environ)
    env.update(
        CERTGATE_HOME=str(home),
        CERTGATE_SERVER__HOST="127.0.0.1",
        CERTGATE_SERVER__HTTP_PORT=str(free_port()),
        CERTGATE_SERVER__HTTPS_PORT=str(free_port()),
        CERTGATE_LOGGING__LEVEL="WARNING",
        PYTHONPATH=str(repo),
    )
    env.pop("CERTGATE_DATABASE__URL", None)
    return subprocess.Popen(
        [sys.executable, "-c", _SERVE, "serve"],
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


async def wait_ready(home: Path, server: subprocess.Popen[bytes] | None) -> dict[str, Any]:
    boot_file = home / "bootstrap.json"
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if server is not None and server.poll() is not None:
                raise SystemExit(f"the gateway exited with status {server.returncode}")
            if boot_file.exists():
                boot: dict[str, Any] = json.loads(boot_file.read_text())
                with suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(f"{boot['base_url']}/readyz") as resp:
                        if resp.status == 200:
                            return boot
            await asyncio.sleep(0.2)
    raise SystemExit("the gateway did not become ready within 60 s")


async def sample_healthz(
    session: aiohttp.ClientSession, url: str, duration: float, count: int, interval: float
) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline and len(latencies) < count:
        started = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
            if resp.status != 200:
                raise SystemExit(f"/healthz answered {resp.status}")
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(interval)
    return latencies


async def attacker(url: str, token_id: str, stop: asyncio.Event, statuses: dict[int, int]) -> None:
    """One keep-alive connection sending the known token id with fresh wrong secrets (fresh
    each time, as a guesser would, so no server-side sharing of checks helps)."""
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        while not stop.is_set():
            wrong = f"cgt_{token_id}_{secrets.token_urlsafe(32)}"
            async with session.get(url, headers={"Authorization": f"Bearer {wrong}"}) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server: subprocess.Popen[bytes] | None = None
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if args.home and (Path(args.home) / "bootstrap.json").exists():
        home = Path(args.home)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="certgate-bench-")
        home = Path(scratch.name)
        server = start_server(args.repo, home)
    pid = args.pid or (server.pid if server else None)
    try:
        boot = await wait_ready(home, server)
        base = boot["base_url"]
        host = base.split("//", 1)[1].rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            raise SystemExit(f"loopback only: {base} is not a loopback URL")
        token = boot["admin_token"]
        token_id = token.split("_")[1]  # cgt_<id hex>_<secret>
        healthz, me = f"{base}/healthz", f"{base}/api/v1/me"
        duration = min(args.duration, MAX_DURATION)
        async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
            # The token id must be one the gateway knows, or no scrypt runs at all.
            async with session.get(me, headers={"Authorization": f"Bearer {token}"}) as resp:
                if resp.status != 200:
                    raise SystemExit(f"the admin token was refused ({resp.status})")
            await sample_healthz(session, healthz, 1.0, 50, args.interval)  # warm-up
            quiet = await sample_healthz(session, healthz, duration, args.count, args.interval)

            stop = asyncio.Event()
            statuses: dict[int, int] = {}
            attackers = [
                asyncio.create_task(attacker(me, token_id, stop, statuses))
                for _ in range(args.clients)
            ]
            await asyncio.sleep(0.5)  # every attacker has a request in flight
            cpu_before = cpu_seconds(pid) if pid else None
            sent_before = sum(statuses.values())
            started = time.perf_counter()
            attacked = await sample_healthz(session, healthz, duration, args.count, args.interval)
            elapsed = time.perf_counter() - started
            sent = sum(statuses.values()) - sent_before
            cpu = cpu_seconds(pid) - cpu_before if pid and cpu_before is not None else None
            stop.set()
            done, pending = await asyncio.wait(attackers, timeout=35)
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() is not None:
                    raise SystemExit(f"an attacker failed: {task.exception()!r}")
        if set(statuses) - {401}:
            raise SystemExit(f"wrong secrets got other answers than 401: {statuses}")
        result: dict[str, Any] = {
            "attackers": args.clients,
            "healthz_quiet": {
                "n": len(quiet),
                "p50_ms": pct(quiet, 50),
                "p95_ms": pct(quiet, 95),
                "p99_ms": pct(quiet, 99),
            },
            "healthz_attacked": {
                "n": len(attacked),
                "p50_ms": pct(attacked, 50),
                "p95_ms": pct(attacked, 95),
                "p99_ms": pct(attacked, 99),
            },
            "wrong_secrets_per_s": round(sent / elapsed, 1),
        }
        if cpu is not None:
            result["server_cpu_s_per_s"] = round(cpu / elapsed, 2)
        return result
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if scratch is not None:
            scratch.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home", default=None, help="home of a running gateway (its bootstrap.json)"
    )
    parser.add_argument(
        "--repo",
        default=str(Path(__file__).resolve().parent.parent),
        help="checkout to serve when no running gateway is given (default: this one)",
    )
    parser.add_argument("--clients", type=int, default=8, help="attacking connections")
    parser.add_argument("--count", type=int, default=2000, help="max /healthz samples a phase")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds a phase (<= 120)")
    parser.add_argument("--interval", type=float, default=0.01, help="pause between /healthz")
    parser.add_argument("--pid", type=int, default=None, help="server process id, for its CPU")
    args = parser.parse_args()
    args.repo = Path(args.repo).resolve()
    result = asyncio.run(run(args))
    for phase in ("healthz_quiet", "healthz_attacked"):
        r = result[phase]
        print(
            f"{phase:17} n={r['n']:5}  p50={r['p50_ms']:7.1f} ms  "
            f"p95={r['p95_ms']:7.1f} ms  p99={r['p99_ms']:7.1f} ms"
        )
    print(f"wrong secrets answered: {result['wrong_secrets_per_s']}/s")
    print("JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
