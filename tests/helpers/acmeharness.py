"""Harness for in-process ACME tests: a gateway whose validators reach loopback through a
local DNS server (acme.resolvers, *.example.com → 127.0.0.1), an http-01 responder on
acme.http01_port serving whatever the test puts in `responder.tokens`, and a tls-alpn-01
responder (RFC 8737) on acme.tlsalpn01_port presenting, per SNI name, whatever certificate
the test registers with `alpn.serve(...)`."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import itertools
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.appkeys import SERVICES
from gateway.config import Config
from gateway.services.graph import Services
from tests.helpers.acmeclient import AcmeClient, Key, Reply, csr_der
from tests.helpers.dnsserver import DnsServer


@dataclass
class Responder:
    port: int
    tokens: dict[str, str] = field(default_factory=dict)


ACME_TLS_ALPN = "acme-tls/1"
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 §3


def alpn_sni(name: str) -> str:
    """The SNI a tls-alpn-01 validator sends: the name, or for an IP the reverse-DNS name
    (RFC 8738 §6)."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    return address.reverse_pointer


def alpn_certificate(
    name: str,
    key_auth: str,
    *,
    digest: bytes | None = None,
    with_extension: bool = True,
    critical: bool = True,
    sans: list[str] | None = None,
    general_names: list[x509.GeneralName] | None = None,
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of an RFC 8737 §3 challenge certificate: self-signed, SAN
    exactly `name`, critical id-pe-acmeIdentifier = DER OCTET STRING(SHA-256(key_auth)).
    The keyword arguments break one rule each, for failure tests."""
    key = ec.generate_private_key(ec.SECP256R1())
    general: list[x509.GeneralName] = []
    for value in [name] if sans is None else sans:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            general.append(x509.DNSName(value))
    if general_names is not None:
        general = list(general_names)
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme tls-alpn-01")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    if with_extension:
        value = digest if digest is not None else hashlib.sha256(key_auth.encode()).digest()
        der = b"\x04" + bytes([len(value)]) + value  # OCTET STRING, short length form
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, der), critical=critical
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class AlpnResponder:
    """A loopback TLS server for tls-alpn-01: the SNI callback picks the context (and with
    it the certificate and whether acme-tls/1 is offered) registered for that name."""

    def __init__(self) -> None:
        self.port = 0
        self._dir = Path(tempfile.mkdtemp(prefix="alpn-"))
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._server: asyncio.Server | None = None
        self.snis: list[str | None] = []  # the SNI of every handshake, in order

    def serve(self, sni: str, cert_pem: bytes, key_pem: bytes, *, alpn: bool = True) -> None:
        """Answer connections for `sni` with this certificate; without acme-tls/1 when
        `alpn` is false (RFC 8737 §3 requires the server to negotiate it)."""
        stem = self._dir / f"{len(self._contexts)}"
        stem.with_suffix(".crt").write_bytes(cert_pem)
        stem.with_suffix(".key").write_bytes(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        if alpn:
            context.set_alpn_protocols([ACME_TLS_ALPN])
        self._contexts[sni.lower()] = context

    def _pick(self, sslobj: Any, name: str | None, _base: ssl.SSLContext) -> int | None:
        context = self._contexts.get((name or "").lower())
        self.snis.append(name)
        if context is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sslobj.context = context
        return None

    async def start(self) -> AlpnResponder:
        base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = alpn_certificate("default.invalid", "none")
        (self._dir / "default.crt").write_bytes(cert)
        (self._dir / "default.key").write_bytes(key)
        base.load_cert_chain(self._dir / "default.crt", self._dir / "default.key")
        base.sni_callback = self._pick

        async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()  # the handshake itself is the whole answer (RFC 8737 §3)

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=base)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        shutil.rmtree(self._dir, ignore_errors=True)


@dataclass
class AcmeGateway:
    client: TestClient
    config: Config
    bootstrap: dict[str, Any]
    responder: Responder
    dns: DnsServer
    alpn: AlpnResponder | None = None

    @property
    def services(self) -> Services:
        return self.client.server.app[SERVICES]

    def path(self, url: str) -> str:
        return "/" + url.split("/", 3)[3]

    @property
    def root_pem(self) -> str:
        return (self.config.home / "root-ca.pem").read_text()

    async def rest(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        status: int | None = None,
    ) -> Any:
        """The REST API (/api/v1/…) as the bootstrap admin, or as `token`'s principal."""
        bearer = token or self.bootstrap["admin_token"]
        resp = await self.client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {bearer}"}
        )
        data = await resp.json()
        if status is not None:
            assert resp.status == status, data
        return data

    async def acme(self, *, legacy: bool = False, key: Key | None = None) -> AcmeClient:
        prefix = "legacy_" if legacy else ""
        client = AcmeClient(self.client, self.path(self.bootstrap[f"{prefix}acme_directory"]))
        if key is not None:
            client.key = key
        return await client.start()

    async def account(self, *, legacy: bool = False, key: Key | None = None) -> AcmeClient:
        client = await self.acme(legacy=legacy, key=key)
        prefix = "legacy_" if legacy else ""
        reply = await client.register(
            self.bootstrap[f"{prefix}acme_eab_kid"], self.bootstrap[f"{prefix}acme_eab_hmac_key"]
        )
        assert reply.status == 201, reply.body
        return client

    async def ready_order(self, client: AcmeClient, names: list[str]) -> Reply:
        """newOrder, answer every http-01 challenge, wait for `ready`."""
        order = await client.post(
            client.directory["newOrder"],
            {"identifiers": [acme_identifier(n) for n in names]},
        )
        assert order.status == 201, order.body
        for authz_url in order.body["authorizations"]:
            authz = await client.post(authz_url, None)
            chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
            self.responder.tokens[chall["token"]] = f"{chall['token']}.{client.key.thumbprint()}"
            reply = await client.post(chall["url"], {})
            assert reply.status == 200, reply.body
        return await poll(client, order.headers["Location"], {"ready", "invalid"})

    async def issue(self, client: AcmeClient, names: list[str]) -> tuple[Reply, Any]:
        order = await self.ready_order(client, names)
        assert order.body["status"] == "ready", order.body
        der, key = csr_der(names)
        from tests.helpers.acmeclient import b64

        final = await client.post(order.body["finalize"], {"csr": b64(der)})
        assert final.status == 200, final.body
        return await poll(client, order.headers["Location"], {"valid", "invalid"}), key


def acme_identifier(name: str) -> dict[str, str]:
    """{"type": "dns"|"ip", "value": name} (RFC 8555 §7.1.3, RFC 8738 §3)."""
    try:
        ipaddress.ip_address(name)
        return {"type": "ip", "value": name}
    except ValueError:
        return {"type": "dns", "value": name}


_identifier = acme_identifier


async def poll(client: AcmeClient, url: str, wanted: set[str], seconds: float = 20) -> Reply:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        reply = await client.post(url, None)
        status = reply.body.get("status")
        if status in wanted or asyncio.get_running_loop().time() > deadline:
            return reply
        await asyncio.sleep(0.1)


def check_chain(chain_pem: str, names: list[str], root_pem: str) -> x509.Certificate:
    """What every test checks on a certificate that came back: leaf first, each certificate
    issued by the next, ending at the gateway's root; SANs exactly `names`; valid now;
    serverAuth EKU. Returns the leaf."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    root = x509.load_pem_x509_certificate(root_pem.encode())
    assert len(certs) >= 2, chain_pem
    path = certs if certs[-1] == root else [*certs, root]
    for child, parent in itertools.pairwise(path):
        assert child.issuer == parent.subject
        child.verify_directly_issued_by(parent)
    root.verify_directly_issued_by(root)
    leaf = certs[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    got = sorted(
        [str(v) for v in san.get_values_for_type(x509.DNSName)]
        + [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    )
    assert got == sorted(names), got
    now = dt.datetime.now(dt.UTC)
    assert leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    basic = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca is False
    return leaf
