"""Key custody (issue 14, item 1): a server-generated key is kept, encrypted under the
project's KMS key and bound to its certificate, unless "store_key": false; Operators read it
back (audited), optionally encrypted under a passphrase; a CSR-issued certificate has none.
On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.pki.kms import KmsError, certificate_key_aad
from gateway.services import key_custody
from tests.helpers.x509util import make_csr
from tests.integration.api.conftest import Gateway

CERTS = "/api/v1/applications/demo/certificates"


def _key_path(cert_id: str) -> str:
    return f"{CERTS}/{cert_id}/private-key"


async def _read(
    gateway: Gateway,
    cert_id: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    auth = {"Authorization": f"Bearer {token}"} if token else gateway.auth
    resp = await gateway.client.get(_key_path(cert_id), headers={**auth, **(headers or {})})
    return resp.status, await resp.json()


async def _user(gateway: Gateway, name: str, role: str) -> str:
    principal = await gateway.post("/api/v1/principals", {"name": name, "product_role": "member"})
    await gateway.post(
        "/api/v1/applications/demo/members",
        {"principal": principal["id"], "role": role},
        status=201,
    )
    token = await gateway.post(f"/api/v1/principals/{principal['id']}/tokens", {}, status=201)
    return str(token["token"])


def _public_der(key_or_cert: Any) -> bytes:
    return bytes(
        key_or_cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


async def test_ok_generated_key_is_kept_and_read_back(gateway: Gateway) -> None:
    issued = await gateway.post(
        gateway.issue_path(), {"key_type": "ec-p256", "sans": ["kept.test"]}, status=201
    )
    status, body = await _read(gateway, issued["id"])
    assert status == 200, body
    assert body["private_key_pem"] == issued["private_key_pem"]
    key = serialization.load_pem_private_key(body["private_key_pem"].encode(), None)
    cert = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    assert _public_der(key) == _public_der(cert)

    # Audited, and the audit event carries no key material.
    events = (await gateway.get("/api/v1/audit?action=certificate.private_key_read"))["items"]
    assert [e["target_id"] for e in events] == [issued["id"]]
    assert "PRIVATE KEY" not in str(events)


async def test_ok_passphrase_header_encrypts_pkcs8(gateway: Gateway) -> None:
    issued = await gateway.post(
        gateway.issue_path(), {"key_type": "rsa-2048", "sans": ["pass.test"]}, status=201
    )
    passphrase = "correct horse battery"
    status, body = await _read(
        gateway, issued["id"], headers={key_custody.PASSPHRASE_HEADER: passphrase}
    )
    assert status == 200, body
    pem = body["private_key_pem"]
    assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = serialization.load_pem_private_key(pem.encode(), passphrase.encode())
    cert = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    assert _public_der(key) == _public_der(cert)
    with pytest.raises((ValueError, TypeError)):
        serialization.load_pem_private_key(pem.encode(), b"wrong passphrase")
    events = (await gateway.get("/api/v1/audit?action=certificate.private_key_read"))["items"]
    assert passphrase not in str(events)


@pytest.mark.parametrize(
    "headers, query, code",
    [
        pytest.param(
            {key_custody.PASSPHRASE_HEADER: "short"}, "", "invalid_passphrase", id="fail/short"
        ),
        pytest.param({}, "?passphrase=longenough", "passphrase_in_url", id="fail/in-url"),
    ],
)
async def test_fail_bad_passphrase(
    gateway: Gateway, headers: dict[str, str], query: str, code: str
) -> None:
    issued = await gateway.post(gateway.issue_path(), {"sans": ["bad-pass.test"]}, status=201)
    resp = await gateway.client.get(
        _key_path(issued["id"]) + query, headers={**gateway.auth, **headers}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == code


async def test_fail_csr_issued_and_store_key_false_hold_no_key(gateway: Gateway) -> None:
    from_csr = await gateway.post(
        gateway.issue_path(), {"csr": make_csr("csr-key.test")[0]}, status=201
    )
    not_kept = await gateway.post(
        gateway.issue_path(), {"sans": ["not-kept.test"], "store_key": False}, status=201
    )
    assert not_kept["private_key_pem"]  # still handed over once, in the answer
    for cert_id in (from_csr["id"], not_kept["id"]):
        status, body = await _read(gateway, cert_id)
        assert status == 404
        assert body["error"]["code"] == "private_key_not_held"
    status, body = await _read(gateway, str(uuid.uuid4()))
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_fail_store_key_must_be_boolean(gateway: Gateway) -> None:
    body = await gateway.post(
        gateway.issue_path(), {"sans": ["x.test"], "store_key": "no"}, status=400
    )
    assert body["error"]["code"] == "invalid_input"


async def test_ok_operator_reads_auditor_may_not(gateway: Gateway) -> None:
    issued = await gateway.post(gateway.issue_path(), {"sans": ["roles.test"]}, status=201)
    operator = await _user(gateway, "key-operator", "operator")
    auditor = await _user(gateway, "key-auditor", "auditor")
    status, body = await _read(gateway, issued["id"], token=operator)
    assert status == 200 and body["private_key_pem"] == issued["private_key_pem"]
    status, _ = await _read(gateway, issued["id"], token=auditor)
    assert status == 403
    # The auditor still sees the certificate, just not its key.
    await gateway.get(f"{CERTS}/{issued['id']}", token=auditor)


async def test_ok_renewal_with_new_key_keeps_the_new_key(gateway: Gateway) -> None:
    issued = await gateway.post(gateway.issue_path(), {"sans": ["renew-key.test"]}, status=201)
    renewed = await gateway.post(f"{CERTS}/{issued['id']}/renew", {}, status=201)
    assert renewed["renewed_from"] == issued["id"]
    status, body = await _read(gateway, renewed["id"])
    assert status == 200 and body["private_key_pem"] == renewed["private_key_pem"]
    assert renewed["private_key_pem"] != issued["private_key_pem"]
    # A renewal with store_key false keeps nothing.
    again = await gateway.post(f"{CERTS}/{renewed['id']}/renew", {"store_key": False}, status=201)
    status, body = await _read(gateway, again["id"])
    assert status == 404 and body["error"]["code"] == "private_key_not_held"


async def test_ok_kept_encrypted_and_bound_to_its_certificate(gateway: Gateway) -> None:
    first = await gateway.post(gateway.issue_path(), {"sans": ["bound-1.test"]}, status=201)
    second = await gateway.post(gateway.issue_path(), {"sans": ["bound-2.test"]}, status=201)
    services = gateway.services
    async with services.db.transaction(read_only=True) as tx:
        secret = await tx.secrets.get_by_owner(
            key_custody.owner(uuid.UUID(first["id"])), key_custody.PURPOSE
        )
    assert secret is not None
    key = serialization.load_pem_private_key(first["private_key_pem"].encode(), None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert der not in secret.ciphertext  # sealed, not stored in the clear
    # Copied onto another certificate, the blob does not open (AAD = certificate id).
    with pytest.raises(KmsError):
        await services.kms.decrypt(
            secret.project_id, secret.ciphertext, certificate_key_aad(uuid.UUID(second["id"]))
        )
    assert (
        await services.kms.decrypt(
            secret.project_id, secret.ciphertext, certificate_key_aad(uuid.UUID(first["id"]))
        )
        == der
    )


async def test_ok_renew_key_sources(gateway: Gateway) -> None:
    issued = await gateway.post(gateway.issue_path(), {"sans": ["sources.test"]}, status=201)
    old_cert = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())

    # reuse: the kept key certified again, and kept for the new certificate too.
    reused = await gateway.post(
        f"{CERTS}/{issued['id']}/renew", {"key_source": "reuse"}, status=201
    )
    new_cert = x509.load_pem_x509_certificate(reused["certificate_pem"].encode())
    assert _public_der(new_cert) == _public_der(old_cert)
    assert reused["renewed_from"] == issued["id"]
    status, body = await _read(gateway, reused["id"])
    assert status == 200 and body["private_key_pem"] == issued["private_key_pem"]

    # new: a fresh key.
    fresh = await gateway.post(f"{CERTS}/{reused['id']}/renew", {"key_source": "new"}, status=201)
    fresh_cert = x509.load_pem_x509_certificate(fresh["certificate_pem"].encode())
    assert _public_der(fresh_cert) != _public_der(old_cert)

    # csr: the caller's CSR, same subject and SANs.
    csr, key = make_csr(None, ["sources.test"])
    by_csr = await gateway.post(
        f"{CERTS}/{fresh['id']}/renew", {"key_source": "csr", "csr": csr}, status=201
    )
    assert "private_key_pem" not in by_csr
    by_csr_cert = x509.load_pem_x509_certificate(by_csr["certificate_pem"].encode())
    assert _public_der(by_csr_cert) == _public_der(key)
    status, body = await _read(gateway, by_csr["id"])
    assert status == 404 and body["error"]["code"] == "private_key_not_held"


@pytest.mark.parametrize(
    "body, status, code",
    [
        pytest.param({"key_source": "reuse"}, 409, "private_key_not_held", id="fail/reuse-no-key"),
        pytest.param({"key_source": "csr"}, 400, "key_source_mismatch", id="fail/csr-without-csr"),
        pytest.param({"key_source": "sideways"}, 400, "invalid_input", id="fail/unknown"),
    ],
)
async def test_fail_renew_key_source(
    gateway: Gateway, body: dict[str, Any], status: int, code: str
) -> None:
    issued = await gateway.post(
        gateway.issue_path(), {"csr": make_csr(None, ["no-reuse.test"])[0]}, status=201
    )
    answer = await gateway.post(f"{CERTS}/{issued['id']}/renew", body, status=status)
    assert answer["error"]["code"] == code
