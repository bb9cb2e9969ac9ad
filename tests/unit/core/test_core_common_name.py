"""Subject CN rules: label-aware like DNS SANs, no control characters, a host name or IP
on a TLS profile, and the CN among the SANs (added, or refused under require_san)."""

from __future__ import annotations

import pytest
from core_helpers import DEMO_RULES, denied, rules, run
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

from gateway.core import names
from gateway.core.model import SubjectRule

p = pytest.param

# The demo policy's CN rule (gateway/bootstrap.py): host names as its DNS rule, loopback.
CN_RULES = rules(subject=(SubjectRule("CN", allow=("*.localhost", "*.test", "127.*", "::1")),))


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        p("a.test", "*.test", True, id="ok/one-label"),
        p("a.b.test", "*.test", False, id="fail/star-crosses-dot"),
        p("127.0.0.1", "127.*", True, id="ok/ip-glob"),
        p("127.evil.org", "127.*", False, id="fail/ip-glob-on-host-name"),
        p("127.0.0.9", "127.0.0.0/8", True, id="ok/ip-cidr"),
        p("10.0.0.1", "127.0.0.0/8", False, id="fail/ip-cidr"),
        p("Anyone At All", "*", True, id="ok/star-alone"),
        p("A.TEST", "*.test", True, id="ok/case"),
        p("a.test.", "*.test", False, id="fail/trailing-dot"),
    ],
)
def test_cn_matches(value: str, pattern: str, expected: bool) -> None:
    assert names.cn_matches(value, pattern, deny=False) is expected


@pytest.mark.parametrize(
    ("cn", "rule"),
    [
        p("bank.example.org\0.test", "subject.value.invalid", id="fail/nul"),
        p("a.test\n", "subject.value.invalid", id="fail/newline"),
        p("evil.example.org/.test", "subject.cn.invalid", id="fail/slash"),
        p("a b.test", "subject.cn.invalid", id="fail/space"),
        p("-.test", "subject.cn.invalid", id="fail/hyphen-label"),
        p("x.test.", "subject.cn.invalid", id="fail/trailing-dot"),
        p("127.evil.org", "subject.value.not_allowed", id="fail/ip-pattern-on-host"),
        p("a.b.test", "subject.value.not_allowed", id="fail/two-labels-under-star"),
    ],
)
def test_tls_cn_refused(cn: str, rule: str) -> None:
    violations = denied({"cn": cn, "sans": ["dns:ok.test"]}, CN_RULES)
    assert violations[0].rule == rule
    assert violations[0].identifier == f"CN={cn}"


@pytest.mark.parametrize(
    "cn", [p("x.test", id="ok/host"), p("127.0.0.1", id="ok/ip"), p("::1", id="ok/ipv6")]
)
def test_tls_cn_allowed(cn: str) -> None:
    sans = ["dns:x.test"] if ":" not in cn and not cn[0].isdigit() else [f"ip:{cn}"]
    run({"cn": cn, "sans": sans}, CN_RULES)


def test_control_characters_refused_in_every_attribute() -> None:
    policy = rules(subject=(SubjectRule("CN"), SubjectRule("O")))
    violations = denied({"subject": [("O", "Acme\0Evil")]}, policy)
    assert [v.rule for v in violations] == ["subject.value.invalid"]


def test_non_tls_profile_takes_any_cn_without_control_characters() -> None:
    # A client certificate's CN is often a person or a device, not a host name.
    template = run(
        {"cn": "Jane Doe", "sans": [], "ekus": [EKU.CLIENT_AUTH]},
        rules(subject=(SubjectRule("CN"),)),
        {"extended_key_usages": ("client_auth",)},
    )
    assert template.sans == ()


def test_cn_missing_from_sans_is_added() -> None:
    template = run({"cn": "app.localhost", "sans": ["dns:other.localhost"]}, DEMO_RULES)
    assert template.sans == (x509.DNSName("other.localhost"), x509.DNSName("app.localhost"))


def test_ip_cn_missing_from_sans_is_added_as_ip() -> None:
    template = run({"cn": "127.0.0.1", "sans": []}, DEMO_RULES)
    assert [str(n.value) for n in template.sans] == ["127.0.0.1"]
    assert isinstance(template.sans[0], x509.IPAddress)


def test_cn_among_sans_in_another_case_is_not_added_again() -> None:
    template = run({"cn": "App.Localhost", "sans": ["dns:app.localhost"]}, DEMO_RULES)
    assert template.sans == (x509.DNSName("app.localhost"),)


def test_cn_missing_from_sans_refused_under_require_san() -> None:
    violations = denied(
        {"cn": "app.localhost", "sans": ["dns:other.localhost"]}, rules(require_san=True)
    )
    assert [(v.rule, v.identifier) for v in violations] == [
        ("subject.cn.not_in_sans", "app.localhost")
    ]


def test_added_cn_still_meets_the_dns_rule() -> None:
    # The CN rule allows it but the DNS rule does not: the certificate would name it.
    policy = rules(subject=(SubjectRule("CN", allow=("*.corp",)),))
    violations = denied({"cn": "a.corp", "sans": ["dns:ok.test"]}, policy)
    assert [(v.rule, v.identifier) for v in violations] == [("san.dns.not_allowed", "a.corp")]


def test_wildcard_cn_denied_when_it_covers_a_denied_name() -> None:
    policy = rules(subject=(SubjectRule("CN", allow=("*.example.com",), deny=("db.example.com",)),))
    violations = denied({"cn": "*.example.com", "sans": ["dns:*.example.com"]}, policy)
    assert violations[0].rule == "subject.value.denied"
