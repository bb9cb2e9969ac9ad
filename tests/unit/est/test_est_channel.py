"""The TLS channel read-out (protocols.est.auth.channel): client certificates from the
handshake or a trusted proxy's header, and tls-unique only on TLS 1.2 (RFC 7030 §3.5)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.hazmat.primitives.serialization import Encoding
from est_fakes import make_cert

from protocols.est.auth import channel, parse_networks
from protocols.est.errors import EstError


class _Ssl:
    def __init__(self, der: bytes | None, version: str) -> None:
        self._der, self._version = der, version

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self._der

    def version(self) -> str:
        return self._version

    def get_channel_binding(self, kind: str = "tls-unique") -> bytes:
        assert kind == "tls-unique"
        return b"finished-message"


class _Transport:
    def __init__(self, ssl_object: _Ssl | None) -> None:
        self._ssl = ssl_object

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return ("127.0.0.1", 40000)
        return self._ssl if name == "ssl_object" else default


def _request(ssl_object: _Ssl | None, headers: dict[str, str] | None = None) -> web.Request:
    return make_mocked_request("GET", "/", headers=headers, transport=_Transport(ssl_object))


def test_channel_tls_unique_only_on_tls12() -> None:
    """RFC 5929 §3 / RFC 8446 §C.5: TLS 1.3 has no tls-unique, so §3.5 cannot apply."""
    cert, _ = make_cert("device")
    der = cert.public_bytes(Encoding.DER)
    on12 = channel(_request(_Ssl(der, "TLSv1.2")), (), "X-SSL-Client-Cert")
    assert on12.tls and not on12.via_proxy and on12.client_cert == cert
    assert on12.tls_unique == b"finished-message"
    on13 = channel(_request(_Ssl(None, "TLSv1.3")), (), "X-SSL-Client-Cert")
    assert on13.tls and on13.client_cert is None and on13.tls_unique is None


def test_fail_channel_unparseable_tls_client_cert_is_400() -> None:
    with pytest.raises(EstError) as caught:
        channel(_request(_Ssl(b"\x30\x03\x02\x01\x00", "TLSv1.3")), (), "X-SSL-Client-Cert")
    assert caught.value.status == 400 and "RFC 5280" in caught.value.message


def test_channel_proxy_header_needs_a_trusted_peer() -> None:
    """The peer (127.0.0.1) is trusted only when listed in server.trusted_proxies."""
    cert, _ = make_cert("device")
    pem = cert.public_bytes(Encoding.PEM).decode()
    headers = {"X-SSL-Client-Cert": pem.replace("\n", "%0A")}
    untrusted = channel(_request(None, headers), (), "X-SSL-Client-Cert")
    assert not untrusted.tls and untrusted.client_cert is None
    trusted = channel(_request(None, headers), parse_networks(["127.0.0.0/8"]), "X-SSL-Client-Cert")
    assert trusted.tls and trusted.via_proxy and trusted.client_cert == cert
