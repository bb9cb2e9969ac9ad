"""The least an ACME benchmark client needs (RFC 8555): ES256 JWS over aiohttp, External
Account Binding, the key authorization for http-01, and the two loopback helpers the
gateway's validators talk to: an http-01 responder and a DNS server that answers
A 127.0.0.1 for every name. Not a general client (tests/helpers/acmeclient.py breaks
requests on purpose; certbot and lego are the real clients)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import dns.message
import dns.rdatatype
import dns.rrset
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

JOSE = {"Content-Type": "application/jose+json"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class EcKey:
    """A P-256 account key signing ES256 (RFC 7518 §3.4: r || s, 32 bytes each)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        nums = self.private.public_key().public_numbers()
        self.jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64(nums.x.to_bytes(32, "big")),
            "y": b64(nums.y.to_bytes(32, "big")),
        }
        # RFC 7638: the members in lexicographic order, no whitespace.
        self.thumbprint = b64(hashlib.sha256(_dumps(self.jwk)).digest())

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def eab(kid: str, hmac_key_b64: str, jwk: dict[str, str], url: str) -> dict[str, str]:
    """RFC 8555 §7.3.4: an HS256 JWS over the account JWK, keyed by the EAB secret."""
    key = base64.urlsafe_b64decode(hmac_key_b64 + "=" * (-len(hmac_key_b64) % 4))
    protected = b64(_dumps({"alg": "HS256", "kid": kid, "url": url}))
    payload = b64(_dumps(jwk))
    mac = hmac.new(key, f"{protected}.{payload}".encode(), hashlib.sha256).digest()
    return {"protected": protected, "payload": payload, "signature": b64(mac)}


def csr_der(name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


class AcmeError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any
    data: bytes


@dataclass
class AcmeClient:
    """One account. Each reply's Replay-Nonce signs the next request, so after the first
    request the client never asks newNonce again (RFC 8555 §6.5); badNonce is retried."""

    session: aiohttp.ClientSession
    directory_url: str
    key: EcKey = field(default_factory=EcKey)
    directory: dict[str, Any] = field(default_factory=dict)
    kid: str | None = None
    nonce: str | None = None
    requests: int = 0

    async def start(self) -> AcmeClient:
        async with self.session.get(self.directory_url) as resp:
            self.directory = await resp.json()
        return self

    async def _new_nonce(self) -> str:
        self.requests += 1
        async with self.session.head(self.directory["newNonce"]) as resp:
            return str(resp.headers["Replay-Nonce"])

    def _jws(self, url: str, payload: Any, nonce: str) -> bytes:
        protected: dict[str, Any] = {"alg": "ES256", "nonce": nonce, "url": url}
        if self.kid is None:
            protected["jwk"] = self.key.jwk
        else:
            protected["kid"] = self.kid
        p64 = b64(_dumps(protected))
        body = "" if payload is None else b64(_dumps(payload))
        sig = self.key.sign(f"{p64}.{body}".encode())
        return _dumps({"protected": p64, "payload": body, "signature": b64(sig)})

    async def post(self, url: str, payload: Any, expect: tuple[int, ...] = (200,)) -> Reply:
        for _attempt in range(3):
            nonce, self.nonce = self.nonce or await self._new_nonce(), None
            self.requests += 1
            async with self.session.post(
                url, data=self._jws(url, payload, nonce), headers=JOSE
            ) as resp:
                data = await resp.read()
                self.nonce = resp.headers.get("Replay-Nonce")
                is_json = resp.content_type.endswith("json")
                body = json.loads(data) if is_json and data else None
                if resp.status in expect:
                    return Reply(resp.status, resp.headers, body, data)
                if isinstance(body, dict) and body.get("type", "").endswith(":badNonce"):
                    continue
                raise AcmeError(resp.status, body or data[:200])
        raise AcmeError(400, "badNonce three times")

    async def register(self, eab_kid: str, eab_hmac: str) -> None:
        url = self.directory["newAccount"]
        payload = {
            "termsOfServiceAgreed": True,
            "externalAccountBinding": eab(eab_kid, eab_hmac, self.key.jwk, url),
        }
        reply = await self.post(url, payload, expect=(200, 201))
        self.kid = reply.headers["Location"]

    async def poll(self, url: str, wanted: set[str], interval: float, patience: float) -> Reply:
        deadline = asyncio.get_running_loop().time() + patience
        while True:
            reply = await self.post(url, None)
            status = reply.body.get("status")
            if status in wanted:
                return reply
            if status == "invalid" or asyncio.get_running_loop().time() > deadline:
                raise AcmeError(reply.status, reply.body)
            await asyncio.sleep(interval)

    async def issue(
        self,
        name: str,
        csr: bytes,
        tokens: dict[str, str],
        interval: float = 0.05,
        patience: float = 60.0,
    ) -> bytes:
        """newOrder → authz → http-01 → poll → finalize → poll → download; the PEM chain."""
        order = await self.post(
            self.directory["newOrder"],
            {"identifiers": [{"type": "dns", "value": name}]},
            expect=(201,),
        )
        order_url = order.headers["Location"]
        mine: list[str] = []
        for authz_url in order.body["authorizations"]:
            authz = await self.post(authz_url, None)
            if authz.body["status"] == "valid":
                continue
            chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
            tokens[chall["token"]] = f"{chall['token']}.{self.key.thumbprint}"
            mine.append(chall["token"])
            await self.post(chall["url"], {})
        try:
            await self.poll(order_url, {"ready", "valid"}, interval, patience)
        except AcmeError as err:
            errors = [(await self.post(u, None)).body for u in order.body["authorizations"]]
            raise AcmeError(err.status, {"order": err.body, "authorizations": errors}) from None
        final = await self.post(order.body["finalize"], {"csr": b64(csr)})
        if final.body.get("status") != "valid":
            final = await self.poll(order_url, {"valid"}, interval, patience)
        cert = await self.post(final.body["certificate"], None)
        for token in mine:
            tokens.pop(token, None)
        return cert.data


# --- what the gateway's validators reach on loopback --------------------------------------


async def http01_responder(port: int, tokens: dict[str, str]) -> web.AppRunner:
    async def serve(request: web.Request) -> web.Response:
        value = tokens.get(request.match_info["token"])
        return web.Response(text=value) if value else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


class _Dns(asyncio.DatagramProtocol):
    transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        response = dns.message.make_response(query)
        for question in query.question:
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(
                    dns.rrset.from_text(question.name, 1, "IN", "A", "127.0.0.1")
                )
        self.transport.sendto(response.to_wire(), addr)


async def dns_responder(port: int) -> asyncio.DatagramTransport:
    """Every name is 127.0.0.1 (A); other types get an empty NOERROR answer."""
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        _Dns, local_addr=("127.0.0.1", port)
    )
    return transport
