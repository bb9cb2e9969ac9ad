"""EST benchmark (issue 5): N concurrent clients with pre-generated CSRs call simpleenroll
over HTTPS with Basic auth against a running gateway.

    python bench/est_enroll.py --home .certgate --clients 8 --count 800 --pid SERVER_PID

Reads est_base_url, est_username, est_password and root_ca_path from bootstrap.json.
Prints enrollments/s, p50/p95 latency and the server's CPU ms per certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
import sys
import time
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_seconds, summary


def csr_bodies(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        name = f"est{i}.test"
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        )
        out.append(base64.encodebytes(csr.public_bytes(serialization.Encoding.DER)))
    return out


async def run(args: argparse.Namespace) -> dict[str, float]:
    boot = json.loads((Path(args.home) / "bootstrap.json").read_text())
    url = boot["est_base_url"].rstrip("/") + "/simpleenroll"
    auth = aiohttp.BasicAuth(boot["est_username"], boot["est_password"]).encode()
    context = ssl.create_default_context(cafile=boot["root_ca_path"])
    headers = {
        "Content-Type": "application/pkcs10",
        "Content-Transfer-Encoding": "base64",
        "Authorization": auth,
    }
    bodies = csr_bodies(args.count + 1)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies[1:]:
        queue.put_nowait(body)
    latencies: list[float] = []
    errors = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(ssl=context, limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(url, data=bodies[0], headers=headers) as resp:
            assert resp.status == 200, await resp.text()  # warm-up: passphrase check cached
        cpu_before = cpu_seconds(args.pid) if args.pid else None
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(args.clients)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(args.pid) - cpu_before if args.pid and cpu_before is not None else None
    return {"clients": args.clients, "errors": errors, **summary(latencies, elapsed, cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=".certgate")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--count", type=int, default=800)
    parser.add_argument("--pid", type=int, default=None)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
