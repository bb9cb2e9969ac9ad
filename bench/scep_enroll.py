"""SCEP enrollment benchmark (issue 6): N concurrent clients doing PKCSReq against a running
gateway.

    CERTGATE_PKI__KEY_TYPE=rsa-2048 certgate serve &   # an RSA-2048 CA; note its PID
    python bench/scep_enroll.py --challenge "$CHALLENGE" --clients 4 --count 400 \\
        --url http://127.0.0.1:8080/applications/demo/profiles/tls-server/scep --server-pid $PID

Prints enrollments/s, p50/p95 latency, the server's CPU ms per certificate (from
/proc/<pid>/stat, user + system, children excluded) and the number of duplicate serials.
Client-side keys and messages are prepared before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.scep import cms as scep_cms
from protocols.scep.messages import (
    OID_MESSAGE_TYPE,
    OID_PKI_STATUS,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_signed(key: rsa.RSAPrivateKey, cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = datetime.now(UTC) - timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def pkcs_req(
    ra: x509.Certificate, key: rsa.RSAPrivateKey, signer: x509.Certificate, cn: str, challenge: str
) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
        .sign(key, hashes.SHA256())
    )
    envelope = scep_cms.encrypt_enveloped(
        csr.public_bytes(serialization.Encoding.DER), ra, "aes128_cbc"
    )
    attrs = [
        cms.CMSAttribute({"type": OID_MESSAGE_TYPE, "values": [core.PrintableString("19")]}),
        cms.CMSAttribute({"type": OID_TRANSACTION_ID, "values": [core.PrintableString(cn)]}),
        cms.CMSAttribute({"type": OID_SENDER_NONCE, "values": [core.OctetString(os.urandom(16))]}),
    ]
    return scep_cms.sign(envelope, attrs, signer, key, "sha256")


def pick_ra(der: bytes) -> x509.Certificate:
    signed = cms.ContentInfo.load(der)["content"]
    certs = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]
    for cert in certs:
        try:
            if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                return cert
        except x509.ExtensionNotFound:
            return cert
    return certs[0]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="SCEP URL (…/scep); default scep_url of --home")
    parser.add_argument("--challenge", help="default scep_challenge of --home")
    parser.add_argument("--home", type=Path, help="gateway home with bootstrap.json (run.sh)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--count", type=int, default=200, help="enrollments in total")
    parser.add_argument(
        "--server-pid", "--pid", type=int, help="gateway PID, for CPU per certificate"
    )
    parser.add_argument("--domain", default="test", help="CN suffix the policy allows")
    args = parser.parse_args()
    if args.home is not None:
        boot = json.loads((args.home / "bootstrap.json").read_text())
        args.url = args.url or boot["scep_url"]
        args.challenge = args.challenge or boot["scep_challenge"]
    if not args.url or not args.challenge:
        parser.error("--url and --challenge (or --home) are required")

    async with aiohttp.ClientSession() as session:
        async with session.get(args.url, params={"operation": "GetCACert"}) as resp:
            resp.raise_for_status()
            ra = pick_ra(await resp.read())
        keys = [rsa.generate_private_key(65537, 2048) for _ in range(min(args.count, 16))]
        signers = [self_signed(k, f"bench-{i}") for i, k in enumerate(keys)]
        run = os.urandom(3).hex()
        messages = [
            pkcs_req(
                ra,
                keys[i % len(keys)],
                signers[i % len(keys)],
                f"b{run}-{i}.{args.domain}",
                args.challenge,
            )
            for i in range(args.count)
        ]
        queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        for item in enumerate(messages):
            queue.put_nowait(item)
        latencies: list[float] = []
        serials: Counter[int] = Counter()
        failures = 0
        target = args.url + "?operation=PKIOperation"

        async def client() -> None:
            nonlocal failures
            while not queue.empty():
                index, message = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(
                    target, data=message, headers={"Content-Type": "application/x-pki-message"}
                ) as resp:
                    body = await resp.read()
                latencies.append(time.perf_counter() - started)
                reply = scep_cms.parse_signed(body)
                if resp.status != 200 or str(reply.attribute(OID_PKI_STATUS)) != "0":
                    failures += 1
                    continue
                key, signer = keys[index % len(keys)], signers[index % len(keys)]
                assert reply.content is not None
                inner, _ = scep_cms.decrypt_enveloped(reply.content, signer, key)
                certs = cms.ContentInfo.load(inner)["content"]["certificates"]
                serials[x509.load_der_x509_certificate(certs[0].chosen.dump()).serial_number] += 1

        cpu0 = cpu_seconds(args.server_pid) if args.server_pid else None
        wall0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.clients)))
        wall = time.perf_counter() - wall0
        cpu = cpu_seconds(args.server_pid) - cpu0 if cpu0 is not None else None

    issued = sum(serials.values())
    duplicates = sum(n - 1 for n in serials.values() if n > 1)
    quantiles = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    print(f"clients={args.clients} enrollments={issued} failures={failures} wall={wall:.2f}s")
    print(f"enrollments/s={issued / wall:.1f}")
    print(
        f"latency p50={statistics.median(latencies) * 1000:.1f}ms p95={quantiles[18] * 1000:.1f}ms"
    )
    if cpu is not None and issued:
        print(f"server CPU per certificate={cpu / issued * 1000:.2f}ms")
    print(f"duplicate serials={duplicates}")
    return 0 if failures == 0 and duplicates == 0 else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
