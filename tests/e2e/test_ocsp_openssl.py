"""OCSP end to end (issue 14, item 6): a listening `certgate serve`, `openssl ocsp` asking
the responder named in the certificate's AIA, before and after a REST revocation; openssl
verifies every answer (signature up to the root, nonce echoed)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

pytestmark = pytest.mark.e2e


def _rest(served: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        served.base_url + path,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {served.bootstrap['admin_token']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def _openssl(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def _ask(work: Path, url: str) -> str:
    """`openssl ocsp` as an operator runs it; it sends a nonce and checks the echo."""
    return _openssl(
        "ocsp",
        "-issuer",
        "issuer.pem",
        "-cert",
        "leaf.pem",
        "-url",
        url,
        "-CAfile",
        "trust.pem",
        cwd=work,
    )


def test_ok_openssl_ocsp_good_then_revoked(served: Any, tmp_path: Path) -> None:
    work = tmp_path / "client"
    work.mkdir()
    boot = served.bootstrap
    issued = _rest(
        served,
        f"/api/v1/applications/{boot['application']}/profiles/{boot['profile']}/certificates",
        {"key_type": "ec-p256", "sans": ["ocsp-e2e.localhost"]},
    )
    (work / "leaf.pem").write_text(issued["certificate_pem"])
    chain = x509.load_pem_x509_certificates(issued["chain_pem"].encode())
    # The issuing CA: the first certificate of the chain (RFC 6960 §4.1.1 CertID hashes it).
    (work / "issuer.pem").write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    (work / "trust.pem").write_text(issued["chain_pem"] + (served.home / "root-ca.pem").read_text())

    # The responder URL comes from the certificate itself (AIA id-ad-ocsp).
    url = _openssl("x509", "-in", "leaf.pem", "-noout", "-ocsp_uri", cwd=work).strip()
    assert url == f"{served.base_url}/pki/ocsp/{issued['ca_id']}"

    before = _ask(work, url)
    assert "Response verify OK" in before, before
    assert "leaf.pem: good" in before, before
    assert "WARNING" not in before, before  # e.g. "no nonce in response"

    _rest(
        served,
        f"/api/v1/applications/{boot['application']}/certificates/{issued['id']}/revoke",
        {"reason": "key_compromise"},
    )
    after = _ask(work, url)
    assert "Response verify OK" in after, after
    assert "leaf.pem: revoked" in after, after
    assert "Reason: keyCompromise" in after, after
    assert "Revocation Time" in after, after
