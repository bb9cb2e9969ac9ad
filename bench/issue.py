"""Issuance benchmark: N concurrent clients issue certificates through the REST API of a
running `certgate serve` and we print issued/s, p50/p95 latency and server CPU ms per cert.

    python bench/issue.py --home .certgate --clients 8 --count 400 [--pid SERVER_PID]

CSRs are made before the clock starts so only the gateway's work is measured. Server CPU
comes from /proc/<pid>/stat (utime+stime) before and after, when --pid is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_seconds


def make_csrs(count: int) -> list[str]:
    out = []
    for i in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        name = f"bench{i}.test"
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        out.append(csr.public_bytes(serialization.Encoding.PEM).decode())
    return out


async def run(args: argparse.Namespace) -> dict[str, float]:
    boot = json.loads((Path(args.home) / "bootstrap.json").read_text())
    url = (
        f"{boot['base_url']}/api/v1/applications/{boot['application']}"
        f"/profiles/{boot['profile']}/certificates"
    )
    headers = {"Authorization": f"Bearer {boot['admin_token']}"}
    csrs = make_csrs(args.count)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for csr in csrs:
        queue.put_nowait(csr)
    latencies: list[float] = []
    errors = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty():
            csr = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, json={"csr": csr}, headers=headers) as resp:
                await resp.read()
                if resp.status != 201:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:
        # Warm up (token verification cache, connection pool).
        async with session.post(url, json={"csr": make_csrs(1)[0]}, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        cpu_before = cpu_seconds(args.pid) if args.pid else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(args.clients)))
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(args.pid) if args.pid else 0.0
    latencies.sort()
    result = {
        "clients": args.clients,
        "issued": len(latencies),
        "errors": errors,
        "issued_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
    }
    if args.pid:
        result["server_cpu_ms_per_cert"] = round(
            (cpu_after - cpu_before) * 1000 / max(1, len(latencies)), 2
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default=os.environ.get("CERTGATE_HOME", ".certgate"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument(
        "--pid", type=int, default=None, help="server process id, for CPU per certificate"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
