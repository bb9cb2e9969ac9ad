"""EST end to end: a listening `certgate serve`, the reference client est_curl.sh (curl +
openssl) on the new, label and legacy URLs, with Basic auth and with client certificates."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.e2e.conftest import CLIENTS_DIR

pytestmark = pytest.mark.e2e

CLIENTS = CLIENTS_DIR
EST_CURL = CLIENTS / "est_curl.sh"


def api(served: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        served.base_url + path,
        data=json.dumps(body or {}).encode(),
        method=method,
        headers={
            "Authorization": f"Bearer {served.bootstrap['admin_token']}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def est_curl(*args: str, out: Path) -> str:
    assert EST_CURL.exists(), f"{EST_CURL} missing (set CERTGATE_CLIENTS_DIR)"
    result = subprocess.run(
        ["bash", str(EST_CURL), "-o", str(out), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def check_certificate(path: Path, root: Path, cacerts: Path, cn: str) -> None:
    """Chain to root-ca.pem, SANs, validity, key usage."""
    subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(cacerts), str(path)],
        check=True,
        capture_output=True,
    )
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [cn]
    now = datetime.now(UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 91  # profile: 90
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_ok_est_curl_new_label_and_legacy(served, tmp_path: Path) -> None:
    boot = served.bootstrap
    root = served.home / "root-ca.pem"
    app_est = f"/api/v1/applications/{boot['application']}/profiles/{boot['profile']}/est"
    view = api(served, "PATCH", app_est, {"enabled": True})
    password = api(served, "POST", app_est + "/password")["password"]
    legacy_est = f"/api/v1/profiles/{boot['profile_id']}/est"
    legacy = api(served, "PATCH", legacy_est, {"enabled": True})
    legacy_password = api(served, "POST", legacy_est + "/password")["password"]
    forms = {
        "new": (view["urls"]["base_url"], password),
        "label": (view["urls"]["label_url"], password),
        "legacy": (legacy["urls"]["base_url"], legacy_password),
    }
    for name, (url, secret) in forms.items():
        assert url.startswith("https://")
        cn = f"est-{name}.example.com"
        out = tmp_path / name
        log = est_curl("-u", f"est:{secret}", "-T", str(root), "-S", "-n", cn, url, out=out)
        assert f"OK est {cn}" in log
        for leaf in ("enroll.cert.pem", "reenroll.cert.pem", "skg.cert.pem"):
            check_certificate(out / leaf, root, out / "cacerts.pem", cn)

    # simpleenroll authenticated by a TLS client certificate (one we issued for this
    # profile: RFC 7030 §3.3.2), no Basic credentials.
    first = tmp_path / "new"
    out = tmp_path / "cert-auth"
    log = est_curl(
        "-C",
        str(first / "enroll.cert.pem"),
        "-K",
        str(first / "enroll.key"),
        "-T",
        str(root),
        "-A",
        "-n",
        "est-new.example.com",
        forms["new"][0],
        out=out,
    )
    assert "OK est est-new.example.com" in log
    check_certificate(out / "enroll.cert.pem", root, out / "cacerts.pem", "est-new.example.com")


def test_ok_est_curl_factory_certificate(served, tmp_path: Path) -> None:
    """A device with a factory certificate from a bootstrap CA bundle, no passphrase."""
    boot = served.bootstrap
    root = served.home / "root-ca.pem"
    work = tmp_path / "factory"
    work.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Factory CA", "-days", "30",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
    )  # fmt: skip
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "dev.key", "-out", "dev.csr", "-subj", "/CN=device-0001",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "dev.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-out", "dev.pem", "-days", "5",
    )  # fmt: skip
    app_est = f"/api/v1/applications/{boot['application']}/profiles/{boot['profile']}/est"
    view = api(
        served,
        "PATCH",
        app_est,
        {
            "enabled": True,
            "accepted_auth": ["client_cert"],
            "bootstrap_ca_pem": (work / "ca.pem").read_text(),
        },
    )
    log = est_curl(
        "-C", str(work / "dev.pem"), "-K", str(work / "dev.key"), "-T", str(root),
        "-n", "device-0001.example.com", view["urls"]["label_url"], out=work / "out",
    )  # fmt: skip
    assert "OK est device-0001.example.com" in log
