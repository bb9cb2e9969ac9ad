"""Helpers for the EST integration tests: the gateway client, CSRs, CMS parsing."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NEW = "/.well-known/est/applications/demo/profiles/tls-server"
LABEL = "/.well-known/est/demo.tls-server"
SETTINGS = "/api/v1/applications/demo/profiles/tls-server/est"


def csr_der(
    cn: str = "dev.example.com",
    sans: list[str] | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    challenge: bytes | None = None,
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    names = [x509.DNSName(s) for s in (sans if sans is not None else [cn])]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if challenge is not None:
        builder = builder.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge)
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return der, key


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def b64(der: bytes) -> bytes:
    text = base64.b64encode(der)
    return b"\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + b"\n"


def certs_from_cms(body: bytes) -> list[x509.Certificate]:
    info = cms.ContentInfo.load(base64.b64decode(b"".join(body.split())))
    assert info["content_type"].native == "signed_data"
    signed = info["content"]
    assert len(signed["signer_infos"]) == 0  # certs-only (RFC 7030 §4.1.3)
    return [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]


def proxy_header(cert: x509.Certificate) -> dict[str, str]:
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {"X-SSL-Client-Cert": urllib.parse.quote(pem, safe="")}


def assert_plain(headers: dict[str, str]) -> None:
    """EST errors answer text/plain a device developer can read (issue 5)."""
    assert headers["Content-Type"].startswith("text/plain")


@dataclass
class Ca:
    """A small bootstrap (factory) CA for client-certificate tests."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    name: str = "Factory CA"

    def __post_init__(self) -> None:
        now = datetime.now(UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, cn: str, *, expired: bool = False) -> x509.Certificate:
        return self.issue_pair(cn, expired=expired)[0]

    def issue_pair(
        self, cn: str, *, expired: bool = False
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        now = datetime.now(UTC)
        end = now - timedelta(hours=1) if expired else now + timedelta(days=1)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=2))
            .not_valid_after(end)
            .sign(self.key, hashes.SHA256())
        )
        return cert, key


@dataclass
class EstGateway:
    client: TestClient
    bootstrap: dict[str, Any]
    password: str = ""

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bootstrap['admin_token']}"}

    @property
    def basic(self) -> dict[str, str]:
        return basic("est", self.password)

    async def api(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = await self.client.request(method, path, json=body, headers=self.admin)
        data = await resp.json()
        assert resp.status == status, data
        return data

    async def enable(self, **settings: Any) -> None:
        await self.api("PATCH", SETTINGS, {"enabled": True, **settings})
        created = await self.api("POST", SETTINGS + "/password", {}, status=201)
        self.password = created["password"]

    async def post(
        self,
        op: str,
        body: bytes,
        *,
        base: str = NEW,
        auth: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/pkcs10",
    ) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Content-Type": content_type, **(auth or {}), **(headers or {})}
        resp = await self.client.post(f"{base}/{op}", data=body, headers=hdrs)
        return resp.status, dict(resp.headers), await resp.read()

    async def enroll(self, cn: str = "dev.example.com", **kw: Any) -> x509.Certificate:
        der, _ = csr_der(cn)
        status, _, body = await self.post("simpleenroll", b64(der), auth=self.basic, **kw)
        assert status == 200, body
        (cert,) = certs_from_cms(body)
        return cert


def write_pair(directory: Path, name: str, cert: x509.Certificate, key: Any) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def keygen_parts(headers: Any, body: bytes) -> tuple[Any, x509.Certificate]:
    """The private key and the certificate of a serverkeygen answer (RFC 7030 §4.4.2:
    multipart/mixed, the PKCS#8 key first, then the certs-only CMS)."""
    raw = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    key_part, cert_part = message.iter_parts()
    key = serialization.load_der_private_key(base64.b64decode(key_part.get_payload()), None)
    (cert,) = certs_from_cms(cert_part.get_payload().encode())
    return key, cert
