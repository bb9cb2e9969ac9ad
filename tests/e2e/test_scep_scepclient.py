"""SCEP with a real client: micromdm's scepclient through ../shared/clients/scep_client.sh
against a listening `certgate serve` (static and dynamic challenge, renewal, RSA 2048 and
4096, the new and the legacy URL), and a check of what comes back."""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.e2e.conftest import CLIENTS_DIR, Served, client_available, start_gateway, stop_gateway
from tests.helpers import scepclient as sc

pytestmark = [
    pytest.mark.e2e,
    client_available("scepclient"),
]

CLIENT = CLIENTS_DIR / "scep_client.sh"
APP_SETTINGS = "/api/v1/applications/demo/profiles/tls-server/scep"


def api(served: Served, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        served.base_url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {served.bootstrap['admin_token']}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def enable(served: Served, settings: str) -> tuple[str, str, str]:
    """(SCEP URL, static challenge, RA SHA-256) of an enrollment, SCEP switched on."""
    view = api(served, "PATCH", settings, {"enabled": True})
    challenge = api(served, "POST", settings + "/challenge", {})["challenge"]
    return view["urls"]["scep_url"], challenge, view["ra"]["sha256"]


def scep_client(
    url: str, challenge: str, cn: str, *, fingerprint: str = "", **env: str
) -> tuple[str, Path]:
    environment = {**os.environ, "KEEP": "1", **env}
    if fingerprint:
        # go.mozilla.org/pkcs7 (inside scepclient) panics when asked to encrypt to an EC
        # certificate, and without -ca-fingerprint it encrypts to every GetCACert
        # certificate: with the demo's EC CA it must be pointed at the RSA RA.
        environment["CA_FINGERPRINT"] = fingerprint
    result = subprocess.run(
        ["bash", str(CLIENT), url, challenge, cn],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"OK scep {cn}" in output
    work = re.search(r"work dir kept: (\S+)", output)
    assert work is not None, output
    return output, Path(work.group(1))


def ra_fingerprint(served: Served, settings: str) -> str:
    """The RA's SHA-256, read from the settings (a read: nothing is changed)."""
    return str(api(served, "GET", settings)["ra"]["sha256"])


def check_certificate(served: Served, work: Path, cn: str, bits: int) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate((work / "c" / "cert.pem").read_bytes())
    ca_certs = x509.load_pem_x509_certificates((work / "cacerts.pem").read_bytes())
    ra, issuing, root = ca_certs
    cert.verify_directly_issued_by(issuing)
    issuing.verify_directly_issued_by(root)
    root_pem = x509.load_pem_x509_certificates((served.home / "root-ca.pem").read_bytes())
    assert root in root_pem
    names = {a.oid._name: a.value for a in cert.subject}
    assert names["commonName"] == cn
    assert names["organizationName"] == "scep-client" and names["countryName"] == "US"
    assert cert.public_key().key_size == bits  # type: ignore[union-attr]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert not basic.ca
    # scepclient cannot ask for SANs: on a TLS profile the CN becomes the one SAN (issue 15,
    # finding 5); the Python tests check requested SANs come back.
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(v) for v in sans.get_values_for_type(x509.DNSName)] == [cn.lower()]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert ra != issuing
    shutil.rmtree(work, ignore_errors=True)
    return cert


def test_ok_scepclient_static_challenge_and_renew(served, tmp_path: Path) -> None:
    """Straight from bootstrap.json of a fresh `certgate serve`: nothing set up first."""
    url, challenge = served.bootstrap["scep_url"], served.bootstrap["scep_challenge"]
    assert url == served.base_url + "/applications/demo/profiles/tls-server/scep"
    fingerprint = ra_fingerprint(served, APP_SETTINGS)
    output, work = scep_client(
        url + "/pkiclient.exe", challenge, "static.test", fingerprint=fingerprint, RENEW="1"
    )
    assert "renewed:" in output
    check_certificate(served, work, "static.test", 2048)


def test_ok_scepclient_dynamic_challenge_rsa4096(served) -> None:
    url, _, fingerprint = enable(served, APP_SETTINGS)
    dynamic = api(served, "POST", APP_SETTINGS + "/challenges", {"ttl_minutes": 10})
    _, work = scep_client(
        url, dynamic["challenge"], "dynamic.test", fingerprint=fingerprint, KEYSIZE="4096"
    )
    check_certificate(served, work, "dynamic.test", 4096)
    # One-time: the same challenge does not enroll a second device.
    result = subprocess.run(
        ["bash", str(CLIENT), url, dynamic["challenge"], "second.test"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CA_FINGERPRINT": fingerprint},
        check=False,
    )
    assert result.returncode != 0 and "badRequest" in result.stdout + result.stderr


def test_ok_scepclient_legacy_url(served) -> None:
    legacy = served.bootstrap["legacy_profile_id"]
    url = served.bootstrap["legacy_scep_url"]
    assert url == f"{served.base_url}/profiles/{legacy}/scep"
    fingerprint = ra_fingerprint(served, f"/api/v1/profiles/{legacy}/scep")
    output, work = scep_client(
        url + "/pkiclient.exe",
        served.bootstrap["legacy_scep_challenge"],
        "legacy.test",
        fingerprint=fingerprint,
        RENEW="1",
    )
    assert "renewed:" in output
    check_certificate(served, work, "legacy.test", 2048)


def test_ok_scep_on_the_https_listener(served) -> None:
    """SCEP is served on both listeners (issue 6): GetCACaps, GetCACert and a PKCSReq over
    TLS, trusting only the gateway's root."""
    base = served.bootstrap["https_base_url"]
    assert base and base.startswith("https://")
    context = ssl.create_default_context(cafile=str(served.home / "root-ca.pem"))
    path = "/applications/demo/profiles/tls-server/scep"

    def fetch(query: str, body: bytes | None = None) -> tuple[str, bytes]:
        request = urllib.request.Request(base + path + "?" + query, data=body)
        with urllib.request.urlopen(request, timeout=30, context=context) as resp:
            return resp.headers.get_content_type(), resp.read()

    kind, caps = fetch("operation=GetCACaps")
    assert kind == "text/plain" and "SCEPStandard" in caps.decode().split("\n")
    kind, body = fetch("operation=GetCACert")
    assert kind == "application/x-x509-ca-ra-cert"
    ra, issuing, _root = sc.ca_certs(body)
    device = sc.Requester.new("tls.test")
    csr = sc.make_csr(device.key, "tls.test", served.bootstrap["scep_challenge"])
    kind, body = fetch(
        "operation=PKIOperation",
        sc.pki_message(device, ra, 19, sc.csr_der(csr), transaction_id="tls"),
    )
    reply = sc.read_reply(body, device)
    assert kind == "application/x-pki-message" and reply.status == 0, reply
    reply.certificates[0].verify_directly_issued_by(issuing)


def test_ok_scepclient_rsa_pki_needs_no_fingerprint(tmp_path: Path, database_url: str) -> None:
    """With an RSA CA every GetCACert certificate can receive scepclient's envelope, so it
    enrolls and renews with no special settings."""
    gateway = start_gateway(tmp_path / "home", database_url, {"CERTGATE_PKI__KEY_TYPE": "rsa-2048"})
    try:
        url, challenge, _ = enable(gateway, APP_SETTINGS)
        output, work = scep_client(url, challenge, "rsa.test", RENEW="1")
        assert "renewed:" in output
        check_certificate(gateway, work, "rsa.test", 2048)
    finally:
        stop_gateway(gateway)
    assert "Traceback" not in gateway.log.read_text(), gateway.log.read_text()
