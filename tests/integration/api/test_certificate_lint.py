"""Certificates that would fail lint are not issued (trailing-dot SAN, a wildcard directly
under one label, more than 100 SANs), repeated SANs are issued once, and every certificate
the REST API issues passes pkilint's RFC 5280 linter without an error."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.core.names import MAX_SANS
from tests.helpers.lint import rfc5280_errors
from tests.helpers.x509util import load_cert, make_csr


def csr_pem(cn: str | None, sans: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def san_list(pem: str) -> list[str]:
    ext = load_cert(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return [str(name.value) for name in ext.value]


@pytest.mark.parametrize(
    ("sans", "rule"),
    [
        (["a.test."], "san.dns.invalid"),
        (["*.test"], "san.dns.invalid"),
        ([f"n{i}.test" for i in range(MAX_SANS + 1)], "san.too_many"),
    ],
    ids=["fail/trailing-dot", "fail/wildcard-under-one-label", "fail/too-many"],
)
async def test_fail_unlintable_names_refused(gateway, sans: list[str], rule: str) -> None:
    data = await gateway.post(gateway.issue_path(), {"csr": csr_pem(None, sans)}, status=403)
    assert data["error"]["code"] == "policy_denied"
    assert [v["rule"] for v in data["error"]["violations"]] == [rule]
    listing = await gateway.get("/api/v1/applications/demo/certificates")
    assert listing["total"] == 0


async def test_ok_repeated_sans_issued_once(gateway) -> None:
    csr = csr_pem("a.test", ["a.test", "A.TEST", "b.test", "a.test", "127.0.0.1", "127.0.0.1"])
    data = await gateway.post(gateway.issue_path(), {"csr": csr}, status=201)
    assert san_list(data["certificate_pem"]) == ["a.test", "b.test", "127.0.0.1"]


async def test_ok_max_sans_issued(gateway) -> None:
    sans = [f"n{i}.test" for i in range(MAX_SANS)]
    data = await gateway.post(gateway.issue_path(), {"csr": csr_pem(None, sans)}, status=201)
    assert len(san_list(data["certificate_pem"])) == MAX_SANS


@pytest.mark.parametrize(
    "body",
    [
        {"csr": make_csr("app.localhost", ["app.localhost", "127.0.0.1", "::1"])[0]},
        {"csr": make_csr("cn-only.test", [])[0]},
        # No wildcard here: RFC 5280's preferred name syntax has none (RFC 6125 §6.4.3 adds
        # it), so pkilint's RFC 5280 linter flags every wildcard dNSName.
        {"csr": make_csr(None, ["a.example.com", "b.example.com"], kind="rsa")[0]},
        {"key_type": "rsa-2048", "subject": {"CN": "gen.test", "O": "Acme"}, "sans": ["gen.test"]},
        {"key_type": "ed25519", "sans": ["ed.test"]},
    ],
    ids=["ok/csr-dns-ip", "ok/cn-only", "ok/rsa-san-only", "ok/keygen-rsa", "ok/keygen-ed25519"],
)
async def test_ok_issued_certificates_pass_rfc5280_lint(gateway, body: dict[str, object]) -> None:
    data = await gateway.post(gateway.issue_path(), body, status=201)
    assert rfc5280_errors(data["certificate_pem"]) == []
