"""Subject CNs through the REST API on the demo TLS profile: the CN rule matches label by
label like the DNS rule, odd names are refused, and the CN always ends up among the SANs."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers.x509util import load_cert, san_values


def csr_pem(cn: str, sans: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    names = [x509.DNSName(s) for s in sans]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("cn", "rule"),
    [
        ("bank.example.org\0.test", "subject.value.invalid"),
        ("evil.example.org/.test", "subject.cn.invalid"),
        ("a b.test", "subject.cn.invalid"),
        ("-.test", "subject.cn.invalid"),
        ("127.evil.org", "subject.value.not_allowed"),
    ],
    ids=["fail/nul", "fail/slash", "fail/space", "fail/hyphen", "fail/ip-pattern-on-host"],
)
async def test_fail_cn_refused(gateway, cn: str, rule: str) -> None:
    data = await gateway.post(gateway.issue_path(), {"csr": csr_pem(cn, ["ok.test"])}, status=403)
    assert data["error"]["code"] == "policy_denied"
    assert rule in [v["rule"] for v in data["error"]["violations"]]
    listing = await gateway.get("/api/v1/applications/demo/certificates")
    assert listing["total"] == 0


async def test_ok_cn_missing_from_sans_is_added(gateway) -> None:
    data = await gateway.post(
        gateway.issue_path(), {"csr": csr_pem("app.localhost", ["other.test"])}, status=201
    )
    assert san_values(load_cert(data["certificate_pem"])) == {"other.test", "app.localhost"}


async def test_ok_loopback_ip_cn(gateway) -> None:
    data = await gateway.post(gateway.issue_path(), {"csr": csr_pem("127.0.0.1", [])}, status=201)
    assert san_values(load_cert(data["certificate_pem"])) == {"127.0.0.1"}
