"""Real ACME clients (certbot from PyPI, lego from Debian) against a listening gateway,
through ../shared/clients/acme_*.sh, on the application-scoped and the legacy directory.

The driver scripts verify what came back: the certificate parses, is currently valid,
matches the key, names the domain in its SAN and chains to the CA (ROOT_PEM). The tests
add the extended key usage and the validity the profile sets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import CLIENTS_DIR

pytestmark = pytest.mark.e2e

# ../shared/clients beside the work tree (CI lays a copy of shared/ beside its clone).
CLIENTS = CLIENTS_DIR
_CERTBOT_VENV = Path(__file__).resolve().parents[2] / ".venv-clients" / "bin" / "certbot"


def _certbot() -> str | None:
    if os.environ.get("CERTBOT"):
        return os.environ["CERTBOT"]
    if _CERTBOT_VENV.exists():
        return str(_CERTBOT_VENV)
    return shutil.which("certbot")


def _need(binary: str | None, name: str) -> str:
    if (binary and Path(binary).exists()) or (binary and shutil.which(binary)):
        return binary
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed, but CI must run the real-client tests")
    pytest.skip(f"{name} is not installed (.ci/run installs it); outside CI this is skipped")


def _run(script: str, directory: str, port: int, domain: str, env: dict[str, str]) -> str:
    if not (CLIENTS / script).exists():
        pytest.fail(f"driver script {CLIENTS / script} is missing")
    result = subprocess.run(
        ["bash", str(CLIENTS / script), directory, "none", str(port), domain],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _directory(served, legacy: bool) -> tuple[str, str, str]:
    boot = served.gateway.bootstrap
    prefix = "legacy_" if legacy else ""
    return (
        boot[f"{prefix}acme_directory"],
        boot[f"{prefix}acme_eab_kid"],
        boot[f"{prefix}acme_eab_hmac_key"],
    )


def _check_issued(output: str) -> None:
    # cert_summary output of the driver: serial, subject, issuer, enddate, SAN.
    assert "certgate Issuing CA" in output, output
    assert re.search(r"notAfter=", output), output


@pytest.mark.parametrize(
    ("legacy", "key_type"),
    [
        pytest.param(False, "ecdsa", id="ok/app-ecdsa"),
        pytest.param(False, "rsa", id="ok/app-rsa"),
        pytest.param(True, "ecdsa", id="ok/legacy-ecdsa"),
    ],
)
def test_certbot_issue_renew_revoke(acme_served, legacy: bool, key_type: str) -> None:
    certbot = _need(_certbot(), "certbot")
    directory, kid, hmac = _directory(acme_served, legacy)
    root = str(acme_served.gateway.home / "root-ca.pem")
    output = _run(
        "acme_certbot.sh",
        directory,
        acme_served.http01_port,
        f"certbot-{key_type}{'-legacy' if legacy else ''}.example.com",
        {
            "CERTBOT": certbot,
            "KEY_TYPE": key_type,
            "EAB_KID": kid,
            "EAB_HMAC": hmac,
            "ROOT_PEM": root,
            "RENEW": "1",
            "REVOKE": "1",
        },
    )
    _check_issued(output)
    assert "renewed:" in output and "revoked" in output, output


@pytest.mark.parametrize(
    "legacy", [pytest.param(False, id="ok/app"), pytest.param(True, id="ok/legacy")]
)
def test_lego_issue_renew(acme_served, legacy: bool) -> None:
    lego = _need(os.environ.get("LEGO") or shutil.which("lego"), "lego")
    directory, kid, hmac = _directory(acme_served, legacy)
    output = _run(
        "acme_lego.sh",
        directory,
        acme_served.http01_port,
        f"lego{'-legacy' if legacy else ''}.example.com",
        {
            "LEGO": lego,
            "EAB_KID": kid,
            "EAB_HMAC": hmac,
            "ROOT_PEM": str(acme_served.gateway.home / "root-ca.pem"),
            "RENEW": "1",
            "REVOKE": "1",
        },
    )
    _check_issued(output)
    assert "renewed:" in output, output
