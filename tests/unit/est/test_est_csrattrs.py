"""/csrattrs (RFC 7030 §4.5.2) for every key type and policy: the key asked for, the
required extensions, the challenge password when tls-unique linking is required."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest
from asn1crypto import core
from asn1crypto import x509 as a_x509
from est_fakes import enrollment_target, make_profile

from gateway.core.est import EstSettings
from gateway.core.model import KeyType, PolicyRules
from gateway.core.target import EnrollmentTarget
from protocols.est import attrs, wire


def _target(key_type: KeyType, **settings: Any) -> EnrollmentTarget:
    profile = dataclasses.replace(
        make_profile(), default_key_type=key_type, extended_key_usages=("client_auth",)
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
    profile = dataclasses.replace(make_profile(), extended_key_usages=())
    target = enrollment_target(profile, EstSettings(enabled=True))
    assert not attrs.csr_attributes(target, PolicyRules(key_algorithms=()))
    assert base64.b64encode(wire.CsrAttrs().der()) == b"MAA="  # empty SEQUENCE
