"""Revocation: the CRL is rebuilt at once, signed, and accepted by openssl."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.helpers.x509util import make_csr, openssl_verify


async def _crl(gateway, ca_id: str) -> x509.CertificateRevocationList:
    resp = await gateway.client.get(f"/pki/crl/{ca_id}.crl")
    assert resp.status == 200
    assert resp.content_type == "application/pkix-crl"
    return x509.load_der_x509_crl(await resp.read())


async def test_ok_revoke_updates_crl_and_openssl_rejects(gateway, tmp_path: Path) -> None:
    issued = await gateway.post(gateway.issue_path(), {"csr": make_csr("rev.test")[0]}, status=201)
    before = await _crl(gateway, issued["ca_id"])
    assert before.get_revoked_certificate_by_serial_number(int(issued["serial"], 16)) is None
    revoked = await gateway.post(
        f"/api/v1/applications/demo/certificates/{issued['id']}/revoke",
        {"reason": "key_compromise"},
        status=200,
    )
    assert revoked["status"] == "revoked" and revoked["revocation_reason"] == "key_compromise"
    crl = await _crl(gateway, issued["ca_id"])
    entry = crl.get_revoked_certificate_by_serial_number(int(issued["serial"], 16))
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        == x509.ReasonFlags.key_compromise
    )
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number

    root = (gateway.config.home / "root-ca.pem").read_text()
    crl_path = tmp_path / "ca.crl"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "bundle.pem").write_text(issued["chain_pem"] + root)
    check = subprocess.run(
        [
            "openssl",
            "crl",
            "-in",
            str(crl_path),
            "-noout",
            "-verify",
            "-CAfile",
            str(tmp_path / "bundle.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and "verify OK" in (check.stdout + check.stderr), check.stderr
    # Leaf check only (-crl_check): the issuing CA's CRL must show the leaf revoked.
    result = openssl_verify(
        tmp_path,
        root,
        issued["chain_pem"],
        issued["certificate_pem"],
        "-crl_check",
        "-CRLfile",
        str(crl_path),
    )
    assert result.returncode != 0 and "revoked" in (result.stdout + result.stderr)


async def test_fail_revoke_twice_and_unknown_reason(gateway) -> None:
    issued = await gateway.post(
        gateway.issue_path(), {"csr": make_csr("twice.test")[0]}, status=201
    )
    path = f"/api/v1/applications/demo/certificates/{issued['id']}/revoke"
    bad = await gateway.post(path, {"reason": "bored"}, status=400)
    assert bad["error"]["code"] == "invalid_input"
    results = await asyncio.gather(
        *(gateway.post(path, {"reason": "superseded"}) for _ in range(5))
    )
    codes = sorted(r.get("error", {}).get("code", "ok") for r in results)
    assert codes == ["already_revoked"] * 4 + ["ok"]
    audit_ok = [r for r in results if "error" not in r]
    assert audit_ok[0]["revocation_reason"] == "superseded"


async def test_fail_revoke_unknown_certificate(gateway) -> None:
    data = await gateway.post(
        "/api/v1/applications/demo/certificates/00000000-0000-0000-0000-000000000000/revoke",
        {},
        status=404,
    )
    assert data["error"]["code"] == "not_found"


async def test_ok_crl_of_fresh_ca_is_empty_and_valid(gateway) -> None:
    profile = await gateway.get(f"/api/v1/profiles/{gateway.bootstrap['profile_id']}")
    crl = await _crl(gateway, profile["ca_id"])
    assert len(list(crl)) == 0
    assert crl.next_update_utc > crl.last_update_utc
    resp = await gateway.client.get("/pki/crl/00000000-0000-0000-0000-000000000000.crl")
    assert resp.status == 404
