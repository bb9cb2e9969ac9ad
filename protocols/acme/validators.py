"""Challenge validation: http-01 (RFC 8555 §8.3), dns-01 (§8.4), tls-alpn-01 (RFC 8737),
for DNS and IP identifiers (RFC 8738). Each returns None on success or raises
ValidationFailed with the problem type to store (§8.2: connection, dns, tls, …)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver
import dns.reversename
import yarl
from cryptography import x509

from gateway.core.acme import (
    ChallengeType,
    Identifier,
    IdentifierType,
    dns01_record_name,
    dns01_txt_value,
    identifier_for,
)
from gateway.core.outbound import address_allowed
from protocols.acme.server import ValidationSettings, new_http_session

ACME_TLS_ALPN = "acme-tls/1"
# RFC 8737 §3: id-pe-acmeIdentifier
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
MAX_BODY = 4096


class ValidationFailed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _resolver(settings: ValidationSettings) -> dns.asyncresolver.Resolver:
    if not settings.resolvers:
        return dns.asyncresolver.Resolver()  # reads the system's configuration afresh
    return _resolver_for(settings.resolvers)


@functools.cache
def _resolver_for(resolvers: tuple[str, ...]) -> dns.asyncresolver.Resolver:
    """One resolver per configured list, reused: it holds configuration only (dnspython's
    answer cache stays off, so every validation asks afresh, RFC 8555 §10.2)."""
    resolver = dns.asyncresolver.Resolver(configure=False)
    servers: list[str | dns.nameserver.Nameserver] = []
    for entry in resolvers:
        host, port = split_host_port(entry)
        servers.append(dns.nameserver.Do53Nameserver(host, port))
    resolver.nameservers = servers
    return resolver


def split_host_port(entry: str, default: int = 53) -> tuple[str, int]:
    """ "host:port", "[v6]:port", or a bare address (port 53)."""
    entry = entry.strip()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest.lstrip(":") or default)
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry, default


async def resolve(identifier: Identifier, settings: ValidationSettings) -> list[str]:
    """Addresses to try for a name: through `acme.resolvers` when set, else the system's."""
    if identifier.type is IdentifierType.IP:
        return [identifier.value]
    name = identifier.base
    if not settings.resolvers:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except OSError as err:
            raise ValidationFailed("dns", f"cannot resolve {name}: {err}") from None
        return list(dict.fromkeys(str(info[4][0]) for info in infos))
    resolver = _resolver(settings)

    async def lookup(rdtype: str) -> list[str]:
        try:
            answer = await resolver.resolve(name, rdtype, lifetime=settings.timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            return []
        except dns.exception.DNSException as err:
            raise ValidationFailed("dns", f"DNS lookup of {name} failed: {err}") from None
        return [r.to_text() for r in answer]

    # Both at once: the client is polling meanwhile, and each poll is a request to serve.
    found = [
        a for addresses in await asyncio.gather(lookup("A"), lookup("AAAA")) for a in addresses
    ]
    if not found:
        raise ValidationFailed("dns", f"{name} has no A or AAAA record")
    return found


def _allowed(addresses: Sequence[str], networks: Sequence[str], name: str) -> list[str]:
    allowed = [a for a in addresses if address_allowed(a, networks)]
    if not allowed:
        raise ValidationFailed(
            "rejectedIdentifier",
            f"{name} resolves to {', '.join(addresses)}, outside the networks this profile's "
            "validators may reach",
        )
    return allowed


async def validate(
    kind: ChallengeType,
    identifier: Identifier,
    token: str,
    key_authorization: str,
    settings: ValidationSettings,
    networks: Sequence[str],
    *,
    http: aiohttp.ClientSession | None = None,
) -> None:
    """`http`: a session to fetch http-01 with (AcmeServer.http_session, one per process);
    a throwaway one when None."""
    if kind is ChallengeType.DNS_01:
        await _dns01(identifier, key_authorization, settings)
        return
    addresses = _allowed(await resolve(identifier, settings), networks, identifier.value)
    errors: list[ValidationFailed] = []
    for address in addresses:  # first address that answers correctly wins
        try:
            async with asyncio.timeout(settings.timeout):
                if kind is ChallengeType.HTTP_01:
                    await _http01(
                        address, identifier, token, key_authorization, settings, http, networks
                    )
                else:
                    await _tlsalpn01(address, identifier, key_authorization, settings)
            return
        except ValidationFailed as err:
            errors.append(err)
        except TimeoutError:
            errors.append(ValidationFailed("connection", f"{address}: timed out"))
    raise (
        errors[0]
        if len(errors) == 1
        else ValidationFailed(errors[0].kind, "; ".join(e.detail for e in errors))
    )


async def _http01(
    address: str,
    identifier: Identifier,
    token: str,
    key_auth: str,
    settings: ValidationSettings,
    http: aiohttp.ClientSession | None,
    networks: Sequence[str],
) -> None:
    """RFC 8555 §8.3: GET http://{domain}/.well-known/acme-challenge/{token}, body equals the
    key authorization (trailing whitespace tolerated). Redirects are followed ("SHOULD"),
    at most MAX_REDIRECTS, each target held to the rules of the first (_redirect)."""
    name = identifier.value if identifier.type is IdentifierType.DNS else _bracket(address)
    shown = yarl.URL.build(
        scheme="http",
        host=identifier.value,
        port=settings.http01_port,
        path=f"/.well-known/acme-challenge/{token}",
    )
    hop = _Hop(shown, address, settings.http01_port, name)
    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    async with contextlib.AsyncExitStack() as stack:
        session = http if http is not None else await stack.enter_async_context(new_http_session())
        for _ in range(MAX_REDIRECTS + 1):
            try:
                status, body, location = await _get(session, hop, timeout)
            except (aiohttp.ClientError, OSError) as err:
                raise ValidationFailed("connection", f"{hop.shown}: {err}") from None
            if status not in _REDIRECTS or location is None:
                break
            hop = await _redirect(hop, location, settings, networks)
        else:
            raise ValidationFailed("connection", f"more than {MAX_REDIRECTS} redirects")
    if status != 200:
        raise ValidationFailed("unauthorized", f"{hop.shown} answered HTTP {status}")
    if body.decode("utf-8", "replace").rstrip() != key_auth:
        raise ValidationFailed(
            "incorrectResponse", f"{hop.shown} did not return the key authorization"
        )


MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class _Hop:
    """One fetch: the URL as the client named it, and the address and port it goes to."""

    shown: yarl.URL
    address: str
    port: int
    host: str  # Host header and TLS server name


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


async def _redirect(
    hop: _Hop, location: str, settings: ValidationSettings, networks: Sequence[str]
) -> _Hop:
    """Where a redirect leads, held to what the first fetch was: http on acme.http01_port or
    https on acme.tlsalpn01_port (80 and 443 by default, the ports Let's Encrypt allows), a
    name resolved afresh, an address within the profile's validation networks."""
    try:
        target = hop.shown.join(yarl.URL(location))
    except ValueError:
        raise ValidationFailed("connection", f"bad redirect to {location!r}") from None
    ports = {"http": settings.http01_port, "https": settings.tlsalpn01_port}
    port, host = ports.get(target.scheme), target.host
    if port is None or not host:
        raise ValidationFailed("connection", f"redirect to {target} is not http(s)")
    if target.explicit_port is not None and target.explicit_port != port:
        raise ValidationFailed("connection", f"redirect to {target}: only port {port} is allowed")
    target = target.with_port(port)
    found = identifier_for(host)
    addresses = _allowed(await resolve(found, settings), networks, found.value)
    return _Hop(target, addresses[0], port, host)


async def _get(
    session: aiohttp.ClientSession, hop: _Hop, limits: aiohttp.ClientTimeout
) -> tuple[int, bytes, str | None]:
    url = hop.shown.with_host(hop.address).with_port(hop.port)
    tls = hop.shown.scheme == "https"
    async with session.get(
        url,
        headers={"Host": hop.host},
        allow_redirects=False,
        timeout=limits,
        # §8.3 checks the content, not the server's certificate (Let's Encrypt accepts any).
        ssl=False if tls else True,
        server_hostname=hop.host if tls else None,
    ) as resp:
        return resp.status, await resp.content.read(MAX_BODY), resp.headers.get("Location")


async def _dns01(identifier: Identifier, key_auth: str, settings: ValidationSettings) -> None:
    """RFC 8555 §8.4: a TXT record _acme-challenge.<name> with base64url(SHA-256(keyAuth))."""
    name = dns01_record_name(identifier)
    expected = dns01_txt_value(key_auth)
    try:
        answer = await _resolver(settings).resolve(name, "TXT", lifetime=settings.timeout)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        raise ValidationFailed("dns", f"no TXT record at {name}") from None
    except dns.exception.DNSException as err:
        raise ValidationFailed("dns", f"TXT lookup of {name} failed: {err}") from None
    values = {b"".join(r.strings).decode("ascii", "replace") for r in answer}
    if expected not in values:
        raise ValidationFailed("incorrectResponse", f"no matching TXT record at {name}")


async def _tlsalpn01(
    address: str, identifier: Identifier, key_auth: str, settings: ValidationSettings
) -> None:
    """RFC 8737 §3: TLS with ALPN acme-tls/1 and SNI the name (RFC 8738 §6: the reverse
    name for IPs); the self-signed certificate carries exactly the identifier as SAN and a
    critical acmeIdentifier extension holding SHA-256(keyAuth)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the certificate is self-signed by design
    context.set_alpn_protocols([ACME_TLS_ALPN])
    if identifier.type is IdentifierType.IP:
        sni = dns.reversename.from_address(identifier.value).to_text(omit_final_dot=True)
    else:
        sni = identifier.value
    try:
        _reader, writer = await asyncio.open_connection(
            address, settings.tlsalpn01_port, ssl=context, server_hostname=sni
        )
    except (OSError, ssl.SSLError) as err:
        reason = str(err) or type(err).__name__
        raise ValidationFailed(
            "tls", f"{address}:{settings.tlsalpn01_port} (SNI {sni}): {reason}"
        ) from None
    try:
        tls = writer.get_extra_info("ssl_object")
        if tls is None or tls.selected_alpn_protocol() != ACME_TLS_ALPN:
            raise ValidationFailed("tls", "server did not negotiate acme-tls/1")
        der = tls.getpeercert(binary_form=True)
    finally:
        writer.close()
    if not der:
        raise ValidationFailed("tls", "server presented no certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise ValidationFailed("tls", "server presented an unparsable certificate") from None
    _check_alpn_certificate(cert, identifier, key_auth)


def _check_alpn_certificate(cert: x509.Certificate, identifier: Identifier, key_auth: str) -> None:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound as err:
        raise ValidationFailed(
            "unauthorized", f"certificate lacks {err.oid.dotted_string}"
        ) from None
    except ValueError:  # cryptography parses extensions lazily
        raise ValidationFailed("tls", "certificate has malformed extensions") from None
    # RFC 8737 §3: exactly one SAN, the identifier, of the identifier's type (dNSName, or
    # iPAddress per RFC 8738 §6).
    wanted: x509.GeneralName
    if identifier.type is IdentifierType.IP:
        wanted = x509.IPAddress(ipaddress.ip_address(identifier.value))
    else:
        wanted = x509.DNSName(identifier.value.lower())
    names = [x509.DNSName(n.value.lower()) if isinstance(n, x509.DNSName) else n for n in sans]
    if names != [wanted]:
        shown = [str(n.value) for n in sans]
        raise ValidationFailed(
            "unauthorized", f"certificate names {shown}, not exactly {identifier.value}"
        )
    if not ext.critical:
        raise ValidationFailed("unauthorized", "acmeIdentifier extension must be critical")
    digest = hashlib.sha256(key_auth.encode()).digest()
    raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
    # DER OCTET STRING of 32 bytes: 04 20 || digest.
    if raw != b"\x04\x20" + digest:
        raise ValidationFailed("incorrectResponse", "acmeIdentifier does not match")
