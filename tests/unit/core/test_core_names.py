"""gateway.core.names: `*` patterns, DNS wildcard rules (RFC 6125 §6.4.3), IP ranges."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.core import names


def p(*values: object, id: str) -> object:
    return pytest.param(*values, id=id)


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        p("a.example.com", "*.example.com", True, id="ok/one-label"),
        p("www-1.example.com", "*.example.com", True, id="ok/hyphen-digits"),
        p("a.b.example.com", "*.example.com", False, id="fail/two-labels"),
        p("example.com", "*.example.com", False, id="fail/apex"),
        p("aexample.com", "*.example.com", False, id="fail/suffix-without-dot"),
        p("a.example.com.evil", "*.example.com", False, id="fail/longer"),
        p("localhost", "localhost", True, id="ok/exact"),
        p("localhost", "*.localhost", False, id="fail/apex-localhost"),
        p("app.localhost", "*.localhost", True, id="ok/sub-localhost"),
        p("x.test", "*.test", True, id="ok/test-tld"),
        p("test", "*.test", False, id="fail/bare-tld"),
        p("api.example.com", "api*.example.com", False, id="fail/partial-needs-one-more-char"),
        p("api1.example.com", "api*.example.com", True, id="ok/partial"),
        p("app.eu.example.com", "app.*.example.com", True, id="ok/inner-star"),
        p("app.example.com", "app.*.example.com", False, id="fail/inner-star-missing"),
        p("node", "*", True, id="ok/star-single-label"),
        p("a.b", "*", False, id="fail/star-single-label-only"),
        # A wildcard SAN needs a whole-label `*` in the same position of the pattern.
        p("*.example.com", "*.example.com", True, id="ok/wildcard-literal"),
        p("*.example.com", "*.*.com", True, id="ok/wildcard-covered"),
        p("*.example.com", "www.example.com", False, id="fail/wildcard-vs-name"),
        p("*.example.com", "w*.example.com", False, id="fail/wildcard-vs-partial"),
        p("*.a.example.com", "*.example.com", False, id="fail/wildcard-deeper"),
        p("*.localhost", "*.localhost", True, id="ok/wildcard-localhost"),
        p("*.test", "*.test", True, id="ok/wildcard-test"),
    ],
)
def test_dns_allowed_by(name: str, pattern: str, expected: bool) -> None:
    assert names.dns_allowed_by(name, pattern) is expected


@pytest.mark.parametrize(
    ("pattern"),
    [
        p("*.EXAMPLE.com", id="ok/upper-pattern"),
        p("*.example.com.", id="ok/trailing-dot-pattern"),
    ],
)
def test_dns_pattern_normalized(pattern: str) -> None:
    assert names.dns_allowed_by("a.example.com", pattern)


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        p("secret.example.com", "secret.example.com", True, id="fail/exact"),
        p("*.example.com", "secret.example.com", True, id="fail/wildcard-covers-denied"),
        p("*.example.com", "s*.example.com", True, id="fail/wildcard-covers-partial"),
        p("*.example.com", "secret.other.com", False, id="ok/unrelated"),
        p("*.example.com", "a.b.example.com", False, id="ok/deeper-not-covered"),
        p("public.example.com", "secret.example.com", False, id="ok/other-name"),
    ],
)
def test_dns_denied_by(name: str, pattern: str, expected: bool) -> None:
    assert names.dns_denied_by(name, pattern) is expected


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        p("example.com", True, id="ok/plain"),
        p("localhost", True, id="ok/single-label"),
        p("1.example.com", True, id="ok/digit-start-rfc1123"),
        p("xn--bcher-kva.example", True, id="ok/a-label"),
        p("*.example.com", True, id="ok/wildcard"),
        p("*.test", False, id="fail/wildcard-one-label-after"),
        p("", False, id="fail/empty"),
        p("*", False, id="fail/bare-wildcard"),
        p("f*.example.com", False, id="fail/partial-wildcard"),
        p("a.*.example.com", False, id="fail/inner-wildcard"),
        p("*.*.example.com", False, id="fail/double-wildcard"),
        p("a..example.com", False, id="fail/empty-label"),
        p("-a.example.com", False, id="fail/leading-hyphen"),
        p("a-.example.com", False, id="fail/trailing-hyphen"),
        p("under_score.example.com", False, id="fail/underscore"),
        p("bücher.example", False, id="fail/u-label"),
        p("a" * 64 + ".example.com", False, id="fail/label-too-long"),
        p(".".join(["a" * 60] * 5), False, id="fail/name-too-long"),
        p("exa mple.com", False, id="fail/space"),
    ],
)
def test_dns_syntax(name: str, ok: bool) -> None:
    assert (names.dns_syntax_problem(name) is None) is ok


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        p("WWW.Example.COM.", "www.example.com", id="ok/case-and-dot"),
        p("a.test", "a.test", id="ok/unchanged"),
    ],
)
def test_normalize_dns(raw: str, normalized: str) -> None:
    assert names.normalize_dns(raw) == normalized


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        p("Example Corp", "example*", True, id="ok/case-insensitive-prefix"),
        p("anything", "*", True, id="ok/star"),
        p("", "*", True, id="ok/star-empty"),
        p("a.b", "a?b", False, id="fail/no-question-mark-wildcard"),
        p("a?b", "a?b", True, id="ok/question-mark-literal"),
        p("a[b]", "a[b]", True, id="ok/brackets-literal"),
        p("ops@example.com", "*@example.com", True, id="ok/email"),
        p("ops@evil.com", "*@example.com", False, id="fail/email"),
        p("line1\nline2", "*", True, id="ok/newline"),
    ],
)
def test_glob_match(value: str, pattern: str, expected: bool) -> None:
    assert names.glob_match(value, pattern) is expected


@pytest.mark.parametrize(
    ("address", "entries", "expected"),
    [
        p("127.0.0.1", ["127.0.0.0/8"], "127.0.0.0/8", id="ok/v4-cidr"),
        p("127.255.255.254", ["127.0.0.0/8"], "127.0.0.0/8", id="ok/v4-edge"),
        p("128.0.0.1", ["127.0.0.0/8"], None, id="fail/v4-outside"),
        p("10.1.2.3", ["10.1.2.3"], "10.1.2.3/32", id="ok/v4-single"),
        p("::1", ["::1/128"], "::1/128", id="ok/v6-loopback"),
        p("::2", ["::1/128"], None, id="fail/v6-outside"),
        p("2001:db8::42", ["2001:db8::/32"], "2001:db8::/32", id="ok/v6-cidr"),
        p("2001:db9::1", ["2001:db8::/32"], None, id="fail/v6-cidr"),
        p("fd00::1", ["fd00::/8", "127.0.0.0/8"], "fd00::/8", id="ok/v6-mixed-list"),
        p("::ffff:127.0.0.1", ["127.0.0.0/8"], None, id="fail/v4-mapped-not-v4"),
        p("::1", ["0.0.0.0/0"], None, id="fail/v6-vs-v4-any"),
        p("127.0.0.1", ["::/0"], None, id="fail/v4-vs-v6-any"),
        p("127.0.0.1", ["not-an-ip", "127.0.0.1/8"], "127.0.0.0/8", id="ok/skips-bad-entries"),
    ],
)
def test_ip_in_any(address: str, entries: list[str], expected: str | None) -> None:
    hit = names.ip_in_any(ip_address(address), names.parse_networks(entries))
    assert (str(hit) if hit else None) == expected


def test_ip_deny_sees_through_v4_mapped() -> None:
    nets = names.parse_networks(["10.0.0.0/8"])
    assert names.ip_deny_hit(ip_address("::ffff:10.0.0.1"), nets) is not None
    assert names.ip_deny_hit(ip_address("::ffff:11.0.0.1"), nets) is None


@pytest.mark.parametrize(
    ("policy_name", "oid"),
    [
        p("CN", NameOID.COMMON_NAME, id="ok/short"),
        p("cn", NameOID.COMMON_NAME, id="ok/lower"),
        p("commonName", NameOID.COMMON_NAME, id="ok/long"),
        p("2.5.4.3", NameOID.COMMON_NAME, id="ok/dotted"),
        p("serialNumber", NameOID.SERIAL_NUMBER, id="ok/serial"),
        p("E", NameOID.EMAIL_ADDRESS, id="ok/email-alias"),
        p("emailAddress", NameOID.EMAIL_ADDRESS, id="ok/email"),
        p("DC", NameOID.DOMAIN_COMPONENT, id="ok/dc"),
        p("1.3.6.1.4.1.99999.1", None, id="ok/unknown-dotted"),
    ],
)
def test_attribute_names(policy_name: str, oid: object) -> None:
    target = oid if isinstance(oid, x509.ObjectIdentifier) else x509.ObjectIdentifier(policy_name)
    csr_side = names.canonical_attribute(names.attribute_name(target))
    assert names.canonical_attribute(policy_name) == csr_side
