"""gateway.core.policy.evaluate, one rule at a time: each case names the CSR, policy,
profile and evaluate() arguments, and the rule ids expected (none for an `ok/` case)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from core_helpers import DEMO_RULES, NOW, denied, rules, run
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

from gateway.core.model import NameRule, PolicyRules, SubjectRule
from gateway.core.template import CertificateTemplate


def ok(
    id: str,
    *,
    policy: PolicyRules = DEMO_RULES,
    prof: dict[str, Any] | None = None,
    kw: dict[str, Any] | None = None,
    **csr: Any,
) -> Any:
    """A request that must be issued."""
    return pytest.param(csr, policy, prof or {}, kw or {}, None, id=id)


def no(
    id: str,
    *expected: str,
    policy: PolicyRules = DEMO_RULES,
    prof: dict[str, Any] | None = None,
    kw: dict[str, Any] | None = None,
    **csr: Any,
) -> Any:
    """A request that must be denied with exactly these rule ids, in order."""
    return pytest.param(csr, policy, prof or {}, kw or {}, list(expected), id=id)


ORG_RULES = rules(
    subject=(
        SubjectRule("CN"),
        SubjectRule("O", allow=("Example*",), deny=("*Evil*",)),
        SubjectRule("C", allow=("DE", "FR")),
        SubjectRule("serialNumber", required=True),
    )
)
MAIL = rules(email=NameRule(allow=("*@example.com",), deny=("root@*",)))
URIS = rules(uri=NameRule(allow=("spiffe://example.com/*",), deny=("*/admin",)))
DENYING = rules(
    dns=NameRule(allow=("*.example.com", "*.localhost"), deny=("secret.example.com",)),
    ip=NameRule(
        allow=("127.0.0.0/8", "::1/128", "2001:db8::/32"), deny=("127.0.0.2", "2001:db8:bad::/48")
    ),
)
V6 = rules(ip=NameRule(allow=("2001:db8::/32", "::1/128")))


CASES = [
    # --- identity ------------------------------------------------------------------------
    ok("ok/cn-and-san"),
    ok("ok/cn-only", cn="app.localhost", sans=()),
    ok("ok/san-only", cn=None, sans=["dns:app.localhost"]),
    no("fail/no-cn-no-san", "identity.missing", cn=None, sans=()),
    ok("ok/require-san", policy=rules(require_san=True)),
    no("fail/require-san", "san.required", policy=rules(require_san=True), sans=()),
    # --- subject -------------------------------------------------------------------------
    ok(
        "ok/subject-listed",
        policy=ORG_RULES,
        subject=[("O", "Example Corp"), ("C", "de"), ("serialNumber", "42")],
    ),
    no("fail/subject-unlisted", "subject.attribute.not_allowed", subject=[("OU", "ops")]),
    ok(
        "ok/subject-unlisted-allowed",
        policy=rules(allow_other_subject_attributes=True),
        subject=[("OU", "ops")],
    ),
    no(
        "fail/subject-value",
        "subject.value.not_allowed",
        policy=ORG_RULES,
        subject=[("O", "Other"), ("serialNumber", "1")],
    ),
    no(
        "fail/subject-denied",
        "subject.value.denied",
        policy=ORG_RULES,
        subject=[("O", "Example Evil Inc"), ("serialNumber", "1")],
    ),
    no(
        "fail/subject-required",
        "subject.attribute.required",
        policy=ORG_RULES,
        subject=[("O", "Example")],
    ),
    no(
        "fail/subject-cn-pattern",
        "subject.value.not_allowed",
        "san.dns.not_allowed",  # the TLS profile adds the CN to the SANs
        policy=rules(subject=(SubjectRule("CN", allow=("*.localhost",)),)),
        cn="other",
    ),
    ok("ok/subject-cn-pattern", policy=rules(subject=(SubjectRule("CN", allow=("*.LOCALHOST",)),))),
    ok(
        "ok/subject-rule-by-long-name",
        policy=rules(subject=(SubjectRule("commonName"), SubjectRule("organizationName"))),
        subject=[("O", "x")],
    ),
    no(
        "fail/cn-not-listed",
        "subject.attribute.not_allowed",
        policy=rules(subject=(SubjectRule("O"),)),
    ),
    # --- DNS SANs ------------------------------------------------------------------------
    ok("ok/dns-localhost", sans=["dns:localhost"]),
    ok("ok/dns-sub-localhost", sans=["dns:a.localhost"]),
    ok("ok/dns-test", sans=["dns:svc.test"]),
    ok("ok/dns-example", sans=["dns:www.example.com"]),
    ok("ok/dns-upper", sans=["dns:WWW.Example.COM"]),
    no("fail/dns-trailing-dot", "san.dns.invalid", sans=["dns:www.example.com."]),
    ok("ok/dns-wildcard-san", sans=["dns:*.example.com"]),
    no("fail/dns-wildcard-under-one-label", "san.dns.invalid", sans=["dns:*.localhost"]),
    no("fail/dns-evil", "san.dns.not_allowed", sans=["dns:evil.com"]),
    no("fail/dns-apex", "san.dns.not_allowed", sans=["dns:example.com"]),
    no("fail/dns-two-deep", "san.dns.not_allowed", sans=["dns:a.b.example.com"]),
    no("fail/dns-wildcard-too-deep", "san.dns.not_allowed", sans=["dns:*.a.example.com"]),
    no("fail/dns-partial-wildcard", "san.dns.invalid", sans=["dns:w*.example.com"]),
    no("fail/dns-bare-wildcard", "san.dns.invalid", sans=["dns:*"]),
    no("fail/dns-underscore", "san.dns.invalid", sans=["dns:a_b.example.com"]),
    no("fail/dns-none-allowed", "san.dns.not_allowed", policy=rules(dns=NameRule())),
    ok("ok/dns-deny-miss", policy=DENYING, sans=["dns:public.example.com"]),
    no("fail/dns-denied", "san.dns.denied", policy=DENYING, sans=["dns:secret.example.com"]),
    no(
        "fail/dns-wildcard-covers-denied",
        "san.dns.denied",
        policy=DENYING,
        sans=["dns:*.example.com"],
    ),
    # --- IP SANs -------------------------------------------------------------------------
    ok("ok/ip-v4-loopback", sans=["ip:127.0.0.1"]),
    ok("ok/ip-v4-loopback-range", sans=["ip:127.10.20.30"]),
    ok("ok/ip-v6-loopback", sans=["ip:::1"]),
    no("fail/ip-v4-outside", "san.ip.not_allowed", sans=["ip:10.0.0.1"]),
    no("fail/ip-v6-outside", "san.ip.not_allowed", sans=["ip:::2"]),
    no("fail/ip-v4-mapped", "san.ip.not_allowed", sans=["ip:::ffff:127.0.0.1"]),
    ok("ok/ip-v6-cidr", policy=V6, sans=["ip:2001:db8:1::5"]),
    no("fail/ip-v6-cidr", "san.ip.not_allowed", policy=V6, sans=["ip:2001:db9::5"]),
    no("fail/ip-v4-in-v6-policy", "san.ip.not_allowed", policy=V6, sans=["ip:127.0.0.1"]),
    no("fail/ip-denied-v4", "san.ip.denied", policy=DENYING, sans=["ip:127.0.0.2"]),
    no("fail/ip-denied-v6", "san.ip.denied", policy=DENYING, sans=["ip:2001:db8:bad::1"]),
    ok("ok/ip-v6-beside-denied", policy=DENYING, sans=["ip:2001:db8:bae::1"]),
    no(
        "fail/ip-none-allowed",
        "san.ip.not_allowed",
        policy=rules(ip=NameRule()),
        sans=["ip:127.0.0.1"],
    ),
    # --- email and URI SANs --------------------------------------------------------------
    no("fail/email-none-allowed", "san.email.not_allowed", sans=["email:ops@example.com"]),
    ok("ok/email", policy=MAIL, sans=["email:Ops@Example.com"]),
    no(
        "fail/email-other-domain", "san.email.not_allowed", policy=MAIL, sans=["email:ops@evil.com"]
    ),
    no("fail/email-denied", "san.email.denied", policy=MAIL, sans=["email:root@example.com"]),
    no("fail/email-no-at", "san.email.invalid", policy=MAIL, sans=["email:example.com"]),
    no("fail/uri-none-allowed", "san.uri.not_allowed", sans=["uri:spiffe://example.com/a"]),
    ok("ok/uri", policy=URIS, sans=["uri:spiffe://example.com/payments"]),
    no("fail/uri-other", "san.uri.not_allowed", policy=URIS, sans=["uri:https://evil.com/"]),
    no("fail/uri-denied", "san.uri.denied", policy=URIS, sans=["uri:spiffe://example.com/admin"]),
    no("fail/uri-relative", "san.uri.invalid", policy=URIS, sans=["uri:/relative/path"]),
    no("fail/other-san-type", "san.other.not_allowed", sans=["dns:a.localhost", "rid:1.2.3.4"]),
    # --- key -----------------------------------------------------------------------------
    ok("ok/key-ec-p256", key_kind="ec"),
    ok("ok/key-ec-p384", key_kind="ec-p384"),
    ok("ok/key-ec-p521", key_kind="ec-p521"),
    ok("ok/key-rsa-2048", key_kind="rsa-2048"),
    ok("ok/key-ed25519", key_kind="ed25519"),
    no("fail/key-ed448-not-listed", "key.algorithm.not_allowed", key_kind="ed448"),
    ok("ok/key-ed448-listed", policy=rules(key_algorithms=("ed448",)), key_kind="ed448"),
    no("fail/key-rsa-1024", "key.rsa.too_small", key_kind="rsa-1024"),
    ok("ok/key-rsa-1024-lowered", policy=rules(min_rsa_bits=1024), key_kind="rsa-1024"),
    no(
        "fail/key-rsa-3072-min",
        "key.rsa.too_small",
        policy=rules(min_rsa_bits=3072),
        key_kind="rsa-2048",
    ),
    no("fail/key-secp256k1", "key.ec.curve_not_allowed", key_kind="ec-k256"),
    no(
        "fail/key-p384-not-listed",
        "key.ec.curve_not_allowed",
        policy=rules(ec_curves=("P-256",)),
        key_kind="ec-p384",
    ),
    no(
        "fail/key-ec-not-listed", "key.algorithm.not_allowed", policy=rules(key_algorithms=("rsa",))
    ),
    # --- key usage -----------------------------------------------------------------------
    ok("ok/ku-csr-digital-signature", usages=["digital_signature"]),
    ok(
        "ok/ku-csr-rsa-encipherment",
        key_kind="rsa-2048",
        usages=["digital_signature", "key_encipherment"],
    ),
    no(
        "fail/ku-csr-ec-encipherment",
        "key_usage.incompatible_key",
        usages=["digital_signature", "key_encipherment"],
    ),
    no(
        "fail/ku-csr-ed25519-data-enc",
        "key_usage.incompatible_key",
        key_kind="ed25519",
        usages=["data_encipherment"],
    ),
    no(
        "fail/ku-csr-ed25519-agreement",
        "key_usage.incompatible_key",
        key_kind="ed25519",
        usages=["digital_signature", "key_agreement"],
    ),
    no(
        "fail/ku-csr-rsa-agreement",
        "key_usage.incompatible_key",
        key_kind="rsa-2048",
        usages=["digital_signature", "key_agreement"],
    ),
    ok("ok/ku-csr-ec-agreement", usages=["digital_signature", "key_agreement"]),
    no("fail/ku-csr-cert-sign", "key_usage.ca", usages=["digital_signature", "key_cert_sign"]),
    no(
        "fail/ku-csr-crl-sign",
        "key_usage.ca",
        usages=["crl_sign"],
        policy=rules(allowed_key_usages=("crl_sign", "digital_signature")),
    ),
    no(
        "fail/ku-csr-not-allowed",
        "key_usage.not_allowed",
        usages=["digital_signature", "content_commitment"],
        policy=rules(allowed_key_usages=("digital_signature",)),
    ),
    no("fail/ku-csr-empty", "key_usage.empty", usages=[]),
    no(
        "fail/ku-required-missing",
        "key_usage.required",
        usages=["key_agreement"],
        policy=rules(required_key_usages=("digital_signature",)),
    ),
    ok("ok/ku-required-present", policy=rules(required_key_usages=("digital_signature",))),
    ok("ok/ku-defaults-ec-dropped"),
    ok("ok/ku-defaults-ed25519-dropped", key_kind="ed25519"),
    no(
        "fail/ku-defaults-none-usable",
        "key_usage.none_usable",
        prof={"key_usages": ("key_encipherment",)},
    ),
    no(
        "fail/ku-defaults-ca",
        "key_usage.ca",
        prof={"key_usages": ("digital_signature", "key_cert_sign")},
    ),
    no(
        "fail/ku-defaults-unknown",
        "key_usage.unknown",
        prof={"key_usages": ("digital_signature", "sign_everything")},
    ),
    no(
        "fail/ku-defaults-not-allowed",
        "key_usage.not_allowed",
        prof={"key_usages": ("digital_signature", "content_commitment")},
        policy=rules(allowed_key_usages=("digital_signature", "key_encipherment")),
    ),
    no(
        "fail/ku-defaults-required-enc-ec",
        "key_usage.required",
        policy=rules(required_key_usages=("key_encipherment",)),
    ),
    ok(
        "ok/ku-defaults-required-enc-rsa",
        key_kind="rsa-2048",
        policy=rules(required_key_usages=("key_encipherment",)),
    ),
    no("fail/basic-constraints-ca", "basic_constraints.ca", ca=True),
    ok("ok/basic-constraints-not-ca", ca=False),
    # --- extended key usage --------------------------------------------------------------
    ok("ok/eku-csr-server", ekus=[EKU.SERVER_AUTH]),
    ok("ok/eku-csr-both", ekus=[EKU.SERVER_AUTH, EKU.CLIENT_AUTH]),
    no("fail/eku-csr-code-signing", "eku.not_allowed", ekus=[EKU.SERVER_AUTH, EKU.CODE_SIGNING]),
    no("fail/eku-csr-any", "eku.not_allowed", ekus=[EKU.ANY_EXTENDED_KEY_USAGE]),
    no(
        "fail/eku-csr-custom-oid",
        "eku.not_allowed",
        ekus=[x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")],
    ),
    ok(
        "ok/eku-csr-custom-oid-allowed",
        policy=rules(allowed_extended_key_usages=("1.3.6.1.4.1.99999.1",)),
        ekus=[x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")],
    ),
    no(
        "fail/eku-required-missing",
        "eku.required",
        ekus=[EKU.CLIENT_AUTH],
        policy=rules(required_extended_key_usages=("server_auth",)),
    ),
    ok(
        "ok/eku-required-from-defaults", policy=rules(required_extended_key_usages=("server_auth",))
    ),
    no(
        "fail/eku-defaults-not-allowed",
        "eku.not_allowed",
        prof={"extended_key_usages": ("email_protection",)},
    ),
    no(
        "fail/eku-defaults-unknown",
        "eku.unknown",
        prof={"extended_key_usages": ("server_auth", "teleport")},
    ),
    # --- validity ------------------------------------------------------------------------
    ok("ok/validity-default"),
    ok("ok/validity-requested", kw={"requested_validity_days": 30}),
    ok("ok/validity-requested-max", kw={"requested_validity_days": 397}),
    no(
        "fail/validity-requested-too-long", "validity.too_long", kw={"requested_validity_days": 398}
    ),
    no("fail/validity-requested-zero", "validity.invalid", kw={"requested_validity_days": 0}),
    no("fail/validity-requested-negative", "validity.invalid", kw={"requested_validity_days": -5}),
    ok("ok/validity-profile-clamped", prof={"validity_days": 1000}),
    no("fail/validity-profile-zero", "validity.invalid", prof={"validity_days": 0}),
    no(
        "fail/validity-ca-expired",
        "validity.ca_expired",
        kw={"ca_not_after": NOW - timedelta(days=1)},
    ),
]


@pytest.mark.parametrize(("csr_args", "policy", "profile_args", "kwargs", "expected"), CASES)
def test_rule(
    csr_args: dict[str, Any],
    policy: PolicyRules,
    profile_args: dict[str, Any],
    kwargs: dict[str, Any],
    expected: list[str] | None,
) -> None:
    if expected is None:
        assert isinstance(run(csr_args, policy, profile_args, **kwargs), CertificateTemplate)
    else:
        violations = denied(csr_args, policy, profile_args, **kwargs)
        assert [v.rule for v in violations] == expected
        assert all(v.message[:1].isupper() for v in violations)
