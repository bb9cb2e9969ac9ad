"""Certificate authority management: create root/intermediate, import, register an external
CA, list, disable.

Private keys are encrypted under the project's data key before they reach the store; an
external CA has none here (its certificate only).

Use cases open their own transaction: list_cas, get_ca, add_ca, add_external, import_ca,
set_status.
`create_root` and `create_intermediate` work inside the caller's transaction (bootstrap)
and are what add_ca wraps.
"""

from __future__ import annotations

import uuid
from datetime import UTC

from cryptography import x509

from gateway.core.errors import InvalidInput, NotFound
from gateway.core.model import CAKind, CAStatus, CertificateAuthority, KeyType, new_id
from gateway.pki import ca as ca_lib
from gateway.pki.keys import PrivateKey, key_type_of
from gateway.pki.signer import encrypt_ca_key
from gateway.services.audit import Actor, event
from gateway.services.catalog import check_writable, project_scope
from gateway.services.graph import Services
from store.db import Tx


def parse_key_type(value: str) -> KeyType:
    try:
        return KeyType(value)
    except ValueError:
        allowed = ", ".join(k.value for k in KeyType)
        raise InvalidInput(f"unknown key type '{value}' (allowed: {allowed})") from None


async def _store_ca(
    services: Services,
    tx: Tx,
    actor: Actor,
    *,
    project_id: uuid.UUID,
    name: str,
    kind: CAKind,
    parent: CertificateAuthority | None,
    cert: x509.Certificate,
    key: PrivateKey | None,
    chain_pem: str,
    action: str,
    exportable: bool = True,
) -> CertificateAuthority:
    """Store a CA; `key` None for an external CA (kind EXTERNAL: its key is held elsewhere)."""
    ca_id = new_id()
    key_type = key_type_of(cert.public_key())
    if key_type is None:
        raise InvalidInput("the CA key type is not supported")
    ca = CertificateAuthority(
        id=ca_id,
        project_id=project_id,
        name=name,
        kind=kind,
        parent_id=parent.id if parent else None,
        key_type=key_type,
        certificate_pem=ca_lib.certificate_to_pem(cert),
        chain_pem=chain_pem,
        subject=cert.subject.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc.astimezone(UTC),
        not_after=cert.not_valid_after_utc.astimezone(UTC),
        status=CAStatus.ACTIVE,
        encrypted_key=(
            b"" if key is None else await encrypt_ca_key(services.kms, project_id, ca_id, key)
        ),
        created_at=services.clock.now(),
        exportable=exportable,
    )
    await tx.cas.add(ca)
    await tx.audit.add(
        event(
            actor,
            ca.created_at,
            action,
            "ca",
            ca.id,
            project_id=project_id,
            details={
                "name": name,
                "kind": kind.value,
                "subject": ca.subject,
                "exportable": exportable,
            },
        )
    )
    return ca


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInput("CA name must be 1 to 128 characters")
    return name


async def create_root(
    services: Services,
    tx: Tx,
    actor: Actor,
    *,
    project_id: uuid.UUID,
    name: str,
    common_name: str | None = None,
    key_type: KeyType = KeyType.EC_P256,
    validity_days: int = 3650,
    exportable: bool = True,
) -> CertificateAuthority:
    name = _check_name(name)
    if validity_days <= 0:
        raise InvalidInput("validity_days must be positive")
    cert, key = ca_lib.create_root_ca(common_name or name, key_type, validity_days)
    return await _store_ca(
        services,
        tx,
        actor,
        project_id=project_id,
        name=name,
        kind=CAKind.ROOT,
        parent=None,
        cert=cert,
        key=key,
        chain_pem="",
        action="ca.created",
        exportable=exportable,
    )


async def create_intermediate(
    services: Services,
    tx: Tx,
    actor: Actor,
    *,
    parent_id: uuid.UUID,
    name: str,
    common_name: str | None = None,
    key_type: KeyType = KeyType.EC_P256,
    validity_days: int = 1825,
    exportable: bool = True,
) -> CertificateAuthority:
    name = _check_name(name)
    if validity_days <= 0:
        raise InvalidInput("validity_days must be positive")
    parent = await tx.cas.get(parent_id)
    if parent is None:
        raise NotFound(f"parent CA {parent_id} not found")
    if not parent.enabled:
        raise InvalidInput(f"parent CA '{parent.name}' is disabled")
    if not parent.holds_key:
        raise InvalidInput(
            f"parent CA '{parent.name}' is external: its key is held outside certgate, so "
            "it cannot sign an intermediate here"
        )
    parent_project = await tx.projects.get(parent.project_id)
    if parent_project is not None:
        check_writable(parent_project)
    parent_cert = x509.load_pem_x509_certificate(parent.certificate_pem.encode())
    parent_key = await services.signer.load_ca_key(parent)
    cert, key = ca_lib.create_intermediate_ca(
        common_name or name,
        key_type,
        validity_days,
        parent_cert,
        parent_key,
        issuer_ca_id=parent.id,
        urls=services.urls,
    )
    return await _store_ca(
        services,
        tx,
        actor,
        project_id=parent.project_id,
        name=name,
        kind=CAKind.INTERMEDIATE,
        parent=parent,
        cert=cert,
        key=key,
        chain_pem=parent.full_chain_pem,
        action="ca.created",
        exportable=exportable,
    )


async def list_cas(services: Services, project_ref: object | None) -> list[CertificateAuthority]:
    """The CAs of the project `project_ref` names (catalog.project_scope; None: the active)."""
    async with services.db.transaction(read_only=True) as tx:
        project = await project_scope(tx, project_ref)
        return await tx.cas.list(project.id)


async def get_ca(services: Services, ca_id: uuid.UUID) -> CertificateAuthority:
    async with services.db.transaction(read_only=True) as tx:
        ca = await tx.cas.get(ca_id)
    if ca is None:
        raise NotFound("CA not found")
    return ca


async def add_ca(
    services: Services,
    actor: Actor,
    *,
    kind: str,
    name: str,
    project_ref: object | None = None,
    parent_id: uuid.UUID | None = None,
    common_name: str | None = None,
    key_type: KeyType = KeyType.EC_P256,
    validity_days: int | None = None,
    exportable: bool = True,
) -> CertificateAuthority:
    """A new internal CA: `kind` "root" in the project `project_ref` names, or
    "intermediate" under `parent_id` (in its parent's project). validity_days None: the
    configured default for the kind."""
    pki = services.config.pki
    async with services.db.transaction() as tx:
        if kind == "root":
            project = await project_scope(tx, project_ref, write=True)
            return await create_root(
                services,
                tx,
                actor,
                project_id=project.id,
                name=name,
                common_name=common_name,
                key_type=key_type,
                validity_days=pki.root_validity_days if validity_days is None else validity_days,
                exportable=exportable,
            )
        if kind == "intermediate":
            if parent_id is None:
                raise InvalidInput("parent_id (UUID of the issuing CA) is required")
            return await create_intermediate(
                services,
                tx,
                actor,
                parent_id=parent_id,
                name=name,
                common_name=common_name,
                key_type=key_type,
                validity_days=(
                    pki.intermediate_validity_days if validity_days is None else validity_days
                ),
                exportable=exportable,
            )
        raise InvalidInput("kind must be 'root', 'intermediate' or 'external'")


async def add_external(
    services: Services,
    actor: Actor,
    *,
    name: str,
    certificate_pem: str,
    chain_pem: str | None = None,
    project_ref: object | None = None,
    exportable: bool = True,
) -> CertificateAuthority:
    """Register an external CA in the project `project_ref` names: its certificate (and
    issuer chain) only. Its key is held by another system, so nothing is signed under it
    here: issuance answers ca_external, it has no CRL of ours, and an export skips it."""
    async with services.db.transaction() as tx:
        project = await project_scope(tx, project_ref, write=True)
        name = _check_name(name)
        cert, chain = ca_lib.load_external_ca(certificate_pem, chain_pem)
        return await _store_ca(
            services,
            tx,
            actor,
            project_id=project.id,
            name=name,
            kind=CAKind.EXTERNAL,
            parent=None,
            cert=cert,
            key=None,
            chain_pem="".join(ca_lib.certificate_to_pem(c) for c in chain),
            action="ca.external_added",
            exportable=exportable,
        )


async def import_ca(
    services: Services,
    actor: Actor,
    *,
    project_ref: object | None = None,
    name: str,
    certificate_pem: str,
    private_key_pem: str,
    passphrase: str | None = None,
    chain_pem: str | None = None,
    exportable: bool = True,
) -> CertificateAuthority:
    """An existing CA certificate and key into the project `project_ref` names."""
    async with services.db.transaction() as tx:
        project = await project_scope(tx, project_ref, write=True)
        name = _check_name(name)
        cert, key, chain = ca_lib.load_ca_import(
            certificate_pem, private_key_pem, passphrase, chain_pem
        )
        self_signed = cert.issuer == cert.subject
        if not self_signed and not chain:
            raise InvalidInput(
                "an intermediate CA needs its issuer chain (chain_pem) up to the root"
            )
        return await _store_ca(
            services,
            tx,
            actor,
            project_id=project.id,
            name=name,
            kind=CAKind.ROOT if self_signed else CAKind.INTERMEDIATE,
            parent=None,
            cert=cert,
            key=key,
            chain_pem="".join(ca_lib.certificate_to_pem(c) for c in chain),
            action="ca.imported",
            exportable=exportable,
        )


async def set_status(
    services: Services, actor: Actor, ca_id: uuid.UUID, status: CAStatus
) -> CertificateAuthority:
    """Disable (nothing more is issued under it) or enable a CA."""
    async with services.db.transaction() as tx:
        before = await tx.cas.get(ca_id)
        if before is None:
            raise NotFound("CA not found")
        updated = await tx.cas.set_status(ca_id, status)
        assert updated is not None
        await tx.audit.add(
            event(
                actor,
                services.clock.now(),
                "ca.disabled" if status is CAStatus.DISABLED else "ca.enabled",
                "ca",
                ca_id,
                project_id=updated.project_id,
                details={"before": before.status.value, "after": status.value},
            )
        )
    return updated
