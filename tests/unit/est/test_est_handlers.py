"""The EST handlers against a fake backend: pending approval as 202 with Retry-After
(RFC 7030 §4.2.3), an empty csrattrs as 204, and the catch-all that keeps tracebacks off
the wire."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from est_fakes import FakeBackend, enrollment_target, make_profile

from gateway.core.est import EstAuth, EstSettings
from gateway.core.target import EnrollmentTarget
from protocols.est.auth import parse_networks
from protocols.est.handlers import EstContext, EstHandlers


@pytest.fixture
async def fake_client(aiohttp_client: Any) -> Any:
    settings = EstSettings(enabled=True, accepted=(EstAuth.BASIC,))
    target = enrollment_target(make_profile(), settings)
    # Plain HTTP from a trusted proxy stands in for TLS here.
    ctx = EstContext(FakeBackend(target), trusted_proxies=parse_networks(["127.0.0.1", "::1"]))
    app = web.Application()
    for spec in EstHandlers(lambda request: ctx).routes():
        app.router.add_route(spec.method, spec.path, spec.handler, name=spec.name)
    return await aiohttp_client(app)


async def test_pending_is_202_with_retry_after(fake_client: Any) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d.example.com")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    headers = {
        "Content-Type": "application/pkcs10",
        "Authorization": "Basic " + base64.b64encode(b"est:correct-horse").decode(),
    }
    for op in ("simpleenroll", "serverkeygen"):
        resp = await fake_client.post(
            f"/.well-known/est/a.p/{op}", data=base64.b64encode(csr), headers=headers
        )
        assert resp.status == 202
        assert resp.headers["Retry-After"] == "42"
        assert "awaits approval" in await resp.text()


async def test_csrattrs_204_when_nothing_to_ask(fake_client: Any) -> None:
    resp = await fake_client.get("/.well-known/est/a.p/csrattrs")
    assert resp.status == 204


class _Broken(FakeBackend):
    async def ca_certificates(self, target: EnrollmentTarget) -> list[Any]:
        raise RuntimeError("secret internals /etc/certgate/key.pem")


async def test_fail_unexpected_error_is_plain_500_without_traceback(aiohttp_client: Any) -> None:
    settings = EstSettings(enabled=True, accepted=(EstAuth.BASIC,))
    target = enrollment_target(make_profile(), settings)
    ctx = EstContext(_Broken(target))
    app = web.Application()
    for spec in EstHandlers(lambda request: ctx).routes():
        app.router.add_route(spec.method, spec.path, spec.handler, name=spec.name)
    client = await aiohttp_client(app)
    resp = await client.get("/.well-known/est/a.p/cacerts", headers={"X-Request-Id": "rid-42"})
    assert resp.status == 500
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert text == "internal error\n(request id rid-42)\n"
