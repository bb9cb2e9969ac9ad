"""Legacy project export end to end (issue 12, "Done when"): a listening `certgate serve`,
a legacy project built through the REST API (root + intermediate, an external CA with a
profile, a self-signed profile, two policies of which one collides with the active
project's, a profile issuing through its legacy EST endpoint with curl + openssl), a dry
run, the export, issuance in the active project through the exported CA checked with
`openssl verify` against the legacy root, the legacy endpoint still issuing, and the
legacy project refusing new CAs."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.pki.kms import KmsError, ca_key_aad
from gateway.services.graph import open_services
from tests.e2e.conftest import CLIENTS_DIR, Served

pytestmark = pytest.mark.e2e

EST_CURL = CLIENTS_DIR / "est_curl.sh"


def api(
    served: Served, method: str, path: str, body: dict[str, Any] | None = None, status: int = 200
) -> Any:
    request = urllib.request.Request(
        served.base_url + path,
        data=json.dumps(body or {}).encode() if method != "GET" else None,
        method=method,
        headers={
            "Authorization": f"Bearer {served.bootstrap['admin_token']}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            got, data = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        got, data = err.code, json.loads(err.read())
    assert got == status, f"{method} {path}: {got} {data}"
    return data


def openssl(cwd: Path, *args: str) -> str:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"openssl {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def est_enroll(served: Served, url: str, password: str, cn: str, out: Path) -> Path:
    """simpleenroll with Basic auth through est_curl.sh; the certificate's path."""
    assert EST_CURL.exists(), f"{EST_CURL} missing (set CERTGATE_CLIENTS_DIR)"
    result = subprocess.run(
        ["bash", str(EST_CURL), "-o", str(out), "-u", f"est:{password}",
         "-T", str(served.home / "root-ca.pem"), "-R", "-A", "-n", cn, url],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK est {cn}" in result.stdout + result.stderr
    return out / "enroll.cert.pem"


def verify(work: Path, root_pem: str, chain_pem: str, leaf: Path) -> None:
    (work / "root.pem").write_text(root_pem)
    (work / "chain.pem").write_text(chain_pem)
    openssl(work, "verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", str(leaf))


def build_legacy(served: Served, work: Path) -> dict[str, Any]:
    pid = api(served, "POST", "/api/v1/projects", {"name": "legacy-pki"}, 201)["id"]
    ids: dict[str, Any] = {"project": pid}
    root = api(served, "POST", "/api/v1/cas",
               {"kind": "root", "name": "legacy-root", "project_id": pid}, 201)  # fmt: skip
    inter = api(served, "POST", "/api/v1/cas",
                {"kind": "intermediate", "name": "legacy-issuing", "parent_id": root["id"]},
                201)  # fmt: skip
    assert inter["project_id"] == pid
    openssl(work, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "partner.key", "-out", "partner.pem", "-subj", "/CN=Partner CA",
            "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    partner = api(served, "POST", "/api/v1/cas",
                  {"kind": "external", "name": "partner-ca", "project_id": pid,
                   "certificate_pem": (work / "partner.pem").read_text()}, 201)  # fmt: skip
    demo_rules = next(
        p["rules"] for p in api(served, "GET", "/api/v1/policies")["items"]
        if p["name"] == "demo-tls"
    )  # fmt: skip
    policies = {
        name: api(served, "POST", "/api/v1/policies",
                  {"name": name, "rules": demo_rules, "project_id": pid}, 201)["id"]
        for name in ("demo-tls", "legacy-web")
    }  # fmt: skip

    def profile(body: dict[str, Any]) -> dict[str, Any]:
        return api(served, "POST", "/api/v1/profiles", {
            "project_id": pid, "key_usages": ["digital_signature", "key_encipherment"],
            "extended_key_usages": ["server_auth"], **body}, 201)  # fmt: skip

    legacy_tls = profile({"slug": "legacy-tls", "ca_id": inter["id"],
                          "policy_id": policies["demo-tls"]})  # fmt: skip
    partner_web = profile({"slug": "partner-web", "ca_id": partner["id"],
                           "policy_id": policies["legacy-web"]})  # fmt: skip
    self_web = profile({"slug": "self-web", "issuer_type": "self-signed",
                        "policy_id": policies["legacy-web"]})  # fmt: skip
    assert self_web["issuer_type"] == "self-signed" and self_web["ca_id"] is None
    est_settings = f"/api/v1/profiles/{legacy_tls['id']}/est"
    est = api(served, "PATCH", est_settings, {"enabled": True})
    password = api(served, "POST", est_settings + "/password", None, 201)["password"]
    ids.update(
        root=root, inter=inter, partner=partner, policies=policies, legacy_tls=legacy_tls,
        partner_web=partner_web, self_web=self_web, est_url=est["urls"]["base_url"],
        est_password=password,
    )  # fmt: skip
    return ids


def stored_key_checks(served: Served, legacy_project: str, copy_id: str) -> None:
    """The copy's key opens under the active project's key, never under the legacy one's."""

    async def check() -> None:
        services = await open_services(load_config(None, environ=served.env), migrate=False)
        try:
            async with services.db.transaction(read_only=True) as tx:
                copy = await tx.cas.get(uuid.UUID(copy_id))
            assert copy is not None
            await services.signer.load_ca_key(copy)
            with pytest.raises(KmsError):
                await services.kms.decrypt(
                    uuid.UUID(legacy_project), copy.encrypted_key, ca_key_aad(copy.id)
                )
        finally:
            await services.close()

    asyncio.run(check())


def test_ok_export_flow(served: Served, tmp_path: Path) -> None:
    legacy = build_legacy(served, tmp_path)
    pid = legacy["project"]
    legacy_root_pem = legacy["root"]["certificate_pem"]

    # The legacy profile issues through its legacy EST endpoint (curl + openssl).
    before = est_enroll(
        served, legacy["est_url"], legacy["est_password"], "before.test", tmp_path / "before"
    )
    verify(tmp_path, legacy_root_pem, legacy["inter"]["certificate_pem"], before)

    # A dry run answers the result and writes nothing.
    active_cas = api(served, "GET", "/api/v1/cas")["items"]
    dry = api(served, "POST", f"/api/v1/projects/{pid}/export", {"dry_run": True})
    assert dry["dry_run"] is True
    assert api(served, "GET", "/api/v1/cas")["items"] == active_cas
    listed = {p["id"]: p for p in api(served, "GET", "/api/v1/projects")["items"]}
    assert listed[pid]["exported_at"] is None

    result = api(served, "POST", f"/api/v1/projects/{pid}/export", {"dry_run": False})
    assert result["target_project_id"] == next(
        p["id"] for p in listed.values() if p["status"] == "active"
    )
    cas = {e["source_id"]: e for e in result["exported"]["cas"]}
    assert set(cas) == {legacy["root"]["id"], legacy["inter"]["id"]}
    policies = {e["source_id"]: e for e in result["exported"]["policies"]}
    collided = policies[legacy["policies"]["demo-tls"]]
    assert re.fullmatch(r"demo-tls-[a-z0-9]{8}", collided["name"])
    assert collided["renamed_from"] == "demo-tls"
    assert policies[legacy["policies"]["legacy-web"]]["renamed_from"] is None
    profiles = {e["source_id"]: e for e in result["exported"]["profiles"]}
    assert set(profiles) == {legacy["legacy_tls"]["id"], legacy["self_web"]["id"]}
    skipped = {s["source_id"]: s for s in result["skipped"]}
    assert set(skipped) == {legacy["partner"]["id"], legacy["partner_web"]["id"]}
    assert skipped[legacy["partner"]["id"]]["kind"] == "ca"
    assert "external" in skipped[legacy["partner"]["id"]]["reason"]
    assert skipped[legacy["partner_web"]["id"]]["kind"] == "profile"
    assert "partner-ca" in skipped[legacy["partner_web"]["id"]]["reason"]

    # The exported intermediate: same certificate (public key) and chain, a key of its own
    # encryption that the legacy project's key cannot open.
    copy = api(served, "GET", f"/api/v1/cas/{cas[legacy['inter']['id']]['id']}")
    assert copy["certificate_pem"] == legacy["inter"]["certificate_pem"]
    assert copy["chain_pem"] == legacy["inter"]["chain_pem"] == legacy_root_pem
    assert copy["parent_id"] == cas[legacy["root"]["id"]]["id"]
    stored_key_checks(served, pid, copy["id"])

    # Issue in the active project through the exported CA: it verifies against the legacy root.
    slug = profiles[legacy["legacy_tls"]["id"]]["slug"]
    api(served, "POST", "/api/v1/applications/demo/profiles", {"profile": slug}, 201)
    openssl(tmp_path, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "app.key", "-out", "app.csr", "-subj", "/CN=exported.test",
            "-addext", "subjectAltName=DNS:exported.test")  # fmt: skip
    issued = api(
        served, "POST", f"/api/v1/applications/demo/profiles/{slug}/certificates",
        {"csr": (tmp_path / "app.csr").read_text()}, 201,
    )  # fmt: skip
    (tmp_path / "app.pem").write_text(issued["certificate_pem"])
    verify(tmp_path, legacy_root_pem, issued["chain_pem"], tmp_path / "app.pem")

    # The legacy endpoint still issues, under the original CA.
    after = est_enroll(
        served, legacy["est_url"], legacy["est_password"], "after.test", tmp_path / "after"
    )
    verify(tmp_path, legacy_root_pem, legacy["inter"]["certificate_pem"], after)

    # The legacy project is read-only now; a second export needs again=true.
    refused = api(served, "POST", "/api/v1/cas",
                  {"kind": "root", "name": "late-root", "project_id": pid}, 409)  # fmt: skip
    assert refused["error"]["code"] == "legacy_read_only"
    again = api(served, "POST", f"/api/v1/projects/{pid}/export", {}, 409)
    assert again["error"]["code"] == "already_exported"
    assert result["exported_at"][:19] in again["error"]["message"]
