"""EST serverkeygen makes a key of the CSR's type where the policy accepts it, else the
profile's default (RFC 7030 §4.4 leaves the type to the server; libest's estclient sends
an RSA-2048 CSR and refuses the P-256 key it used to get back), and csrattrs names the
profile's preferred type (§4.5.2)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tests.integration.est.est_helpers import NEW, EstGateway, b64, keygen_parts


def csr_with(key: Any, cn: str = "keygen.example.com") -> bytes:
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


def describe(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}[key.curve.name]
    return "ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else type(key).__name__


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: rsa.generate_private_key(65537, 2048), "rsa-2048"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ec-p384"),
        (ed25519.Ed25519PrivateKey.generate, "ed25519"),
        # Below the policy's minimum RSA size, or a curve with no key type: the default.
        (lambda: rsa.generate_private_key(65537, 1024), "ec-p256"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "ec-p256"),
    ],
    ids=["ok/rsa-2048", "ok/p384", "ok/ed25519", "ok/rsa-1024-default", "ok/p521-default"],
)
async def test_ok_key_of_the_csr_type(est_gw: EstGateway, make: Any, expected: str) -> None:
    device_key = make()
    status, headers, body = await est_gw.post(
        "serverkeygen", b64(csr_with(device_key)), auth=est_gw.basic
    )
    assert status == 200, body
    key, cert = keygen_parts(headers, body)
    assert describe(key) == expected
    assert cert.public_key() == key.public_key()
    assert cert.public_key() != device_key.public_key()


async def test_ok_policy_refusing_the_csr_type_gets_the_default(est_gw: EstGateway) -> None:
    profile = await est_gw.api("GET", f"/api/v1/profiles/{est_gw.bootstrap['profile_id']}")
    policy = await est_gw.api("GET", f"/api/v1/policies/{profile['policy_id']}")
    rules = {**policy["rules"], "key_algorithms": ["ec"]}
    body = {"name": policy["name"], "rules": rules}
    await est_gw.api("PUT", f"/api/v1/policies/{policy['id']}", body)
    rsa_key = rsa.generate_private_key(65537, 2048)
    status, headers, body = await est_gw.post(
        "serverkeygen", b64(csr_with(rsa_key)), auth=est_gw.basic
    )
    assert status == 200, body
    assert describe(keygen_parts(headers, body)[0]) == "ec-p256"


async def test_ok_csrattrs_names_the_profile_type(est_gw: EstGateway) -> None:
    profile_id = est_gw.bootstrap["profile_id"]
    await est_gw.api("PATCH", f"/api/v1/profiles/{profile_id}", {"default_key_type": "rsa-3072"})
    resp = await est_gw.client.get(f"{NEW}/csrattrs")
    assert resp.status == 200
    dumped = core.Sequence.load(base64.b64decode(b"".join((await resp.read()).split()))).dump()
    assert bytes(core.ObjectIdentifier("1.2.840.113549.1.1.1").dump()) in dumped  # rsaEncryption
    assert bytes(core.Integer(3072).dump()) in dumped
