"""Alert delivery throughput: how many webhook deliveries per second one process's
Dispatcher (gateway.events.dispatcher) sustains to a local receiver.

    .venv/bin/python bench/alerts_delivery.py --count 3000            # embedded SQLite
    createdb -h 127.0.0.1 -U postgres bench_alerts
    .venv/bin/python bench/alerts_delivery.py --count 3000 \\
        --db-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_alerts

A throwaway gateway world is bootstrapped in a temporary home (the database given must be
empty), one issuance alert with a webhook channel is created through the alerts service
(its secret generated and stored encrypted, as through REST), and `--count` deliveries
are written to the outbox as issuances would write them. The timer runs from the
Dispatcher's start until every delivery is `succeeded`. Each delivery is a real signed
POST (Standard Webhooks headers) to an aiohttp receiver in a separate process on
loopback, so the figure is claim + decrypt + sign + send + record per event. Prints one
JSON line: events per second and this process's CPU ms per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import socket
import tempfile
import time

from aiohttp import web

from gateway.bootstrap import bootstrap_if_empty
from gateway.config import load_config
from gateway.core.alerts import AlertEvent, CertificateFacts, DeliveryStatus, deliveries_for
from gateway.core.model import new_id
from gateway.services import alerts as alert_service
from gateway.services.audit import SYSTEM
from gateway.services.graph import open_services


def _receiver(port: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(db_url: str | None, count: int, concurrency: int) -> dict[str, object]:
    port = _free_port()
    ready = multiprocessing.Event()
    receiver = multiprocessing.Process(target=_receiver, args=(port, ready), daemon=True)
    receiver.start()
    ready.wait(10)
    home = tempfile.mkdtemp(prefix="certgate-bench-alerts-")
    environ = {
        "CERTGATE_HOME": home,
        "CERTGATE_TLS__ENABLED": "false",
        "CERTGATE_LOGGING__LEVEL": "WARNING",
        "CERTGATE_EVENTS__ALLOW_PRIVATE_TARGETS": "true",
    }
    if db_url:
        environ["CERTGATE_DATABASE__URL"] = db_url
    config = load_config(None, environ=environ)
    services = await open_services(config)
    try:
        await bootstrap_if_empty(services)
        async with services.db.transaction(read_only=True) as tx:
            (org,) = await tx.organizations.list()
            project = await tx.projects.get_active(org.id)
            assert project is not None
            app = await tx.applications.get_by_slug(project.id, "demo")
        assert app is not None
        scope = alert_service.Scope.of(app)
        url = f"http://127.0.0.1:{port}/bench"
        body = {"name": "bench", "event": "issuance", "channels": [{"type": "webhook", "url": url}]}
        alert = (await alert_service.create_alert(services, SYSTEM, scope, body)).alert
        now = services.clock.now()
        facts = CertificateFacts(
            id=new_id(),
            serial="0123456789abcdef",
            common_name="bench.example.com",
            sans=("dns:bench.example.com",),
            not_after=now,
            profile="tls-server",
            application="demo",
            project_id=project.id,
        )
        for start in range(0, count, 500):
            async with services.db.transaction() as tx:
                made = [
                    d
                    for _ in range(min(500, count - start))
                    for d in deliveries_for(alert, AlertEvent.ISSUANCE, facts, now, new_id)
                ]
                await tx.deliveries.add_many(made)
        dispatcher = services.dispatcher
        assert dispatcher is not None
        dispatcher._concurrency = concurrency  # the bench's knob
        cpu0, started = _cpu(), time.perf_counter()
        task = asyncio.create_task(dispatcher.run_forever())
        while dispatcher.sent < count:  # noqa: ASYNC110 - a counter, polled off the timed path
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = _cpu() - cpu0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with services.db.transaction(read_only=True) as tx:
            succeeded = await tx.deliveries.count(DeliveryStatus.SUCCEEDED)
        return {
            "database": services.db.dialect,
            "count": count,
            "succeeded": succeeded,
            "concurrency": concurrency,
            "seconds": round(elapsed, 2),
            "events_per_s": round(count / elapsed, 1),
            "cpu_ms_per_event": round(cpu * 1000 / count, 2),
        }
    finally:
        await services.close()
        receiver.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", default=None, help="an empty database (default: SQLite)")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.db_url, args.count, args.concurrency))))


if __name__ == "__main__":
    main()
