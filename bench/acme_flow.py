"""ACME benchmark (issue 4): N concurrent clients each run complete RFC 8555 flows
(newOrder → authz → http-01 → poll → finalize → poll → download) against a running
gateway and we print issued/s, p50/p95 flow latency and the server's CPU ms per
certificate.

    python bench/acme_flow.py --home .certgate --clients 4 --count 200 --pid SERVER_PID \\
        --http01-port 18402 --dns-port 18053

The gateway must validate against this driver: CERTGATE_ACME__HTTP01_PORT=<http01-port>
and CERTGATE_ACME__RESOLVERS=127.0.0.1:<dns-port> (bench/run.sh sets both). The driver
serves http-01 on that port and answers every DNS name with 127.0.0.1, so the names are
bench-<n>.localhost. Accounts (one per client, with EAB from bootstrap.json) and CSRs are
made before the clock starts, and one warm-up flow runs first; the server's own work for
validation (DNS lookup, http-01 fetch) counts, as it does for any ACME server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from acme_client import AcmeClient, AcmeError, csr_der, dns_responder, http01_responder
from common import cpu_seconds, summary


async def run(args: argparse.Namespace) -> dict[str, float]:
    boot = json.loads((Path(args.home) / "bootstrap.json").read_text())
    directory = boot["acme_directory"]
    names = [f"bench-{i}.localhost" for i in range(args.count + 1)]
    csrs = [csr_der(name) for name in names]
    tokens: dict[str, str] = {}
    responder = await http01_responder(args.http01_port, tokens)
    dns = await dns_responder(args.dns_port)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(1, len(names)):
        queue.put_nowait(i)
    latencies: list[float] = []
    errors: list[str] = []

    async def flows(client: AcmeClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            try:
                chain = await client.issue(names[i], csrs[i], tokens, args.poll_interval)
            except (AcmeError, aiohttp.ClientError, KeyError) as err:
                errors.append(str(err)[:300])
                continue
            if not chain.startswith(b"-----BEGIN CERTIFICATE-----"):
                errors.append(chain[:100].decode(errors="replace"))
                continue
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=args.clients * 2)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            clients = [AcmeClient(session, directory) for _ in range(args.clients)]
            for client in clients:
                await client.start()
                await client.register(boot["acme_eab_kid"], boot["acme_eab_hmac_key"])
            # Warm-up: one whole flow (CA key unwrap, validator and connection pools).
            await clients[0].issue(names[0], csrs[0], tokens, args.poll_interval)
            requests_before = sum(c.requests for c in clients)
            cpu_before = cpu_seconds(args.pid) if args.pid else None
            started = time.perf_counter()
            await asyncio.gather(*(flows(c) for c in clients))
            elapsed = time.perf_counter() - started
            cpu = (
                cpu_seconds(args.pid) - cpu_before if args.pid and cpu_before is not None else None
            )
            requests = sum(c.requests for c in clients) - requests_before
    finally:
        dns.close()
        await responder.cleanup()
    for error in errors[:3]:
        print(f"error: {error}", file=sys.stderr)
    return {
        "clients": args.clients,
        "errors": len(errors),
        **summary(latencies, elapsed, cpu),
        "requests_per_cert": round(requests / max(1, len(latencies)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=".certgate")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--pid", type=int, default=None)
    # Defaults: what bench/run.sh exported for the gateway.
    parser.add_argument(
        "--http01-port", type=int, default=int(os.environ.get("CERTGATE_ACME__HTTP01_PORT", 18402))
    )
    resolver = os.environ.get("CERTGATE_ACME__RESOLVERS", "127.0.0.1:18053")
    parser.add_argument("--dns-port", type=int, default=int(resolver.rsplit(":", 1)[1]))
    parser.add_argument(
        "--poll-interval", type=float, default=0.05, help="seconds between order polls"
    )
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
