"""Real ACME clients (certbot from PyPI, lego from Debian) against a listening gateway,
through ../shared/clients/acme_*.sh, on the application-scoped and the legacy directory.

The driver scripts verify what came back: the certificate parses, is currently valid,
matches the key, names the domain in its SAN and chains to the CA (ROOT_PEM). The tests
add the extended key usage and the validity the profile sets."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

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
    # lego revoked the renewed certificate (revokeCert, reason 1): the gateway says so too.
    revoked = re.search(r"revoked serial=([0-9A-Fa-f]+)", output)
    assert revoked, output
    assert int(revoked.group(1), 16) in _crl_serials(acme_served.gateway)


def _crl_serials(served) -> set[int]:
    """Serials on the CRLs the gateway publishes (what a relying party would fetch)."""
    token = served.bootstrap["admin_token"]
    request = urllib.request.Request(
        f"{served.base_url}/api/v1/cas", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        body = json.load(resp)
    cas = body["items"] if isinstance(body, dict) else body
    serials: set[int] = set()
    for ca in cas:
        with urllib.request.urlopen(f"{served.base_url}/pki/crl/{ca['id']}.crl", timeout=10) as r:
            crl = x509.load_der_x509_crl(r.read())
        serials |= {entry.serial_number for entry in crl}
    return serials


# --- certbot dns-01 through manual hooks --------------------------------------------------

_AUTH_HOOK = """#!/bin/sh
# certbot --manual-auth-hook: publish the TXT value where the test DNS server reads it.
set -eu
echo "$CERTBOT_VALIDATION" >> "{txt_dir}/_acme-challenge.$CERTBOT_DOMAIN"
echo "$CERTBOT_DOMAIN" >> "{txt_dir}/../auth-hook.log"
"""
_CLEANUP_HOOK = """#!/bin/sh
# certbot --manual-cleanup-hook: withdraw the record again.
set -eu
rm -f "{txt_dir}/_acme-challenge.$CERTBOT_DOMAIN"
echo "$CERTBOT_DOMAIN" >> "{txt_dir}/../cleanup-hook.log"
"""


def _hook(path: Path, template: str, txt_dir: Path) -> str:
    path.write_text(template.format(txt_dir=txt_dir))
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    "legacy", [pytest.param(False, id="ok/app"), pytest.param(True, id="ok/legacy")]
)
def test_certbot_dns01_wildcard(acme_served, tmp_path: Path, legacy: bool) -> None:
    """certbot --manual with auth/cleanup hooks answers dns-01 through the test DNS server
    (the gateway's acme.resolvers), for a wildcard and a plain name in one certificate."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from tests.helpers.x509util import openssl_verify, san_values

    certbot = _need(_certbot(), "certbot")
    directory, kid, hmac = _directory(acme_served, legacy)
    txt_dir = tmp_path / "txt"
    txt_dir.mkdir()
    acme_served.dns.txt_dir = txt_dir
    # The demo policy allows `*.example.com` (a whole-label wildcard one label deep) and
    # `x.example.com`; `*.test` sits directly under one label, refused (issue 15, finding 11).
    wildcard, plain = "*.example.com", f"certbot-dns{'-legacy' if legacy else ''}.example.com"
    work = tmp_path / "certbot"
    env = {k: v for k, v in os.environ.items() if k != "REQUESTS_CA_BUNDLE"}
    result = subprocess.run(
        [
            certbot,
            "certonly",
            "--non-interactive",
            *("--config-dir", str(work / "config")),
            *("--work-dir", str(work / "work")),
            *("--logs-dir", str(work / "logs")),
            "--manual",
            *("--preferred-challenges", "dns"),
            *("--manual-auth-hook", _hook(tmp_path / "auth.sh", _AUTH_HOOK, txt_dir)),
            *("--manual-cleanup-hook", _hook(tmp_path / "cleanup.sh", _CLEANUP_HOOK, txt_dir)),
            *("--server", directory),
            "--agree-tos",
            "--register-unsafely-without-email",
            *("--eab-kid", kid, "--eab-hmac-key", hmac),
            *("--key-type", "ecdsa"),
            *("--cert-name", "dns01"),
            *("-d", wildcard, "-d", plain),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = work / "logs" / "letsencrypt.log"
    assert result.returncode == 0, (
        result.stdout + result.stderr + (log.read_text()[-4000:] if log.exists() else "")
    )

    # Both authorizations went through the hooks and the gateway looked the records up.
    # (RFC 8555 §8.4: the wildcard's record sits at _acme-challenge of its base name.)
    bases = sorted(["example.com", plain])
    assert sorted((tmp_path / "auth-hook.log").read_text().split()) == bases
    assert sorted((tmp_path / "cleanup-hook.log").read_text().split()) == bases
    assert list(txt_dir.iterdir()) == []  # cleaned up
    looked_up = {name for name, rtype in acme_served.dns.queries if rtype == "TXT"}
    assert {"_acme-challenge.example.com", f"_acme-challenge.{plain}"} <= looked_up, looked_up

    live = work / "config" / "live" / "dns01"
    leaf_pem, chain_pem = (live / "cert.pem").read_text(), (live / "chain.pem").read_text()
    root_pem = (acme_served.gateway.home / "root-ca.pem").read_text()
    verified = openssl_verify(tmp_path, root_pem, chain_pem, leaf_pem, "-purpose", "sslserver")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    cert = x509.load_pem_x509_certificate(leaf_pem.encode())
    assert san_values(cert) == {wildcard, plain}
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    # The demo profile issues for 90 days (policy maximum 397).
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=89) < lifetime <= datetime.timedelta(days=91), lifetime
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    # The certificate belongs to the key certbot generated.
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key((live / "privkey.pem").read_bytes(), None)
    assert key.public_key() == cert.public_key()


# --- lego tls-alpn-01 (RFC 8737) ----------------------------------------------------------


def test_lego_tlsalpn01_issue_renew(acme_served, tmp_path: Path) -> None:
    """lego answers tls-alpn-01 with its own TLS server on acme.tlsalpn01_port (the gateway
    resolves the name through the test DNS server to 127.0.0.1 and connects there with
    ALPN acme-tls/1), registers with EAB, obtains and renews a certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from tests.helpers.acmeharness import check_chain

    lego = _need(os.environ.get("LEGO") or shutil.which("lego"), "lego")
    directory, kid, hmac = _directory(acme_served, legacy=False)
    domain = "lego-alpn.example.com"
    work = tmp_path / "lego"
    common = [
        lego,
        *("--server", directory),
        "--accept-tos",
        *("--email", "test@example.com"),
        *("--path", str(work)),
        *("--key-type", "ec256"),
        "--tls",
        *("--tls.port", f"127.0.0.1:{acme_served.tlsalpn01_port}"),
        *("--eab", "--kid", kid, "--hmac", hmac),
        *("-d", domain),
    ]
    env = {k: v for k, v in os.environ.items() if k != "LEGO_CA_CERTIFICATES"}
    root_pem = (acme_served.gateway.home / "root-ca.pem").read_text()
    crt, key_file = work / "certificates" / f"{domain}.crt", work / "certificates" / f"{domain}.key"

    def obtained() -> x509.Certificate:
        leaf = check_chain(crt.read_text(), [domain], root_pem)
        key = load_pem_private_key(key_file.read_bytes(), None)
        assert key.public_key() == leaf.public_key()
        # The demo profile issues for 90 days.
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert 89 * 86400 < lifetime.total_seconds() <= 91 * 86400, lifetime
        return leaf

    for step in (["run"], ["renew", "--days", "100000", "--no-random-sleep"]):
        result = subprocess.run(
            [*common, *step], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        if step == ["run"]:
            first = obtained()
    renewed = obtained()
    assert renewed.serial_number != first.serial_number
    # lego's issuer file is the chain above the leaf; it leads to the same root.
    issuer_pem = (work / "certificates" / f"{domain}.issuer.crt").read_text()
    issuer = x509.load_pem_x509_certificates(issuer_pem.encode())[0]
    renewed.verify_directly_issued_by(issuer)
    # Both validations went over tls-alpn-01: lego logs the challenge type it solved.
    assert "tls-alpn-01" in result.stdout + result.stderr
