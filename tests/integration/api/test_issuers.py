"""Issuers a legacy project can hold (issue 12, item 2), through the REST API: external CAs
(a certificate only, no key here: issuance answers ca_external) and self-signed profiles
(each certificate signed by its own, server-generated key)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.helpers.external_ca import ca_certificate_pem
from tests.helpers.x509util import load_cert, make_csr, san_values
from tests.integration.api.conftest import Gateway


async def demo_policy_id(gw: Gateway) -> str:
    """The demo profile's policy (allows *.test, *.localhost, *.example.com)."""
    profile = await gw.get(f"/api/v1/profiles/{gw.bootstrap['profile_id']}")
    return str(profile["policy_id"])


async def attached(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """A new profile attached to the demo application (API enrollment on)."""
    profile = await gw.post(
        "/api/v1/profiles", {"policy_id": await demo_policy_id(gw), **body}, status=201
    )
    await gw.post("/api/v1/applications/demo/profiles", {"profile": profile["slug"]}, status=201)
    return dict(profile)


async def external_ca(gw: Gateway, name: str = "partner", **extra: Any) -> dict[str, Any]:
    body = {"kind": "external", "name": name, "certificate_pem": ca_certificate_pem(), **extra}
    return dict(await gw.post("/api/v1/cas", body, status=201))


async def certificate_count(gw: Gateway) -> int:
    return int((await gw.get("/api/v1/applications/demo/certificates?limit=1"))["total"])


# ---- external CAs -------------------------------------------------------------------------


async def test_ok_external_ca_is_stored_without_a_key(gateway: Gateway) -> None:
    pem = ca_certificate_pem("Partner Issuing CA")
    ca = await gateway.post(
        "/api/v1/cas",
        {"kind": "external", "name": "partner", "certificate_pem": pem, "exportable": False},
        status=201,
    )
    assert ca["kind"] == "external" and ca["exportable"] is False
    assert ca["subject"] == "CN=Partner Issuing CA" and ca["status"] == "active"
    assert load_cert(ca["certificate_pem"]) == load_cert(pem)
    async with gateway.services.db.transaction(read_only=True) as tx:
        stored = await tx.cas.get(uuid.UUID(ca["id"]))
    assert stored is not None and stored.encrypted_key == b"" and not stored.holds_key
    listed = await gateway.get("/api/v1/cas")
    assert ca["id"] in {c["id"] for c in listed["items"]}
    disabled = await gateway.post(f"/api/v1/cas/{ca['id']}/disable", {}, status=200)
    assert disabled["status"] == "disabled"
    enabled = await gateway.post(f"/api/v1/cas/{ca['id']}/enable", {}, status=200)
    assert enabled["status"] == "active"
    audit = await gateway.get("/api/v1/audit?action=ca.external_added")
    assert any(e["target_id"] == ca["id"] for e in audit["items"])


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        pytest.param(
            {"certificate_pem": ca_certificate_pem("leaf", ca=False)},
            "not a CA certificate",
            id="fail/leaf-certificate",
        ),
        pytest.param({}, "needs certificate_pem", id="fail/no-certificate"),
        pytest.param(
            {"certificate_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
            "",
            id="fail/garbage-certificate",
        ),
        pytest.param(
            {"certificate_pem": ca_certificate_pem(), "key_type": "ec-p256"},
            "no key_type",
            id="fail/key-type",
        ),
    ],
)
async def test_fail_external_ca_bad_input(
    gateway: Gateway, body: dict[str, Any], needle: str
) -> None:
    data = await gateway.post("/api/v1/cas", {"kind": "external", "name": "x", **body}, status=400)
    assert data["error"]["code"] == "invalid_input"
    assert needle in data["error"]["message"]


async def test_fail_certificate_pem_on_an_internal_ca(gateway: Gateway) -> None:
    data = await gateway.post(
        "/api/v1/cas",
        {"kind": "root", "name": "r", "certificate_pem": ca_certificate_pem()},
        status=400,
    )
    assert "cas/import" in data["error"]["message"]


async def test_fail_intermediate_under_an_external_parent(gateway: Gateway) -> None:
    parent = await external_ca(gateway)
    data = await gateway.post(
        "/api/v1/cas",
        {"kind": "intermediate", "name": "child", "parent_id": parent["id"]},
        status=400,
    )
    assert "external" in data["error"]["message"]
    names = {c["name"] for c in (await gateway.get("/api/v1/cas"))["items"]}
    assert "child" not in names


async def test_ok_exportable_false_is_stored_for_every_kind(gateway: Gateway) -> None:
    root = await gateway.post(
        "/api/v1/cas", {"kind": "root", "name": "hsm-root", "exportable": False}, status=201
    )
    inter = await gateway.post(
        "/api/v1/cas",
        {"kind": "intermediate", "name": "hsm-i", "parent_id": root["id"], "exportable": False},
        status=201,
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Imported Root")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    imported = await gateway.post(
        "/api/v1/cas/import",
        {
            "name": "imported",
            "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "private_key_pem": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "exportable": False,
        },
        status=201,
    )
    default = await gateway.post("/api/v1/cas", {"kind": "root", "name": "plain"}, status=201)
    assert [root["exportable"], inter["exportable"], imported["exportable"]] == [False] * 3
    assert default["exportable"] is True
    for ca in (root, inter, imported):
        assert (await gateway.get(f"/api/v1/cas/{ca['id']}"))["exportable"] is False


async def test_fail_issuance_through_an_external_ca_answers_ca_external(gateway: Gateway) -> None:
    ca = await external_ca(gateway)
    profile = await attached(gateway, {"slug": "partner-web", "ca_id": ca["id"]})
    assert profile["ca_id"] == ca["id"] and profile["issuer_type"] == "ca"
    before = await certificate_count(gateway)
    csr, _ = make_csr("web.example.com")
    for body in ({"csr": csr}, {"subject": {"CN": "web.example.com"}, "sans": ["web.example.com"]}):
        data = await gateway.post(gateway.issue_path(profile="partner-web"), body, status=409)
        assert data["error"]["code"] == "ca_external"
        assert "held outside certgate" in data["error"]["message"]
    assert await certificate_count(gateway) == before  # nothing stored


async def test_fail_crl_of_an_external_ca(gateway: Gateway) -> None:
    ca = await external_ca(gateway)
    resp = await gateway.client.get(f"/pki/crl/{ca['id']}.crl")
    assert resp.status == 404
    error = (await resp.json())["error"]
    assert error["code"] == "ca_external" and "cannot sign its CRL" in error["message"]
    # Its certificate is still served (AIA caIssuers form).
    resp = await gateway.client.get(f"/pki/ca/{ca['id']}.crt")
    assert resp.status == 200
    assert x509.load_der_x509_certificate(await resp.read()) == load_cert(ca["certificate_pem"])


# ---- self-signed profiles -----------------------------------------------------------------


async def self_signed(gw: Gateway, slug: str = "self", **extra: Any) -> dict[str, Any]:
    return await attached(gw, {"slug": slug, "issuer_type": "self-signed", **extra})


async def test_ok_self_signed_issuance_with_a_generated_key(
    gateway: Gateway, tmp_path: Path
) -> None:
    profile = await self_signed(
        gateway, validity_days=30, renew_before_days=7, key_usages=["digital_signature"]
    )
    assert profile["issuer_type"] == "self-signed" and profile["ca_id"] is None
    data = await gateway.post(
        gateway.issue_path(profile="self"),
        {
            "key_type": "ec-p256",
            "subject": {"CN": "box.example.com", "O": "Acme"},
            "sans": ["box.example.com", "ip:127.0.0.9"],
        },
        status=201,
    )
    cert = load_cert(data["certificate_pem"])
    key = serialization.load_pem_private_key(data["private_key_pem"].encode(), None)
    assert cert.public_key() == key.public_key()
    # Signed by its own key: issuer = subject, and the signature verifies under its key.
    assert cert.issuer == cert.subject
    assert cert.subject.rfc4514_string() == "O=Acme,CN=box.example.com"
    cert.verify_directly_issued_by(cert)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    # The policy and profile decide as for any certificate.
    assert san_values(cert) == {"box.example.com", "127.0.0.9"}
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=29) < lifetime <= timedelta(days=30, minutes=10)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert not ku.value.key_encipherment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False
    # No CA vouches for it: no CRL distribution point, no caIssuers URL, no chain.
    for absent in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(absent)
    assert data["chain_pem"] == "" and data["ca_id"] is None
    got = await gateway.get(f"/api/v1/applications/demo/certificates/{data['id']}")
    assert got["ca_id"] is None and got["certificate_pem"] == data["certificate_pem"]
    # Revocation works (no CRL to rebuild).
    revoked = await gateway.post(
        f"/api/v1/applications/demo/certificates/{data['id']}/revoke",
        {"reason": "key_compromise"},
        status=200,
    )
    assert revoked["status"] == "revoked"


async def test_ok_self_signed_renewal_generates_a_new_self_signed_certificate(
    gateway: Gateway,
) -> None:
    await self_signed(gateway)
    first = await gateway.post(
        gateway.issue_path(profile="self"),
        {"subject": {"CN": "r.example.com"}, "sans": ["r.example.com"]},
        status=201,
    )
    renewed = await gateway.post(
        f"/api/v1/applications/demo/certificates/{first['id']}/renew", {}, status=201
    )
    cert = load_cert(renewed["certificate_pem"])
    assert cert.issuer == cert.subject and renewed["renewed_from"] == first["id"]
    cert.verify_directly_issued_by(cert)


async def test_fail_self_signed_refuses_a_csr(gateway: Gateway) -> None:
    await self_signed(gateway)
    before = await certificate_count(gateway)
    csr, _ = make_csr("box.example.com")
    data = await gateway.post(gateway.issue_path(profile="self"), {"csr": csr}, status=400)
    assert data["error"]["code"] == "self_signed_needs_key"
    assert "is self-signed" in data["error"]["message"]
    assert await certificate_count(gateway) == before


async def test_fail_self_signed_policy_still_applies(gateway: Gateway) -> None:
    await self_signed(gateway)
    data = await gateway.post(
        gateway.issue_path(profile="self"),
        {"subject": {"CN": "evil.invalid"}, "sans": ["evil.invalid"]},
        status=403,
    )
    assert data["error"]["code"] == "policy_denied"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        pytest.param(
            {"issuer_type": "self-signed", "ca_id": "use-demo-ca"},
            400,
            "not both",
            id="fail/ca-and-self-signed",
        ),
        pytest.param({}, 400, "ca_id is required", id="fail/no-ca-no-issuer-type"),
        pytest.param({"issuer_type": "ca"}, 400, "ca_id is required", id="fail/ca-without-id"),
    ],
)
async def test_fail_profile_issuer_choice(
    gateway: Gateway, body: dict[str, Any], status: int, needle: str
) -> None:
    demo = await gateway.get(f"/api/v1/profiles/{gateway.bootstrap['profile_id']}")
    if body.get("ca_id") == "use-demo-ca":
        body = {**body, "ca_id": demo["ca_id"]}
    data = await gateway.post(
        "/api/v1/profiles",
        {"slug": "p-x", "policy_id": demo["policy_id"], **body},
        status=status,
    )
    assert needle in data["error"]["message"]


async def test_fail_profile_issuer_type_is_fixed(gateway: Gateway) -> None:
    profile = await self_signed(gateway)
    resp = await gateway.client.patch(
        f"/api/v1/profiles/{profile['id']}", json={"issuer_type": "ca"}, headers=gateway.auth
    )
    assert resp.status == 400


async def test_ok_legacy_project_holds_external_ca_and_self_signed_profile(
    gateway: Gateway,
) -> None:
    project = await gateway.post("/api/v1/projects", {"name": "old-cm"}, status=201)
    pid = project["id"]
    policy = await gateway.post(
        "/api/v1/policies", {"name": "legacy", "project_id": pid}, status=201
    )
    ca = await gateway.post(
        "/api/v1/cas",
        {
            "kind": "external",
            "name": "partner",
            "certificate_pem": ca_certificate_pem(),
            "project_id": pid,
        },
        status=201,
    )
    assert ca["project_id"] == pid
    on_external = await gateway.post(
        "/api/v1/profiles",
        {"slug": "partner-web", "ca_id": ca["id"], "policy_id": policy["id"], "project_id": pid},
        status=201,
    )
    own = await gateway.post(
        "/api/v1/profiles",
        {
            "slug": "self",
            "issuer_type": "self-signed",
            "policy_id": policy["id"],
            "project_id": pid,
        },
        status=201,
    )
    assert on_external["project_id"] == own["project_id"] == pid
    assert [c["id"] for c in (await gateway.get(f"/api/v1/cas?project_id={pid}"))["items"]] == [
        ca["id"]
    ]
    slugs = {p["slug"] for p in (await gateway.get(f"/api/v1/profiles?project_id={pid}"))["items"]}
    assert slugs == {"partner-web", "self"}
    # The active project's CA list does not show them.
    assert ca["id"] not in {c["id"] for c in (await gateway.get("/api/v1/cas"))["items"]}
