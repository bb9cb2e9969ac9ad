"""Export of a legacy project into the active one (issue 12, item 3):
`POST /api/v1/projects/{id}/export`, on SQLite and PostgreSQL.

The legacy world, built through the REST API: a root (whose name collides with the active
project's `root`) and an intermediate under it; a non-exportable root with a child; an
external CA; two policies (`demo-tls` collides); profiles on the intermediate (slug
`tls-server` collides), on the non-exportable child, on the external CA, and a self-signed
one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import func, select, update

from gateway.core.model import KeyType, new_id
from gateway.pki.ca import certificate_to_pem, create_root_ca
from gateway.pki.keys import public_key_der
from gateway.pki.kms import KmsError, ca_key_aad
from gateway.services import export as export_service
from store import tables
from tests.helpers.x509util import load_cert, make_csr
from tests.integration.api.conftest import Gateway

SUFFIXED = r"-[a-z0-9]{8}"


@dataclass
class Legacy:
    project_id: str
    ids: dict[str, str]  # name -> source id


async def build_legacy(gw: Gateway, name: str = "old-pki") -> Legacy:
    project = await gw.post("/api/v1/projects", {"name": name}, status=201)
    pid = project["id"]
    ids: dict[str, str] = {}

    async def ca(body: dict[str, Any]) -> str:
        created = await gw.post("/api/v1/cas", {"project_id": pid, **body}, status=201)
        ids[body["name"]] = created["id"]
        return str(created["id"])

    root = await ca({"name": "root", "kind": "root", "common_name": "Old Root"})
    await ca({"name": "old-issuing", "kind": "intermediate", "parent_id": root})
    hsm = await ca({"name": "hsm-root", "kind": "root", "exportable": False})
    await ca({"name": "hsm-issuing", "kind": "intermediate", "parent_id": hsm})
    partner_pem = certificate_to_pem(create_root_ca("Partner CA", KeyType.EC_P256, 365)[0])
    await ca({"name": "partner-ca", "kind": "external", "certificate_pem": partner_pem})
    demo_rules = next(
        p["rules"] for p in (await gw.get("/api/v1/policies"))["items"] if p["name"] == "demo-tls"
    )
    for policy in ("demo-tls", "old-web"):
        created = await gw.post(
            "/api/v1/policies", {"name": policy, "rules": demo_rules, "project_id": pid}, status=201
        )
        ids[policy] = created["id"]

    async def profile(slug: str, issuer: dict[str, Any], policy: str = "demo-tls") -> None:
        created = await gw.post(
            "/api/v1/profiles",
            {
                "slug": slug,
                "policy_id": ids[policy],
                "project_id": pid,
                "enrollment": {"est": {"enabled": True}},
                **issuer,
            },
            status=201,
        )
        ids[slug] = created["id"]

    await profile("tls-server", {"ca_id": ids["old-issuing"]})
    await profile("hsm-web", {"ca_id": ids["hsm-issuing"]})
    await profile("partner-web", {"ca_id": ids["partner-ca"]}, "old-web")
    await profile("self", {"issuer_type": "self-signed"}, "old-web")
    return Legacy(pid, ids)


async def row_counts(gw: Gateway) -> dict[str, int]:
    """Rows in every table, and the projects' export marks: what an export may change."""
    counts: dict[str, int] = {}
    async with gw.services.db.transaction(read_only=True) as tx:
        for table in tables.metadata.sorted_tables:
            result = await tx.session.execute(select(func.count()).select_from(table))
            counts[table.name] = int(result.scalar_one())
        marked = await tx.session.execute(
            select(func.count())
            .select_from(tables.projects)
            .where(tables.projects.c.exported_at.is_not(None))
        )
        counts["projects.exported_at"] = int(marked.scalar_one())
    return counts


def by_source(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["source_id"]: e for e in entries}


async def export(gw: Gateway, pid: str, body: dict[str, Any], status: int = 200) -> Any:
    return await gw.post(f"/api/v1/projects/{pid}/export", body, status=status)


async def test_ok_export_copies_and_skips(gateway: Gateway) -> None:
    gw = gateway
    legacy = await build_legacy(gw)
    ids = legacy.ids
    active = next(p for p in (await gw.get("/api/v1/projects"))["items"] if p["status"] == "active")
    result = await export(gw, legacy.project_id, {})

    assert result["target_project_id"] == active["id"]
    assert result["dry_run"] is False and result["exported_at"]
    cas = by_source(result["exported"]["cas"])
    assert set(cas) == {ids["root"], ids["old-issuing"]}
    assert re.fullmatch("root" + SUFFIXED, cas[ids["root"]]["name"])
    assert cas[ids["root"]]["renamed_from"] == "root"
    assert cas[ids["old-issuing"]]["name"] == "old-issuing"
    assert cas[ids["old-issuing"]]["renamed_from"] is None
    policies = by_source(result["exported"]["policies"])
    assert re.fullmatch("demo-tls" + SUFFIXED, policies[ids["demo-tls"]]["name"])
    assert policies[ids["demo-tls"]]["renamed_from"] == "demo-tls"
    assert policies[ids["old-web"]] | {"id": None} == {
        "source_id": ids["old-web"],
        "id": None,
        "name": "old-web",
        "renamed_from": None,
    }
    profiles = by_source(result["exported"]["profiles"])
    assert set(profiles) == {ids["tls-server"], ids["self"]}
    tls = profiles[ids["tls-server"]]
    assert re.fullmatch("tls-server" + SUFFIXED, tls["slug"]) and tls["name"] == tls["slug"]
    assert tls["renamed_from"] == "tls-server"
    assert profiles[ids["self"]]["renamed_from"] is None
    skipped = {(s["kind"], s["name"]): s for s in result["skipped"]}
    assert set(skipped) == {
        ("ca", "hsm-root"),
        ("ca", "hsm-issuing"),
        ("ca", "partner-ca"),
        ("profile", "hsm-web"),
        ("profile", "partner-web"),
    }
    assert "not exportable" in skipped["ca", "hsm-root"]["reason"]
    assert "parent CA 'hsm-root'" in skipped["ca", "hsm-issuing"]["reason"]
    assert "external" in skipped["ca", "partner-ca"]["reason"]
    assert "external" in skipped["profile", "partner-web"]["reason"]
    assert skipped["ca", "partner-ca"]["source_id"] == ids["partner-ca"]

    services = gw.services
    root_copy_id = uuid.UUID(cas[ids["root"]]["id"])
    inter_copy_id = uuid.UUID(cas[ids["old-issuing"]]["id"])
    async with services.db.transaction(read_only=True) as tx:
        original = await tx.cas.get(uuid.UUID(ids["old-issuing"]))
        copy = await tx.cas.get(inter_copy_id)
        crl = await tx.crls.get(inter_copy_id)
        root_crl = await tx.crls.get(root_copy_id)
        tls_copy = await tx.profiles.get(uuid.UUID(tls["id"]))
        self_copy = await tx.profiles.get(uuid.UUID(profiles[ids["self"]]["id"]))
        source = await tx.projects.get(uuid.UUID(legacy.project_id))
    assert original is not None and copy is not None and source is not None
    # Same certificate, chain and key; a new row in the active project under the new parent.
    assert copy.project_id == uuid.UUID(active["id"])
    assert copy.parent_id == root_copy_id
    assert (copy.certificate_pem, copy.chain_pem) == (original.certificate_pem, original.chain_pem)
    assert copy.encrypted_key != original.encrypted_key
    key = await services.signer.load_ca_key(copy)
    assert public_key_der(key.public_key()) == public_key_der(
        load_cert(original.certificate_pem).public_key()
    )
    # The legacy project's key opens neither binding of the copy's blob.
    for aad in (ca_key_aad(copy.id), ca_key_aad(original.id)):
        with pytest.raises(KmsError):
            await services.kms.decrypt(source.id, copy.encrypted_key, aad)
    # An empty CRL of its own, signed by the copy.
    assert crl is not None and root_crl is not None
    parsed = x509.load_der_x509_crl(crl.der)
    assert len(list(parsed)) == 0
    assert parsed.is_signature_valid(load_cert(copy.certificate_pem).public_key())  # type: ignore[arg-type]
    # Profiles: remapped, without the legacy enrollment.
    assert tls_copy is not None and self_copy is not None
    assert tls_copy.ca_id == inter_copy_id
    assert tls_copy.policy_id == uuid.UUID(policies[ids["demo-tls"]]["id"])
    assert tls_copy.enrollment == {}
    assert self_copy.self_signed and self_copy.ca_id is None
    assert self_copy.policy_id == uuid.UUID(policies[ids["old-web"]]["id"])
    # The legacy project is marked, listed so, and read-only; its originals stay.
    assert source.exported_at is not None
    listed = {p["id"]: p for p in (await gw.get("/api/v1/projects"))["items"]}
    assert listed[legacy.project_id]["exported_at"]
    refused = await gw.post(
        "/api/v1/cas",
        {"name": "late", "kind": "root", "project_id": legacy.project_id},
        status=409,
    )
    assert refused["error"]["code"] == "legacy_read_only"
    legacy_cas = (await gw.get(f"/api/v1/cas?project_id={legacy.project_id}"))["items"]
    assert len(legacy_cas) == 5
    # One audit event records it.
    events = (await gw.get("/api/v1/audit?action=project.exported"))["items"]
    assert len(events) == 1 and events[0]["target_id"] == legacy.project_id

    # Issue in the active project through the exported CA: the chain ends at the legacy root.
    await gw.post("/api/v1/applications/demo/profiles", {"profile": tls["slug"]}, status=201)
    csr, _ = make_csr("exported.test")
    issued = await gw.post(gw.issue_path("demo", tls["slug"]), {"csr": csr}, status=201)
    leaf = load_cert(issued["certificate_pem"])
    chain = x509.load_pem_x509_certificates(issued["chain_pem"].encode())
    legacy_root = load_cert(original.chain_pem)
    leaf.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(legacy_root)
    assert chain[-1] == legacy_root


async def test_ok_dry_run_writes_nothing(gateway: Gateway) -> None:
    legacy = await build_legacy(gateway)
    before = await row_counts(gateway)
    dry = await export(gateway, legacy.project_id, {"dry_run": True})
    assert await row_counts(gateway) == before
    assert dry["dry_run"] is True and dry["exported_at"] is None
    real = await export(gateway, legacy.project_id, {})

    def shape(result: dict[str, Any]) -> Any:
        exported = {
            kind: sorted((e["source_id"], e["renamed_from"]) for e in entries)
            for kind, entries in result["exported"].items()
        }
        return exported, sorted((s["source_id"], s["reason"]) for s in result["skipped"])

    assert shape(dry) == shape(real)
    assert await row_counts(gateway) != before


async def test_fail_second_export_needs_again(gateway: Gateway) -> None:
    legacy = await build_legacy(gateway)
    first = await export(gateway, legacy.project_id, {})
    before = await row_counts(gateway)
    refused = await export(gateway, legacy.project_id, {}, status=409)
    assert refused["error"]["code"] == "already_exported"
    assert first["exported_at"][:19] in refused["error"]["message"]
    assert await row_counts(gateway) == before
    again = await export(gateway, legacy.project_id, {"again": True})
    # The first copies now hold the names: every copy of the second export is renamed.
    first_names = {e["name"] for e in first["exported"]["cas"]}
    for entry in again["exported"]["cas"]:
        assert entry["name"] not in first_names and entry["renamed_from"]


@pytest.mark.parametrize("mode", ["ok/corrupt-key", "ok/raise-on-second-ca"])
async def test_ok_failure_mid_export_leaves_nothing(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    legacy = await build_legacy(gateway)
    if mode == "ok/corrupt-key":
        # The 2nd CA copied (the intermediate) cannot be decrypted: the error names it.
        async with gateway.services.db.transaction() as tx:
            await tx.session.execute(
                update(tables.certificate_authorities)
                .where(tables.certificate_authorities.c.id == uuid.UUID(legacy.ids["old-issuing"]))
                .values(encrypted_key=b"\x01" + b"\x00" * 40)
            )
    else:
        real = export_service.encrypt_ca_key
        calls: list[uuid.UUID] = []

        async def flaky(kms: Any, project_id: uuid.UUID, ca_id: uuid.UUID, key: Any) -> bytes:
            calls.append(ca_id)
            if len(calls) == 2:
                raise RuntimeError("injected failure")
            return await real(kms, project_id, ca_id, key)

        monkeypatch.setattr(export_service, "encrypt_ca_key", flaky)
    before = await row_counts(gateway)
    if mode == "ok/corrupt-key":
        failed = await export(gateway, legacy.project_id, {}, status=409)
        assert failed["error"]["code"] == "export_ca_failed"
        assert "old-issuing" in failed["error"]["message"]
        assert legacy.ids["old-issuing"] in failed["error"]["message"]
    else:
        resp = await gateway.client.post(
            f"/api/v1/projects/{legacy.project_id}/export", json={}, headers=gateway.auth
        )
        assert resp.status == 500
    assert await row_counts(gateway) == before
    listed = {p["id"]: p for p in (await gateway.get("/api/v1/projects"))["items"]}
    assert listed[legacy.project_id]["exported_at"] is None


async def other_organization_project(gw: Gateway) -> str:
    from gateway.core.model import Organization, Project, ProjectStatus

    services = gw.services
    async with services.db.transaction() as tx:
        org = Organization(new_id(), "elsewhere", services.clock.now())
        await tx.organizations.add(org)
        project_id = new_id()
        await tx.projects.add(
            Project(
                project_id,
                org.id,
                "theirs",
                ProjectStatus.LEGACY,
                services.kms.new_wrapped_data_key(project_id),
                services.clock.now(),
            )
        )
    return str(project_id)


BadCase = Callable[[Gateway], Awaitable[str]]


async def _active(gw: Gateway) -> str:
    return str(next(p["id"] for p in (await gw.get("/api/v1/projects"))["items"]))


async def _unknown(_gw: Gateway) -> str:
    return str(uuid.uuid4())


async def _not_a_uuid(_gw: Gateway) -> str:
    return "not-a-uuid"


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        pytest.param(_active, 409, "export_active_project", id="fail/active-project"),
        pytest.param(_unknown, 404, "project_not_found", id="fail/unknown-project"),
        pytest.param(_not_a_uuid, 404, "not_found", id="fail/not-a-uuid"),
        pytest.param(
            other_organization_project, 409, "export_other_organization", id="fail/other-org"
        ),
    ],
)
async def test_fail_bad_source(gateway: Gateway, make: BadCase, status: int, code: str) -> None:
    project_id = await make(gateway)
    before = await row_counts(gateway)
    failed = await export(gateway, project_id, {"dry_run": False}, status=status)
    assert failed["error"]["code"] == code, failed
    assert failed["error"]["message"]
    assert await row_counts(gateway) == before


async def test_fail_bad_body(gateway: Gateway) -> None:
    legacy = await build_legacy(gateway)
    failed = await export(gateway, legacy.project_id, {"dry_run": "yes"}, status=400)
    assert failed["error"]["code"] == "invalid_input"
    # No body at all is a real export.
    resp = await gateway.client.post(
        f"/api/v1/projects/{legacy.project_id}/export", headers=gateway.auth
    )
    assert resp.status == 200, await resp.text()


async def test_ok_concurrent_exports_copy_once(gateway: Gateway) -> None:
    """Two exports at once: one copies, the other finds it exported (the project row is
    locked for the export's transaction)."""
    import asyncio

    legacy = await build_legacy(gateway)
    path = f"/api/v1/projects/{legacy.project_id}/export"

    async def one() -> tuple[int, str]:
        resp = await gateway.client.post(path, json={}, headers=gateway.auth)
        body = await resp.json()
        return resp.status, body["error"]["code"] if resp.status != 200 else ""

    answers = sorted(await asyncio.gather(one(), one()))
    # Not a name collision between the two sets of copies: the second saw the first.
    assert answers == [(200, ""), (409, "already_exported")]
    audit = (await gateway.get("/api/v1/audit?action=project.exported"))["items"]
    assert len(audit) == 1
