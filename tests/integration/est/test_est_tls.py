"""EST on the real HTTPS listener (gateway.services.tls): client certificates the handshake must
let through, and tls-unique proof-of-possession linking on TLS 1.2 (RFC 7030 §3.5)."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from est_helpers import NEW, Ca, b64, certs_from_cms, csr_der, write_pair

from gateway.app import create_app
from gateway.appkeys import SERVICES
from gateway.config import load_config
from gateway.services.audit import SYSTEM
from gateway.services.certificates import resolve
from gateway.services.graph import Services
from gateway.services.tls import server_ssl_context
from protocols.est import settings as est_admin


@dataclass
class Listener:
    services: Services
    port: int
    home: Path
    password: str

    def client_context(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.home / "root-ca.pem"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if cert and key:
            ctx.load_cert_chain(cert, key)
        return ctx


@pytest.fixture
async def listener(tmp_path: Path, database_url: str) -> AsyncIterator[Listener]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = load_config(
        None,
        environ={
            "CERTGATE_HOME": str(tmp_path / "home"),
            "CERTGATE_DATABASE__URL": database_url,
            "CERTGATE_SERVER__HTTPS_PORT": str(port),
        },
    )
    app = create_app(config, background=False)
    runner = web.AppRunner(app)
    await runner.setup()
    services = app[SERVICES]
    target = await resolve(services, "demo", "tls-server")
    async with services.db.transaction() as tx:
        await est_admin.update_settings(services, tx, SYSTEM, target, {"enabled": True})
        password = (await est_admin.set_password(services, tx, SYSTEM, target, None))["password"]
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=await server_ssl_context(services))
    await site.start()
    try:
        yield Listener(services, port, config.home, password)
    finally:
        await runner.cleanup()


async def _post(
    listener: Listener,
    op: str,
    csr_for: object,
    *,
    auth: bool = True,
    ctx: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """One request on a fresh TLS 1.2 connection; `csr_for(tls_unique)` builds the body
    inside the session, as a device linking its CSR to the session must (§3.5)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        listener.port,
        ssl=ctx or listener.client_context(),
        server_hostname="localhost",
    )
    unique = writer.get_extra_info("ssl_object").get_channel_binding("tls-unique")
    body = csr_for(unique)  # type: ignore[operator]
    head = [
        f"POST {NEW}/{op} HTTP/1.1",
        "Host: localhost",
        "Content-Type: application/pkcs10",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if auth:
        token = base64.b64encode(f"est:{listener.password}".encode()).decode()
        head.append(f"Authorization: Basic {token}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    raw = await reader.read()
    writer.close()
    status = int(raw.split(b" ", 2)[1])
    return status, raw.split(b"\r\n\r\n", 1)[1]


async def _set(listener: Listener, **settings: object) -> None:
    target = await resolve(listener.services, "demo", "tls-server")
    async with listener.services.db.transaction() as tx:
        await est_admin.update_settings(listener.services, tx, SYSTEM, target, settings)


async def test_ok_tls_unique_linked_csr(listener: Listener) -> None:
    await _set(listener, require_tls_unique=True)
    status, body = await _post(
        listener, "simpleenroll", lambda u: b64(csr_der(challenge=base64.b64encode(u))[0])
    )
    assert status == 200, body
    assert len(certs_from_cms(body)) == 1


async def test_fail_tls_unique_mismatch(listener: Listener) -> None:
    status, body = await _post(
        listener, "simpleenroll", lambda u: b64(csr_der(challenge=base64.b64encode(b"x" * 12))[0])
    )
    assert status == 400 and b"tls-unique" in body


async def test_fail_tls_unique_required_but_missing(listener: Listener) -> None:
    await _set(listener, require_tls_unique=True)
    status, body = await _post(listener, "simpleenroll", lambda u: b64(csr_der()[0]))
    assert status == 400 and b"challengePassword" in body


async def test_ok_reenroll_with_server_auth_only_cert_over_tls(
    listener: Listener, tmp_path: Path
) -> None:
    # The demo profile issues serverAuth-only certificates: OpenSSL's own client-purpose
    # check would fail the handshake; gateway.services.tls leaves the judgement to EST.
    der, key = csr_der("t.example.com")
    status, body = await _post(listener, "simpleenroll", lambda u: b64(der))
    (cert,) = certs_from_cms(body)
    ctx = listener.client_context(*write_pair(tmp_path, "c", cert, key))
    new_der, _ = csr_der("t.example.com")
    status, body = await _post(
        listener, "simplereenroll", lambda u: b64(new_der), auth=False, ctx=ctx
    )
    assert status == 200, body


async def test_fail_unknown_client_cert_gets_text_not_tls_alert(
    listener: Listener, tmp_path: Path
) -> None:
    await _set(listener, accepted_auth=["client_cert"], bootstrap_ca_pem=Ca().pem)
    cert, key = Ca(name="Stranger CA").issue_pair("s.example.com")
    ctx = listener.client_context(*write_pair(tmp_path, "s", cert, key))
    status, body = await _post(
        listener, "simpleenroll", lambda u: b64(csr_der()[0]), auth=False, ctx=ctx
    )
    assert status == 401 and b"not issued by a configured bootstrap CA" in body
