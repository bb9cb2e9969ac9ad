"""The HTTPS listener's certificate: operator files, or one issued by our own issuing CA."""

from __future__ import annotations

import ipaddress
import logging
import ssl
from datetime import timedelta

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.admin.bootstrap import write_private_file
from gateway.admin.catalog import active_project
from gateway.admin.services import Services
from gateway.core.model import CAKind, KeyType
from gateway.core.policy import eku_oid
from gateway.core.template import CertificateTemplate
from gateway.pki.keys import generate_private_key, private_key_to_pem

log = logging.getLogger(__name__)

_RENEW_WHEN_LEFT = timedelta(days=30)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


async def server_ssl_context(services: Services) -> ssl.SSLContext:
    tls = services.config.tls
    if tls.cert_file and tls.key_file:
        cert_path, key_path = tls.cert_file, tls.key_file
    else:
        cert_path, key_path = await _own_certificate(services)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


async def _own_certificate(services: Services) -> tuple[str, str]:
    directory = services.config.home / "tls"
    directory.mkdir(mode=0o700, exist_ok=True)
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    async with services.db.transaction(read_only=True) as tx:
        project = await active_project(tx)
        issuers = [
            ca
            for ca in await tx.cas.list(project.id)
            if ca.enabled and ca.kind is CAKind.INTERMEDIATE
        ]
    if not issuers:
        raise RuntimeError(
            "no enabled intermediate CA in the active project for the TLS certificate"
        )
    ca = issuers[0]
    if cert_path.exists() and key_path.exists():
        existing = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        if (
            existing.issuer.rfc4514_string() == ca.subject
            and existing.not_valid_after_utc - services.clock.now() > _RENEW_WHEN_LEFT
        ):
            return str(cert_path), str(key_path)
    key = generate_private_key(KeyType.EC_P256)
    now = services.clock.now()
    names = services.config.tls.server_names
    template = CertificateTemplate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]),
        sans=tuple(_san(n) for n in names),
        public_key=key.public_key(),
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=90),
        key_usages=frozenset({"digital_signature"}),
        extended_key_usages=(eku_oid("server_auth"),),
    )
    signed = await services.signer.issue(ca, template)
    write_private_file(key_path, private_key_to_pem(key))
    cert_path.write_text(signed.pem + ca.full_chain_pem)
    log.info("issued the HTTPS listener certificate for %s", ", ".join(names))
    return str(cert_path), str(key_path)
