"""What a request carries to authenticate: HTTP Basic (RFC 7030 §3.2.3), the TLS client
certificate (§3.3.2) or, behind a TLS-terminating proxy, that certificate in a header, and
the TLS session's tls-unique value for proof-of-possession linking (§3.5)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509

from protocols.est.errors import EstError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class BasicCredentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never let the passphrase reach a log line
        return f"BasicCredentials(username={self.username!r}, password=***)"


@dataclass(frozen=True)
class Channel:
    """The transport as the handler sees it."""

    tls: bool  # the client's TLS ends here or, trusted, at our proxy
    via_proxy: bool
    client_cert: x509.Certificate | None
    tls_unique: bytes | None  # only for a TLS 1.2 session on our own listener


def parse_networks(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    """`server.trusted_proxies`: addresses or CIDRs; bad entries are a config error."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _trusted(remote: str | None, proxies: Sequence[IPNetwork]) -> bool:
    if not remote or not proxies:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in net for net in proxies)


def channel(request: web.Request, proxies: Sequence[IPNetwork], header: str) -> Channel:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is not None:
        cert = _tls_cert(ssl_object.getpeercert(binary_form=True))
        unique = None
        if ssl_object.version() == "TLSv1.2":
            # RFC 5929 §3: tls-unique is the first Finished message; TLS 1.3 has no such
            # value (RFC 8446 §C.5), so §3.5 linking is only possible on TLS 1.2.
            unique = ssl_object.get_channel_binding("tls-unique")
        return Channel(True, False, cert, unique)
    if _trusted(request.remote, proxies):
        return Channel(True, True, _header_cert(request.headers.get(header), header), None)
    # Plain HTTP from anyone else: the header is ignored, never trusted.
    return Channel(False, False, None, None)


def _tls_cert(der: bytes | None) -> x509.Certificate | None:
    """The handshake's client certificate. OpenSSL accepts some encodings that RFC 5280's
    DER does not (cryptography refuses them): that is the device's error, not ours."""
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as err:
        raise EstError(400, f"the TLS client certificate is not valid RFC 5280 DER: {err}") from err


def _header_cert(value: str | None, header: str) -> x509.Certificate | None:
    """URL-encoded PEM, as nginx's $ssl_client_escaped_cert (or raw PEM / base64 DER)."""
    if not value or not value.strip():
        return None
    text = urllib.parse.unquote(value.strip())
    try:
        if "-----BEGIN" in text:
            return x509.load_pem_x509_certificate(text.encode("ascii"))
        return x509.load_der_x509_certificate(base64.b64decode(text.strip(":"), validate=True))
    except (ValueError, UnicodeEncodeError, binascii.Error) as err:
        raise EstError(
            400, f"the {header} header from the proxy does not hold a PEM certificate"
        ) from err


def basic_credentials(request: web.Request) -> BasicCredentials | None:
    """RFC 7617 §2; a malformed header is a 400, not a silent anonymous request."""
    value = request.headers.get("Authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        raise EstError(400, "only the Basic authorization scheme is supported here")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise EstError(400, "Authorization: Basic credentials are not valid base64") from err
    username, sep, password = decoded.partition(":")
    if not sep:
        raise EstError(400, "Authorization: Basic credentials must be user:password")
    return BasicCredentials(username, password)
