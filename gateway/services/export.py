"""Export of a legacy project into the active one (issue 12, item 3).

A copy, not a move: the legacy project keeps its CAs, policies and profiles (and keeps
issuing through its legacy endpoints), but becomes read-only (`exported_at`). The two are
independent afterwards: nothing about revocation or issuance is synchronized.

Everything happens in one transaction: internal CAs (parents first) with their keys
re-encrypted under the active project's data key and bound to the copy's row, an empty CRL
for each copy, policies, and the profiles whose issuer came along. A dry run does the same
work and rolls it back, so its result (and its checks: every key must decrypt) is exactly
what a real export would answer.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from cryptography import x509
from sqlalchemy import select

from gateway.core.errors import Conflict, DomainError, InvalidInput, NotFound
from gateway.core.model import (
    CAKind,
    CertificateAuthority,
    Policy,
    Profile,
    Project,
    ProjectStatus,
    new_id,
)
from gateway.pki.keys import load_private_key_der, public_key_der
from gateway.pki.kms import KmsError, ca_key_aad
from gateway.pki.signer import encrypt_ca_key
from gateway.services.audit import Actor, event
from gateway.services.graph import Services
from gateway.targets import active_project
from store import tables
from store.db import Tx

# Called after each entity is handled: (done, total, "ca root-ca"), for a progress bar.
Progress = Callable[[int, int, str], None]

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_NAME_MAX = 128  # names of CAs, policies and profiles (catalog/cas checks)
_SLUG_MAX = 63  # DESIGN.md: slugs are [a-z0-9-]{1,63}


@dataclass(frozen=True)
class Exported:
    source_id: str
    id: str
    name: str
    renamed_from: str | None = None
    # Profiles only: the slug the copy is attached by (renamed along with the name).
    slug: str | None = None


@dataclass(frozen=True)
class Skipped:
    kind: str  # "ca" | "profile"
    source_id: str
    name: str
    reason: str


@dataclass
class ExportResult:
    source_project_id: str
    target_project_id: str
    dry_run: bool
    exported_at: str | None = None
    cas: list[Exported] = field(default_factory=list)
    policies: list[Exported] = field(default_factory=list)
    profiles: list[Exported] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The REST answer (DESIGN.md Contract), also what `certgate project export --json`
        prints."""

        def entry(item: Exported) -> dict[str, Any]:
            out = asdict(item)
            if out["slug"] is None:
                del out["slug"]
            return out

        return {
            "source_project_id": self.source_project_id,
            "target_project_id": self.target_project_id,
            "dry_run": self.dry_run,
            "exported_at": self.exported_at,
            "exported": {
                "cas": [entry(c) for c in self.cas],
                "policies": [entry(p) for p in self.policies],
                "profiles": [entry(p) for p in self.profiles],
            },
            "skipped": [asdict(s) for s in self.skipped],
        }


class _DryRun(Exception):
    """Raised at the end of a dry run so the transaction rolls everything back."""

    def __init__(self, result: ExportResult) -> None:
        super().__init__("dry run")
        self.result = result


async def export_project(
    services: Services,
    actor: Actor,
    project_ref: uuid.UUID | str,
    *,
    dry_run: bool = False,
    again: bool = False,
    progress: Progress | None = None,
) -> ExportResult:
    """Copy the legacy project `project_ref` (an id, or a name) names into the active
    project, in one transaction; `dry_run` answers the same and writes nothing."""
    try:
        async with services.db.transaction() as tx:
            result = await _export(services, tx, actor, project_ref, dry_run, again, progress)
            if dry_run:
                raise _DryRun(result)
    except _DryRun as done:
        return done.result
    return result


async def _source_project(tx: Tx, project_ref: uuid.UUID | str) -> Project:
    project: Project | None = None
    try:
        project_id = project_ref if isinstance(project_ref, uuid.UUID) else uuid.UUID(project_ref)
    except ValueError:
        # Not an id: the CLI also takes a project's name.
        named = [p for p in await tx.projects.list() if p.name == project_ref]
        project = named[0] if len(named) == 1 else None
        if len(named) > 1:
            raise InvalidInput(
                f"several projects are named {project_ref!r}; name the project by its id"
            ) from None
    else:
        project = await tx.projects.get(project_id)
    if project is None:
        raise NotFound(f"project {str(project_ref)[:80]!r} not found", code="project_not_found")
    return project


async def _locked(tx: Tx, project: Project) -> Project:
    """The project re-read under a row lock (PostgreSQL; SQLite's write transactions are
    serialized already), so that of two concurrent exports the second sees the first's
    `exported_at` and needs again=true instead of copying everything a second time."""
    await tx.session.execute(
        select(tables.projects.c.id).where(tables.projects.c.id == project.id).with_for_update()
    )
    return await tx.projects.get(project.id) or project


async def _export(
    services: Services,
    tx: Tx,
    actor: Actor,
    project_ref: uuid.UUID | str,
    dry_run: bool,
    again: bool,
    progress: Progress | None,
) -> ExportResult:
    source = await _locked(tx, await _source_project(tx, project_ref))
    target = await active_project(tx)
    if source.id == target.id or source.status is ProjectStatus.ACTIVE:
        raise Conflict(
            f"project '{source.name}' is the active project; only a legacy project can be "
            "exported into it",
            code="export_active_project",
        )
    if source.organization_id != target.organization_id:
        raise Conflict(
            f"project '{source.name}' belongs to another organization than the active "
            f"project '{target.name}'",
            code="export_other_organization",
        )
    if source.exported_at is not None and not again:
        raise Conflict(
            f"project '{source.name}' was already exported at "
            f"{source.exported_at.isoformat()}; send again=true to export it once more",
            code="already_exported",
        )

    cas = _parents_first(await tx.cas.list(source.id))
    policies = await tx.policies.list(source.id)
    profiles = await tx.profiles.list(source.id)
    total = len(cas) + len(policies) + len(profiles)
    done = 0

    def step(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    result = ExportResult(str(source.id), str(target.id), dry_run)
    now = services.clock.now()
    names = _Names(
        cas={c.name for c in await tx.cas.list(target.id)},
        policies={p.name for p in await tx.policies.list(target.id)},
        profile_slugs={p.slug for p in await tx.profiles.list(target.id)},
        profile_names={p.name for p in await tx.profiles.list(target.id)},
    )

    # CAs, parents before children: a copy's parent_id names its parent's copy.
    ca_map: dict[uuid.UUID, uuid.UUID] = {}
    ca_skip: dict[uuid.UUID, str] = {}  # source CA id -> why it (and its profiles) stay
    for ca in cas:
        reason = _ca_skip_reason(ca, ca_skip, {c.id: c for c in cas})
        if reason is not None:
            ca_skip[ca.id] = reason
            result.skipped.append(Skipped("ca", str(ca.id), ca.name, reason))
        else:
            copy = await _copy_ca(services, tx, ca, target, ca_map, names, now)
            ca_map[ca.id] = copy.id
            result.cas.append(_exported(ca.id, copy.id, copy.name, ca.name))
        step(f"ca {ca.name}")

    policy_map: dict[uuid.UUID, uuid.UUID] = {}
    for policy in policies:
        name = names.take(names.policies, policy.name, _NAME_MAX)
        copied = Policy(new_id(), target.id, name, policy.rules, now)
        await tx.policies.add(copied)
        policy_map[policy.id] = copied.id
        result.policies.append(_exported(policy.id, copied.id, name, policy.name))
        step(f"policy {policy.name}")

    for profile in profiles:
        why = _profile_skip_reason(profile, ca_map, ca_skip, policy_map, cas)
        if why is not None:
            result.skipped.append(Skipped("profile", str(profile.id), profile.name, why))
        else:
            copied_profile = _copy_profile(profile, target, ca_map, policy_map, names, now)
            await tx.profiles.add(copied_profile)
            renamed = copied_profile.slug != profile.slug or copied_profile.name != profile.name
            result.profiles.append(
                Exported(
                    str(profile.id),
                    str(copied_profile.id),
                    copied_profile.name,
                    profile.name if renamed else None,
                    copied_profile.slug,
                )
            )
        step(f"profile {profile.slug}")

    await tx.projects.mark_exported(source.id, now)
    result.exported_at = None if dry_run else now.isoformat()
    details = result.as_dict()
    details["again"] = again
    await tx.audit.add(
        event(
            actor,
            now,
            "project.exported",
            "project",
            source.id,
            project_id=source.id,
            details=details,
        )
    )
    return result


@dataclass
class _Names:
    """Names and slugs taken in the active project, including the copies made so far."""

    cas: set[str]
    policies: set[str]
    profile_slugs: set[str]
    profile_names: set[str]

    @staticmethod
    def take(taken: set[str], wanted: str, limit: int) -> str:
        """`wanted`, or `{wanted}-{8 random lowercase alphanumerics}` when it is taken."""
        name = wanted
        while name in taken:
            name = f"{wanted[: limit - 9]}-{_suffix()}"
        taken.add(name)
        return name


def _suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(8))


def _exported(source_id: uuid.UUID, new: uuid.UUID, name: str, original: str) -> Exported:
    return Exported(str(source_id), str(new), name, original if name != original else None)


def _parents_first(cas: list[CertificateAuthority]) -> list[CertificateAuthority]:
    """The project's CAs ordered so that each comes after its parent (when its parent is
    in the same project); otherwise in their listed (creation) order."""
    by_id = {ca.id: ca for ca in cas}
    ordered: list[CertificateAuthority] = []
    placed: set[uuid.UUID] = set()

    def place(ca: CertificateAuthority, seen: frozenset[uuid.UUID]) -> None:
        if ca.id in placed:
            return
        parent = by_id.get(ca.parent_id) if ca.parent_id else None
        if parent is not None and parent.id not in seen:  # `seen`: a corrupt loop ends here
            place(parent, seen | {ca.id})
        placed.add(ca.id)
        ordered.append(ca)

    for ca in cas:
        place(ca, frozenset({ca.id}))
    return ordered


def _ca_skip_reason(
    ca: CertificateAuthority,
    skipped: dict[uuid.UUID, str],
    by_id: dict[uuid.UUID, CertificateAuthority],
) -> str | None:
    if ca.kind is CAKind.EXTERNAL or not ca.holds_key:
        return "external CA: its key is not held here"
    if not ca.exportable:
        return "the CA's key is not exportable"
    if ca.parent_id is not None and ca.parent_id in skipped:
        return f"its parent CA '{by_id[ca.parent_id].name}' is not exported"
    return None


def _profile_skip_reason(
    profile: Profile,
    ca_map: dict[uuid.UUID, uuid.UUID],
    ca_skip: dict[uuid.UUID, str],
    policy_map: dict[uuid.UUID, uuid.UUID],
    cas: list[CertificateAuthority],
) -> str | None:
    if profile.policy_id not in policy_map:
        return "its policy is not in this project"
    if profile.self_signed or profile.ca_id in ca_map:
        return None
    if profile.ca_id is None:
        return "it names no CA"
    names = {ca.id: ca.name for ca in cas}
    if profile.ca_id in ca_skip:
        return f"its CA '{names[profile.ca_id]}' is not exported ({ca_skip[profile.ca_id]})"
    return "its CA is not in this project"


async def reencrypt_ca_key(
    services: Services, ca: CertificateAuthority, target_project_id: uuid.UUID, new_id: uuid.UUID
) -> bytes:
    """The CA's key, decrypted with the legacy project's data key and sealed under the
    target project's, bound to the copy's row (`ca_key_aad(new_id)`): the legacy key cannot
    open the copy, and the copy's blob cannot be moved back into the original's row. The
    key is decoded and checked against the certificate first, so a copy never holds a key
    that cannot sign."""
    try:
        der = await services.kms.decrypt(ca.project_id, ca.encrypted_key, ca_key_aad(ca.id))
        key = load_private_key_der(der)
        cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode("ascii"))
    except (KmsError, DomainError, ValueError) as err:
        raise _ca_failed(ca, "its key cannot be decrypted or decoded") from err
    if public_key_der(cert.public_key()) != public_key_der(key.public_key()):
        raise _ca_failed(ca, "its key does not match its certificate")
    return await encrypt_ca_key(services.kms, target_project_id, new_id, key)


def _ca_failed(ca: CertificateAuthority, why: str) -> Conflict:
    return Conflict(
        f"CA '{ca.name}' ({ca.id}) cannot be exported: {why}; nothing was exported",
        code="export_ca_failed",
    )


async def _copy_ca(
    services: Services,
    tx: Tx,
    ca: CertificateAuthority,
    target: Project,
    ca_map: dict[uuid.UUID, uuid.UUID],
    names: _Names,
    now: datetime,
) -> CertificateAuthority:
    copy_id = new_id()
    copy = replace(
        ca,
        id=copy_id,
        project_id=target.id,
        name=names.take(names.cas, ca.name, _NAME_MAX),
        parent_id=ca_map.get(ca.parent_id) if ca.parent_id else None,
        encrypted_key=await reencrypt_ca_key(services, ca, target.id, copy_id),
        created_at=now,
    )
    await tx.cas.add(copy)
    try:
        # Its own CRL, empty: revocations of the original stay with the original.
        await services.crl.rebuild(tx, copy.id)
    except DomainError as err:
        raise _ca_failed(ca, err.message) from err
    return copy


def _copy_profile(
    profile: Profile,
    target: Project,
    ca_map: dict[uuid.UUID, uuid.UUID],
    policy_map: dict[uuid.UUID, uuid.UUID],
    names: _Names,
    now: datetime,
) -> Profile:
    slug_taken = profile.slug in names.profile_slugs
    name_taken = profile.name in names.profile_names
    slug, name = profile.slug, profile.name
    if slug_taken or name_taken:
        # One suffix for both, so the copy's slug and name still read as one profile.
        while True:
            suffix = _suffix()
            slug = f"{profile.slug[: _SLUG_MAX - 9]}-{suffix}"
            name = f"{profile.name[: _NAME_MAX - 9]}-{suffix}"
            if slug not in names.profile_slugs and name not in names.profile_names:
                break
    names.profile_slugs.add(slug)
    names.profile_names.add(name)
    return replace(
        profile,
        id=new_id(),
        project_id=target.id,
        slug=slug,
        name=name,
        ca_id=None if profile.self_signed or profile.ca_id is None else ca_map[profile.ca_id],
        policy_id=policy_map[profile.policy_id],
        # Legacy enrollment stays with the legacy profile: in the active project enrollment
        # is configured per application (attached profile).
        enrollment={},
        created_at=now,
    )
