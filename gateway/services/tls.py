"""The HTTPS listener: its certificate (operator files, or one issued by our own issuing
CA) and how it asks for client certificates.

RFC 7030 §3.3.2: EST devices may authenticate with a TLS client certificate, so the
listener requests one but does not require it (ssl.CERT_OPTIONAL). Which CA must have
issued it depends on the enrollment and the operation (a bootstrap CA bundle for
/simpleenroll, the profile's CA for /simplereenroll), so the handshake must not judge it:
OpenSSL would refuse certificates from a bundle added after start-up, an expired or
revoked certificate without a useful message, and, since it checks the "ssl_client"
purpose, every certificate whose EKU lacks clientAuth (the demo TLS-server profile's).
The listener therefore installs a verify callback that accepts the chain at the TLS
layer; proof of possession of the key is still checked by the handshake itself
(CertificateVerify), and protocols.est validates the certificate against the
enrollment's own anchors, with an error text a device developer can act on. Nothing has
to be reloaded when CAs or bundles change: there is no TLS-level trust store to refresh.
"""

from __future__ import annotations

import _ssl
import ctypes
import ipaddress
import logging
import ssl
from datetime import timedelta

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.core.model import CAKind, KeyType
from gateway.core.policy import eku_oid
from gateway.core.template import CertificateTemplate
from gateway.pki.keys import generate_private_key, private_key_to_pem
from gateway.services.catalog import active_project
from gateway.services.graph import Services, write_private_file

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
    request_client_certificates(context)
    if not _accept_any_chain(context):
        await _trust_our_cas(services, context)
    return context


def request_client_certificates(context: ssl.SSLContext) -> None:
    """Ask for a certificate, carry on without one (RFC 7030 §3.3.2)."""
    context.verify_mode = ssl.CERT_OPTIONAL


_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_SSL_VERIFY_PEER = 0x01


def _accept_chain(_preverify_ok: int, _store: int | None) -> int:
    return 1  # judged later by the EST front-end, per enrollment (see the module docstring)


# Module-level so the C callback object lives as long as any context using it.
_accept = _VERIFY_CB(_accept_chain)


def _accept_any_chain(context: ssl.SSLContext) -> bool:
    """Install the accept-all verify callback on `context`'s SSL_CTX (the ssl module has no
    API for one). Every assumption is checked first (the very libssl _ssl uses, the
    SSL_CTX pointer read back against the context's settings); False when one fails."""
    try:
        lib = ctypes.CDLL(_ssl.__file__)  # dlsym on this handle searches _ssl's libssl
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
            return False
        # CPython's PySSLContext starts with PyObject_HEAD, then the SSL_CTX pointer.
        ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        if not ctx or lib.SSL_CTX_get_verify_mode(ctx) != _SSL_VERIFY_PEER:
            return False
        if lib.SSL_CTX_get_options(ctx) != int(context.options):
            return False
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
        lib.SSL_CTX_set_verify.restype = None
        lib.SSL_CTX_set_verify(ctx, _SSL_VERIFY_PEER, _accept)
    except (OSError, AttributeError, ValueError):
        log.warning("could not install the client-certificate callback", exc_info=True)
        return False
    return True


async def _trust_our_cas(services: Services, context: ssl.SSLContext) -> None:
    """Fallback without the callback: trust every CA we hold, so at least certificates
    we issued (with a clientAuth EKU) can re-enroll. Bootstrap bundles and CAs added
    later need a restart in this mode."""
    async with services.db.transaction(read_only=True) as tx:
        cas = await tx.cas.list()
    pem = "".join(ca.certificate_pem for ca in cas if ca.enabled)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if pem:
        context.load_verify_locations(cadata=pem)
    log.warning(
        "TLS client certificates are checked by OpenSSL against our own CAs only "
        "(EST bootstrap bundles are not trusted at the TLS layer in this mode)"
    )


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
