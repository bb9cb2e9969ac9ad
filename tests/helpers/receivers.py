"""Real receivers of alert deliveries for the tests, on loopback:

* `WebhookReceiver`: an aiohttp server that verifies every webhook's signature with the
  `standardwebhooks` package (PyPI, the specification's reference library), not with
  certgate's code; it can answer 500 a number of times, or hang, per path.
* `SmtpServer`: an aiosmtpd server (PyPI) requiring STARTTLS and AUTH PLAIN/LOGIN with a
  fixed user, its certificate self-signed for 127.0.0.1; received messages are parsed.

Both run in the test's process (the SMTP server on aiosmtpd's own thread), so an e2e
gateway process reaches them as any outside receiver.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool


@dataclass
class WebhookReceiver:
    """POST /<path>: verified against secrets[path] (set it once the alert is created)."""

    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    fail_times: dict[str, int] = field(default_factory=dict)  # path -> 500s to answer first
    hang: set[str] = field(default_factory=set)  # paths that never answer
    # Every attempt, answered or not: (path, webhook-id header).
    attempts: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path.lstrip("/")
        raw = await request.read()
        self.attempts.append((path, request.headers.get("webhook-id")))
        if path in self.hang:
            await self._release.wait()  # until stop(): the sender gives up first
        if self.fail_times.get(path, 0) > 0:
            self.fail_times[path] -= 1
            return web.Response(status=500, text="try again")
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = False
        secret = self.secrets.get(path)
        if secret is not None:
            try:
                Webhook(secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        self.received.append(Received(path, headers, json.loads(raw), verified))
        self.arrived.set()
        return web.Response(status=204)

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.at(path)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.at(path)


def self_signed_for_loopback(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) files of a self-signed certificate for 127.0.0.1/localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._server.lock:
            self._server.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), message, bool(session.authenticated))
            )
        return "250 OK"


class SmtpServer:
    USER, PASSWORD = "alerts", "mail-secret"

    def __init__(self, directory: Path) -> None:
        self.cert, key = self_signed_for_loopback(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.port = free_port()
        self.lock = threading.Lock()
        self.messages: list[tuple[str, list[str], EmailMessage, bool]] = []
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=self._authenticate,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.USER.encode(),
            self.PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def environ(self) -> dict[str, str]:
        """The gateway's CERTGATE_SMTP__* settings for this server."""
        return {
            "CERTGATE_SMTP__HOST": "127.0.0.1",
            "CERTGATE_SMTP__PORT": str(self.port),
            "CERTGATE_SMTP__USERNAME": self.USER,
            "CERTGATE_SMTP__PASSWORD": self.PASSWORD,
            "CERTGATE_SMTP__FROM": "certgate@example.com",
            "CERTGATE_SMTP__STARTTLS": "true",
            "CERTGATE_SMTP__CA_FILE": str(self.cert),
        }

    async def wait_for(self, count: int = 1, timeout: float = 20.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while True:
                with self.lock:
                    if len(self.messages) >= count:
                        return list(self.messages)
                await asyncio.sleep(0.05)
