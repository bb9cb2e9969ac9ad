"""EST pieces a device can break: the TLS channel read-out (tls-unique, odd client
certificates), the catch-all that keeps tracebacks off the wire, and /csrattrs for every key
type and policy (RFC 7030 §3.5, §4.5.2)."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from asn1crypto import core
from asn1crypto import x509 as a_x509
from cryptography.hazmat.primitives.serialization import Encoding
from test_est_units import FakeBackend, _cert, _profile, enrollment_target

from gateway.core.est import EstAuth, EstSettings
from gateway.core.model import KeyType, PolicyRules
from gateway.core.target import EnrollmentTarget
from protocols.est import attrs, wire
from protocols.est.auth import channel, parse_networks
from protocols.est.errors import EstError
from protocols.est.handlers import EstContext, EstHandlers


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
    cert, _ = _cert("device")
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
    cert, _ = _cert("device")
    pem = cert.public_bytes(Encoding.PEM).decode()
    headers = {"X-SSL-Client-Cert": pem.replace("\n", "%0A")}
    untrusted = channel(_request(None, headers), (), "X-SSL-Client-Cert")
    assert not untrusted.tls and untrusted.client_cert is None
    trusted = channel(_request(None, headers), parse_networks(["127.0.0.0/8"]), "X-SSL-Client-Cert")
    assert trusted.tls and trusted.via_proxy and trusted.client_cert == cert


class _Broken(FakeBackend):
    async def ca_certificates(self, target: EnrollmentTarget) -> list[Any]:
        raise RuntimeError("secret internals /etc/certgate/key.pem")


async def test_fail_unexpected_error_is_plain_500_without_traceback(aiohttp_client: Any) -> None:
    settings = EstSettings(enabled=True, accepted=(EstAuth.BASIC,))
    target = enrollment_target(_profile(), settings)
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


def _target(key_type: KeyType, **settings: Any) -> EnrollmentTarget:
    profile = dataclasses.replace(
        _profile(), default_key_type=key_type, extended_key_usages=("client_auth",)
    )
    return enrollment_target(profile, EstSettings(enabled=True, **settings))


def _items(found: wire.CsrAttrs) -> dict[str, list[bytes]]:
    """OID -> the DER of its values ([] for a bare OID)."""
    out: dict[str, list[bytes]] = {}
    for item in core.SequenceOf.load(found.der(), spec=core.Any):
        raw = item.dump()
        if raw[0] == 0x06:
            out[core.ObjectIdentifier.load(raw).dotted] = []
        else:
            seq = core.Sequence.load(raw)
            oid = core.ObjectIdentifier.load(seq[0].dump()).dotted
            out[oid] = [v.dump() for v in core.SetOf.load(seq[1].dump(), spec=core.Any)]
    return out


@pytest.mark.parametrize(
    ("key_type", "rules", "oid", "value"),
    [
        pytest.param(
            KeyType.EC_P384, PolicyRules(), wire.OID_EC_PUBLIC_KEY,
            wire.oid_der(wire.CURVE_OIDS["P-384"]), id="ok/ec-p384",
        ),
        pytest.param(
            KeyType.RSA_2048, PolicyRules(min_rsa_bits=3072), wire.OID_RSA_ENCRYPTION,
            core.Integer(3072).dump(), id="ok/rsa-raised-to-policy-minimum",
        ),
        pytest.param(KeyType.ED25519, PolicyRules(), wire.OID_ED25519, None, id="ok/ed25519"),
        pytest.param(
            KeyType.EC_P384, PolicyRules(ec_curves=("P-256",)), None, None,
            id="ok/curve-refused-by-policy-not-asked",
        ),
    ],
)  # fmt: skip
def test_csrattrs_key(key_type: KeyType, rules: PolicyRules, oid: str | None, value: Any) -> None:
    found = _items(attrs.csr_attributes(_target(key_type), rules))
    keys = {wire.OID_EC_PUBLIC_KEY, wire.OID_RSA_ENCRYPTION, wire.OID_ED25519}
    assert [o for o in found if o in keys] == ([oid] if oid else [])
    if oid is not None:
        assert found[oid] == ([value] if value is not None else [])


def test_csrattrs_extensions_and_challenge() -> None:
    rules = PolicyRules(
        required_extended_key_usages=("server_auth",),
        required_key_usages=("digital_signature", "key_agreement"),
    )
    found = _items(attrs.csr_attributes(_target(KeyType.EC_P256, require_tls_unique=True), rules))
    assert found[wire.OID_CHALLENGE_PASSWORD] == []  # §3.5 linking asked for
    (extensions_der,) = found[wire.OID_EXTENSION_REQUEST]
    extensions = {e["extn_id"].native: e for e in a_x509.Extensions.load(extensions_der)}
    assert extensions["extended_key_usage"]["extn_value"].native == ["client_auth", "server_auth"]
    assert extensions["key_usage"]["critical"].native is True
    assert extensions["key_usage"]["extn_value"].native == {"digital_signature", "key_agreement"}


def test_csrattrs_empty_when_policy_allows_nothing_known() -> None:
    profile = dataclasses.replace(_profile(), extended_key_usages=())
    target = enrollment_target(profile, EstSettings(enabled=True))
    assert not attrs.csr_attributes(target, PolicyRules(key_algorithms=()))
    assert base64.b64encode(wire.CsrAttrs().der()) == b"MAA="  # empty SEQUENCE
