"""gateway.core.policy.evaluate: every rule both ways, all violations reported at once,
the template it builds, and validate_profile_against_policy."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_address
from typing import Any

import pytest
from core_helpers import DEMO_RULES, NOW, build_csr, denied, make_profile, rules, run
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU
from cryptography.x509.oid import ExtensionOID

from gateway.core.errors import BadCSR, PolicyDenied, Violation
from gateway.core.model import KeyType, PolicyRules
from gateway.core.policy import (
    CLOCK_SKEW,
    eku_name,
    eku_oid,
    evaluate,
    validate_profile_against_policy,
)


def rule_ids(violations: tuple[Violation, ...]) -> list[str]:
    return [v.rule for v in violations]


def test_all_violations_are_reported() -> None:
    violations = denied(
        {
            "key_kind": "rsa-1024",
            "subject": [("OU", "ops")],
            "sans": ["dns:evil.com", "dns:localhost", "ip:10.0.0.1", "email:a@b.test"],
            "usages": ["digital_signature", "key_cert_sign"],
            "ekus": [EKU.CODE_SIGNING],
            "ca": True,
        },
        requested_validity_days=1000,
    )
    assert rule_ids(violations) == [
        "subject.attribute.not_allowed",
        "san.dns.not_allowed",
        "san.ip.not_allowed",
        "san.email.not_allowed",
        "key.rsa.too_small",
        "key_usage.ca",
        "basic_constraints.ca",
        "eku.not_allowed",
        "validity.too_long",
    ]
    identifiers = [v.identifier for v in violations]
    assert identifiers[1:4] == ["evil.com", "10.0.0.1", "a@b.test"]


def test_every_bad_san_is_its_own_violation() -> None:
    violations = denied({"sans": ["dns:a.evil", "dns:b.evil", "dns:ok.localhost", "ip:::2"]})
    assert [(v.rule, v.identifier) for v in violations] == [
        ("san.dns.not_allowed", "a.evil"),
        ("san.dns.not_allowed", "b.evil"),
        ("san.ip.not_allowed", "::2"),
    ]


def test_repeated_san_is_reported_once() -> None:
    violations = denied({"sans": ["dns:evil.com", "dns:evil.com"]})
    assert rule_ids(violations) == ["san.dns.not_allowed"]


def test_message_names_value_and_rule() -> None:
    (violation,) = denied({"sans": ["dns:evil.com"]})
    assert violation == Violation(
        "san.dns.not_allowed",
        "DNS name 'evil.com' is not allowed by the policy "
        "(allowed: localhost, *.localhost, *.test, *.example.com)",
        "evil.com",
    )


def test_policy_denied_message_joins_violations() -> None:
    with pytest.raises(PolicyDenied) as info:
        run({"sans": ["dns:evil.com", "ip:10.0.0.1"]})
    assert "evil.com" in info.value.message and "10.0.0.1" in info.value.message


# --- the template ------------------------------------------------------------------------


def test_template_from_csr() -> None:
    csr = build_csr(
        cn="app.localhost",
        sans=["dns:app.localhost", "ip:127.0.0.1", "ip:::1"],
    )
    template = evaluate(csr, make_profile(), DEMO_RULES, NOW)
    assert template.subject == csr.subject
    assert template.sans == (
        x509.DNSName("app.localhost"),
        x509.IPAddress(ip_address("127.0.0.1")),
        x509.IPAddress(ip_address("::1")),
    )
    assert template.public_key == csr.public_key()
    assert template.not_before == NOW - CLOCK_SKEW == NOW - timedelta(minutes=5)
    assert template.not_after == NOW + timedelta(days=90)
    # keyEncipherment is dropped from the defaults for an EC key (RFC 8813 §3).
    assert template.key_usages == frozenset({"digital_signature"})
    assert template.extended_key_usages == (EKU.SERVER_AUTH,)


@pytest.mark.parametrize(
    ("key_kind", "usages"),
    [
        pytest.param("rsa-2048", {"digital_signature", "key_encipherment"}, id="ok/rsa"),
        pytest.param("ec", {"digital_signature"}, id="ok/ec"),
        pytest.param("ed25519", {"digital_signature"}, id="ok/ed25519"),
    ],
)
def test_default_key_usages_per_key_type(key_kind: str, usages: set[str]) -> None:
    assert run({"key_kind": key_kind}).key_usages == frozenset(usages)


def test_defaults_keep_agreement_for_ec_only() -> None:
    profile = {"key_usages": ("digital_signature", "key_agreement", "key_encipherment")}
    assert run({"key_kind": "ec"}, profile_args=profile).key_usages == frozenset(
        {"digital_signature", "key_agreement"}
    )
    assert run({"key_kind": "rsa-2048"}, profile_args=profile).key_usages == frozenset(
        {"digital_signature", "key_encipherment"}
    )


def test_csr_key_usage_replaces_defaults() -> None:
    template = run({"key_kind": "rsa-2048", "usages": ["key_encipherment"]})
    assert template.key_usages == frozenset({"key_encipherment"})


def test_csr_ekus_replace_defaults_in_order() -> None:
    template = run({"ekus": [EKU.CLIENT_AUTH, EKU.SERVER_AUTH, EKU.CLIENT_AUTH]})
    assert template.extended_key_usages == (EKU.CLIENT_AUTH, EKU.SERVER_AUTH)


@pytest.mark.parametrize(
    ("kwargs", "profile_days", "days"),
    [
        pytest.param({}, 90, 90, id="ok/profile-default"),
        pytest.param({"requested_validity_days": 7}, 90, 7, id="ok/requested"),
        pytest.param({}, 1000, 397, id="ok/profile-clamped-to-max"),
        pytest.param({"requested_validity_days": 200}, 30, 200, id="ok/requested-above-profile"),
    ],
)
def test_validity_days(kwargs: dict[str, Any], profile_days: int, days: int) -> None:
    template = run(profile_args={"validity_days": profile_days}, **kwargs)
    assert template.not_after - NOW == timedelta(days=days)


def test_validity_clamped_to_ca() -> None:
    ca_end = NOW + timedelta(days=10)
    template = run(ca_not_after=ca_end)
    assert template.not_after == ca_end
    assert template.not_before == NOW - CLOCK_SKEW


def test_validity_not_clamped_when_ca_outlives() -> None:
    template = run(ca_not_after=NOW + timedelta(days=3650))
    assert template.not_after == NOW + timedelta(days=90)


# --- CSR integrity -----------------------------------------------------------------------


def test_evaluate_rechecks_signature() -> None:
    good = build_csr(key_kind="ed25519")
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    forged = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(BadCSR, match="proof of possession"):
        evaluate(forged, make_profile(), DEMO_RULES, NOW)


def test_malformed_extension_is_bad_csr_not_violation() -> None:
    junk = x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x04\x01\x00")
    with pytest.raises(BadCSR):
        run({"extra": [junk]})


# --- EKU names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "oid"),
    [
        pytest.param("server_auth", EKU.SERVER_AUTH, id="ok/server"),
        pytest.param("client_auth", EKU.CLIENT_AUTH, id="ok/client"),
        pytest.param("code_signing", EKU.CODE_SIGNING, id="ok/code"),
        pytest.param("email_protection", EKU.EMAIL_PROTECTION, id="ok/email"),
        pytest.param("time_stamping", EKU.TIME_STAMPING, id="ok/time"),
        pytest.param("ocsp_signing", EKU.OCSP_SIGNING, id="ok/ocsp"),
        pytest.param("1.3.6.1.5.5.7.3.1", EKU.SERVER_AUTH, id="ok/dotted-known"),
        pytest.param("1.2.3.4", x509.ObjectIdentifier("1.2.3.4"), id="ok/dotted-custom"),
        pytest.param("Server_Auth", EKU.SERVER_AUTH, id="ok/case"),
    ],
)
def test_eku_oid(name: str, oid: x509.ObjectIdentifier) -> None:
    assert eku_oid(name) == oid


@pytest.mark.parametrize(
    "name", ["", "serverAuth-ish", "1", "3.1.2", "1.2.abc", "1..2"], ids=lambda n: f"fail/{n!r}"
)
def test_eku_oid_unknown(name: str) -> None:
    with pytest.raises(ValueError):
        eku_oid(name)


def test_eku_name_round_trip() -> None:
    short = ("server_auth", "client_auth", "code_signing", "email_protection")
    for name in (*short, "time_stamping", "ocsp_signing"):
        assert eku_name(eku_oid(name)) == name
    assert eku_name(x509.ObjectIdentifier("1.2.3.4")) == "1.2.3.4"


# --- validate_profile_against_policy -----------------------------------------------------


def bad(id: str, fragment: str, policy: PolicyRules = DEMO_RULES, **profile: Any) -> Any:
    return pytest.param(profile, policy, fragment, id=id)


PROFILE_CASES = [
    pytest.param({}, DEMO_RULES, None, id="ok/demo"),
    pytest.param({"default_key_type": KeyType.RSA_2048}, DEMO_RULES, None, id="ok/rsa-default"),
    bad("fail/validity-max", "exceeds the policy maximum", validity_days=398),
    bad("fail/validity-zero", "must be positive", validity_days=0),
    bad("fail/renew-before", "must be less than", renew_before_days=90),
    bad("fail/renew-negative", "must not be negative", renew_before_days=-1),
    bad("fail/ku-ca", "CA certificates only", key_usages=("digital_signature", "crl_sign")),
    bad("fail/ku-unknown", "not a known key usage", key_usages=("digital_signature", "bogus")),
    bad(
        "fail/ku-not-allowed",
        "'key_encipherment' is not allowed",
        rules(allowed_key_usages=("digital_signature",)),
    ),
    bad(
        "fail/ku-required",
        "'content_commitment' is required",
        rules(required_key_usages=("content_commitment",)),
    ),
    bad(
        "fail/ku-modifier",
        "need key_agreement",
        rules(allowed_key_usages=("encipher_only",)),
        key_usages=("encipher_only",),
    ),
    bad(
        "fail/eku-not-allowed",
        "'code_signing' is not allowed",
        extended_key_usages=("code_signing",),
    ),
    bad("fail/eku-unknown", "not a known name or OID", extended_key_usages=("nope",)),
    bad(
        "fail/eku-required",
        "'client_auth' is required",
        rules(required_extended_key_usages=("client_auth",)),
    ),
    bad(
        "fail/key-algorithm", "algorithm the policy does not allow", rules(key_algorithms=("rsa",))
    ),
    bad(
        "fail/key-rsa-size",
        "below the policy minimum",
        rules(min_rsa_bits=3072),
        default_key_type=KeyType.RSA_2048,
    ),
    bad(
        "fail/key-curve",
        "curve the policy does not allow",
        rules(ec_curves=("P-256",)),
        default_key_type=KeyType.EC_P384,
    ),
    bad(
        "fail/ku-none-for-key",
        "can be used with the default key type",
        key_usages=("key_encipherment",),
        default_key_type=KeyType.ED25519,
    ),
]


@pytest.mark.parametrize(("profile_args", "policy", "fragment"), PROFILE_CASES)
def test_validate_profile_against_policy(
    profile_args: dict[str, Any], policy: PolicyRules, fragment: str | None
) -> None:
    problems = validate_profile_against_policy(make_profile(**profile_args), policy)
    if fragment is None:
        assert problems == []
    else:
        assert any(fragment in p for p in problems), problems


def test_validate_profile_lists_every_problem() -> None:
    profile = make_profile(
        validity_days=500,
        key_usages=("digital_signature", "key_cert_sign"),
        extended_key_usages=("code_signing",),
    )
    assert len(validate_profile_against_policy(profile, DEMO_RULES)) == 3
