"""The issue's "done when", end to end: a listening `certgate serve`, curl + openssl only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

pytestmark = pytest.mark.e2e


def run(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def curl_json(cwd: Path, token: str, url: str, body: dict | None = None) -> dict:
    args = ["curl", "-sS", "--fail-with-body", "-H", f"Authorization: Bearer {token}"]
    if body is not None:
        (cwd / "body.json").write_text(json.dumps(body))
        args += ["-H", "Content-Type: application/json", "--data-binary", "@body.json"]
    return json.loads(_out(args, url, cwd))


def _out(args: list[str], url: str, cwd: Path) -> str:
    result = subprocess.run(
        [*args, url], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_ok_curl_issue_verify_revoke_crl(served, tmp_path: Path) -> None:
    work = tmp_path / "client"
    work.mkdir()
    boot = served.bootstrap
    token = boot["admin_token"]
    root = served.home / "root-ca.pem"
    run(
        "openssl",
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "app.key",
        "-subj",
        "/CN=app.localhost",
        "-addext",
        "subjectAltName=DNS:app.localhost,DNS:api.localhost,IP:127.0.0.1",
        "-out",
        "app.csr",
        cwd=work,
    )
    issued = curl_json(
        work,
        token,
        f"{boot['base_url']}/api/v1/applications/{boot['application']}/profiles/{boot['profile']}/certificates",
        {"csr": (work / "app.csr").read_text()},
    )
    (work / "app.pem").write_text(issued["certificate_pem"])
    (work / "chain.pem").write_text(issued["chain_pem"])
    out = run(
        "openssl", "verify", "-CAfile", str(root), "-untrusted", "chain.pem", "app.pem", cwd=work
    )
    assert "app.pem: OK" in out
    text = run(
        "openssl",
        "x509",
        "-in",
        "app.pem",
        "-noout",
        "-ext",
        "subjectAltName,keyUsage,extendedKeyUsage",
        cwd=work,
    )
    assert (
        "DNS:app.localhost" in text
        and "DNS:api.localhost" in text
        and "IP Address:127.0.0.1" in text
    )
    assert "TLS Web Server Authentication" in text and "Digital Signature" in text
    # The key we made matches the certificate.
    cert_pub = run("openssl", "x509", "-in", "app.pem", "-noout", "-pubkey", cwd=work)
    key_pub = run("openssl", "pkey", "-in", "app.key", "-pubout", cwd=work)
    assert cert_pub.strip() == key_pub.strip()

    # HTTPS listener: its certificate chains to the same root.
    health = _out(
        ["curl", "-sS", "--cacert", str(root)],
        f"https://localhost:{served.https_port}/healthz",
        work,
    )
    assert json.loads(health)["status"] == "ok"

    revoked = curl_json(
        work,
        token,
        f"{boot['base_url']}/api/v1/applications/{boot['application']}/certificates/{issued['id']}/revoke",
        {"reason": "key_compromise"},
    )
    assert revoked["status"] == "revoked"
    cert = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    crl_url = (
        cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        .value[0]
        .full_name[0]
        .value
    )
    assert crl_url.startswith(served.base_url)
    run("curl", "-sS", "--fail", "-o", "ca.crl", crl_url, cwd=work)
    (work / "bundle.pem").write_text(issued["chain_pem"] + root.read_text())
    out = run(
        "openssl",
        "crl",
        "-inform",
        "DER",
        "-in",
        "ca.crl",
        "-noout",
        "-verify",
        "-CAfile",
        "bundle.pem",
        cwd=work,
    )
    assert "verify OK" in out
    crl_text = run("openssl", "crl", "-inform", "DER", "-in", "ca.crl", "-noout", "-text", cwd=work)
    assert issued["serial"].upper().lstrip("0") in crl_text.replace(":", "").upper()
    assert "Key Compromise" in crl_text
    run("openssl", "crl", "-inform", "DER", "-in", "ca.crl", "-out", "ca-crl.pem", cwd=work)
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-crl_check",
            "-CRLfile",
            "ca-crl.pem",
            "-CAfile",
            str(root),
            "-untrusted",
            "chain.pem",
            "app.pem",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "certificate revoked" in result.stdout + result.stderr

    # The CLI sees the same store.
    listing = served.cli("cert", "list", "--app", "demo", "--status", "revoked").stdout
    assert issued["id"] in listing


def test_fail_curl_errors_are_json(served, tmp_path: Path) -> None:
    boot = served.bootstrap
    url = f"{boot['base_url']}/api/v1/applications/demo/profiles/tls-server/certificates"
    result = subprocess.run(
        ["curl", "-sS", "-H", "Content-Type: application/json", "-d", "{}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["error"]["code"] == "unauthorized"
    big = tmp_path / "big.json"
    big.write_text('{"csr": "' + "A" * 400_000 + '"}')
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            f"Authorization: Bearer {boot['admin_token']}",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            f"@{big}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "413"
