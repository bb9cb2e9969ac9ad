"""Issuance through the REST API, checked on the certificate that comes back."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.helpers.data import read_text
from tests.helpers.x509util import load_cert, make_csr, openssl_verify, san_values


async def test_ok_issue_from_csr_chains_to_root(gateway, tmp_path: Path) -> None:
    csr, key = make_csr("app.localhost", ["app.localhost", "127.0.0.1"])
    data = await gateway.post(gateway.issue_path(), {"csr": csr}, status=201)
    cert = load_cert(data["certificate_pem"])
    assert san_values(cert) == {"app.localhost", "127.0.0.1"}
    assert cert.public_key() == key.public_key()  # type: ignore[attr-defined]
    assert format(cert.serial_number, "x") == data["serial"]
    assert cert.serial_number.bit_length() >= 128
    # Validity: the profile's 90 days.
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=89) < lifetime <= timedelta(days=90, minutes=10)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl_url = cdp[0].full_name[0].value  # type: ignore[index]
    assert crl_url == f"http://127.0.0.1:8080/pki/crl/{data['ca_id']}.crl"
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location.value == f"http://127.0.0.1:8080/pki/ca/{data['ca_id']}.crt"
    root = (gateway.config.home / "root-ca.pem").read_text()
    result = openssl_verify(tmp_path, root, data["chain_pem"], data["certificate_pem"])
    assert result.returncode == 0, result.stdout + result.stderr
    # Stored: GET returns the same certificate.
    got = await gateway.get(f"/api/v1/applications/demo/certificates/{data['id']}")
    assert got["certificate_pem"] == data["certificate_pem"]
    assert got["status"] == "active"


@pytest.mark.parametrize("kind", ["ec", "rsa", "ed25519"], ids=["ok/ec", "ok/rsa", "ok/ed25519"])
async def test_ok_key_types(gateway, kind: str) -> None:
    csr, _ = make_csr("k.test", kind=kind)
    data = await gateway.post(gateway.issue_path(), {"csr": csr}, status=201)
    assert data["key_type"].startswith({"ec": "ec-p256", "rsa": "rsa-", "ed25519": "ed25519"}[kind])
    cert = load_cert(data["certificate_pem"])
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    # RFC 8813: EC/EdDSA keys do not get keyEncipherment.
    assert ku.key_encipherment is (kind == "rsa")


async def test_ok_server_side_keygen_with_passphrase(gateway) -> None:
    data = await gateway.post(
        gateway.issue_path(),
        {
            "key_type": "rsa-2048",
            "subject": {"CN": "gen.example.com", "O": "Acme"},
            "sans": ["gen.example.com", "ip:127.0.0.2"],
            "passphrase": "correct horse",
        },
        status=201,
    )
    assert "ENCRYPTED PRIVATE KEY" in data["private_key_pem"]
    key = serialization.load_pem_private_key(data["private_key_pem"].encode(), b"correct horse")
    cert = load_cert(data["certificate_pem"])
    assert cert.public_key() == key.public_key()
    assert san_values(cert) == {"gen.example.com", "127.0.0.2"}
    # Shown once: a GET never returns the key.
    got = await gateway.get(f"/api/v1/applications/demo/certificates/{data['id']}")
    assert "private_key_pem" not in got


async def test_ok_concurrent_issuance_unique_serials(gateway) -> None:
    csrs = [make_csr(f"c{i}.test")[0] for i in range(20)]
    results = await asyncio.gather(
        *(gateway.post(gateway.issue_path(), {"csr": c}, status=201) for c in csrs)
    )
    serials = {r["serial"] for r in results}
    assert len(serials) == 20
    listing = await gateway.get("/api/v1/applications/demo/certificates?limit=100")
    assert listing["total"] == 20


async def test_fail_policy_denial_lists_every_rule(gateway) -> None:
    csr, _ = make_csr("evil.com", ["evil.com", "10.0.0.1"])
    data = await gateway.post(gateway.issue_path(), {"csr": csr}, status=403)
    assert data["error"]["code"] == "policy_denied"
    identifiers = {v["identifier"] for v in data["error"]["violations"]}
    assert {"evil.com", "10.0.0.1"} <= identifiers
    listing = await gateway.get("/api/v1/applications/demo/certificates")
    assert listing["total"] == 0


@pytest.mark.parametrize(
    "body, code",
    [
        ({"csr": "not a csr"}, "bad_csr"),
        ({"csr": read_text("csr", "garbage", "pem-body-truncated.pem")}, "bad_csr"),
        ({"key_type": "dsa-1024", "sans": ["a.test"]}, "invalid_input"),
        ({"sans": ["a.test"], "validity_days": 9999}, "policy_denied"),
        ({"key_type": "ec-p256"}, "invalid_input"),
        ({"csr": 12}, "invalid_input"),
    ],
    ids=[
        "fail/garbage",
        "fail/bad-der",
        "fail/key-type",
        "fail/validity",
        "fail/no-names",
        "fail/type",
    ],
)
async def test_fail_bad_requests(gateway, body: dict, code: str) -> None:
    data = await gateway.post(gateway.issue_path(), body)
    assert data["error"]["code"] == code, data


async def test_fail_tampered_csr_signature(gateway) -> None:
    csr_pem, _ = make_csr("t.test")
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature value

    pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der)).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
    data = await gateway.post(gateway.issue_path(), {"csr": pem}, status=400)
    assert data["error"]["code"] == "bad_csr"


async def test_fail_unknown_application_and_profile(gateway) -> None:
    csr, _ = make_csr("a.test")
    data = await gateway.post(gateway.issue_path(app="nope"), {"csr": csr}, status=404)
    assert data["error"]["code"] == "not_found"
    data = await gateway.post(gateway.issue_path(profile="nope"), {"csr": csr}, status=404)
    assert data["error"]["code"] == "not_found"


async def test_fail_disabled_ca(gateway) -> None:
    ca_id = (await gateway.get(f"/api/v1/profiles/{gateway.bootstrap['profile_id']}"))["ca_id"]
    await gateway.post(f"/api/v1/cas/{ca_id}/disable", {}, status=200)
    csr, _ = make_csr("a.test")
    data = await gateway.post(gateway.issue_path(), {"csr": csr}, status=409)
    assert data["error"]["code"] == "ca_unavailable"
    await gateway.post(f"/api/v1/cas/{ca_id}/enable", {}, status=200)
    await gateway.post(gateway.issue_path(), {"csr": csr}, status=201)


async def test_fail_oversized_body(gateway) -> None:
    resp = await gateway.client.post(
        gateway.issue_path(),
        data=b"{" + b" " * (gateway.config.server.max_body_bytes + 10) + b"}",
        headers={**gateway.auth, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"


async def test_fail_wrong_content_type_and_bad_json(gateway) -> None:
    resp = await gateway.client.post(gateway.issue_path(), data=b"csr=1", headers=gateway.auth)
    assert resp.status == 415
    resp = await gateway.client.post(
        gateway.issue_path(),
        data=b"{nope",
        headers={**gateway.auth, "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_input"


async def test_ok_list_filters_and_pagination(gateway) -> None:
    for name in ("alpha.test", "beta.test", "gamma.test"):
        await gateway.post(gateway.issue_path(), {"csr": make_csr(name)[0]}, status=201)
    page = await gateway.get("/api/v1/applications/demo/certificates?limit=2&offset=0")
    assert page["total"] == 3 and len(page["items"]) == 2
    page2 = await gateway.get("/api/v1/applications/demo/certificates?limit=2&offset=2")
    assert len(page2["items"]) == 1
    found = await gateway.get("/api/v1/applications/demo/certificates?q=beta")
    assert [c["common_name"] for c in found["items"]] == ["beta.test"]
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    expiring = await gateway.get(
        "/api/v1/applications/demo/certificates?expiring_before=" + soon.replace("+00:00", "Z")
    )
    assert expiring["total"] == 0
    bad = await gateway.get("/api/v1/applications/demo/certificates?status=bogus", status=400)
    assert bad["error"]["code"] == "invalid_input"


async def test_ok_renew_new_key_and_csr(gateway) -> None:
    csr, key = make_csr("r.test", ["r.test"])
    first = await gateway.post(gateway.issue_path(), {"csr": csr}, status=201)
    renewed = await gateway.post(
        f"/api/v1/applications/demo/certificates/{first['id']}/renew", {}, status=201
    )
    assert renewed["renewed_from"] == first["id"]
    assert renewed["sans"] == first["sans"] and "private_key_pem" in renewed
    # Same key, via a new CSR.
    same, _ = make_csr("r.test", ["r.test"], key=key)
    again = await gateway.post(
        f"/api/v1/applications/demo/certificates/{first['id']}/renew", {"csr": same}, status=201
    )
    assert load_cert(again["certificate_pem"]).public_key() == key.public_key()  # type: ignore[attr-defined]
    other, _ = make_csr("other.test", ["other.test"])
    bad = await gateway.post(
        f"/api/v1/applications/demo/certificates/{first['id']}/renew", {"csr": other}, status=400
    )
    assert bad["error"]["code"] == "renewal_mismatch"
