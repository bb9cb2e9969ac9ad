"""Issued certificates."""

from __future__ import annotations

import builtins
import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.engine import RowMapping

from gateway.core.errors import DuplicateSerial
from gateway.core.model import (
    Certificate,
    CertificateStatus,
    EnrollmentMethod,
    Page,
    RevocationReason,
)
from store import tables
from store.filters import CertificateFilter
from store.repos._base import Repository

_t = tables.certificates
_ACTIVE = CertificateStatus.ACTIVE.value
_REVOKED = CertificateStatus.REVOKED.value


def _certificate(row: RowMapping) -> Certificate:
    reason = row["revocation_reason"]
    return Certificate(
        id=row["id"],
        serial=row["serial"],
        project_id=row["project_id"],
        ca_id=row["ca_id"],
        profile_id=row["profile_id"],
        application_id=row["application_id"],
        subject=row["subject"],
        common_name=row["common_name"],
        sans=tuple(row["sans"]),
        key_type=row["key_type"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        status=CertificateStatus(row["status"]),
        revoked_at=row["revoked_at"],
        revocation_reason=RevocationReason(reason) if reason is not None else None,
        certificate_pem=row["certificate_pem"],
        chain_pem=row["chain_pem"],
        method=EnrollmentMethod(row["method"]),
        requester=row["requester"],
        renewed_from=row["renewed_from"],
        created_at=row["created_at"],
    )


def sans_text(sans: tuple[str, ...]) -> str:
    """What `search` matches: the typed SANs, lower-cased, one per line."""
    return "\n".join(s.lower() for s in sans)


def _conditions(f: CertificateFilter) -> builtins.list[ColumnElement[bool]]:
    where: builtins.list[ColumnElement[bool]] = []
    if f.project_id is not None:
        where.append(_t.c.project_id == f.project_id)
    if f.application_id is not None:
        where.append(_t.c.application_id == f.application_id)
    if f.profile_id is not None:
        where.append(_t.c.profile_id == f.profile_id)
    if f.ca_id is not None:
        where.append(_t.c.ca_id == f.ca_id)
    if f.status is not None:
        now = f.now or datetime.now(UTC)
        if f.status == "revoked":
            where.append(_t.c.status == _REVOKED)
        elif f.status == "active":
            where.extend((_t.c.status == _ACTIVE, _t.c.not_after >= now))
        else:  # expired
            where.extend((_t.c.status == _ACTIVE, _t.c.not_after < now))
    if f.expiring_before is not None:
        where.append(_t.c.not_after < f.expiring_before)
    if f.search:
        term = f.search.lower()
        where.append(
            or_(
                _t.c.common_name.icontains(term, autoescape=True),
                _t.c.sans_text.contains(term, autoescape=True),
            )
        )
    return where


class CertificateRepository(Repository):
    table = _t
    what = "certificate"

    async def add(self, certificate: Certificate) -> None:
        """Insert; DuplicateSerial if the serial is taken, Conflict for other duplicates."""
        c = certificate
        await self._insert(
            {
                "id": c.id,
                "serial": c.serial,
                "project_id": c.project_id,
                "ca_id": c.ca_id,
                "profile_id": c.profile_id,
                "application_id": c.application_id,
                "subject": c.subject,
                "common_name": c.common_name,
                "sans": list(c.sans),
                "sans_text": sans_text(c.sans),
                "key_type": c.key_type,
                "not_before": c.not_before,
                "not_after": c.not_after,
                "status": c.status.value,
                "revoked_at": c.revoked_at,
                "revocation_reason": c.revocation_reason.value if c.revocation_reason else None,
                "certificate_pem": c.certificate_pem,
                "chain_pem": c.chain_pem,
                "method": c.method.value,
                "requester": c.requester,
                "renewed_from": c.renewed_from,
                "created_at": c.created_at,
            },
            {
                tables.CERTIFICATE_SERIAL_INDEX: lambda: DuplicateSerial(
                    f"a certificate with serial {c.serial} already exists"
                ),
            },
            keep_transaction=False,
        )

    async def get(self, certificate_id: uuid.UUID) -> Certificate | None:
        row = await self._get_by(_t.c.id == certificate_id)
        return _certificate(row) if row else None

    async def get_by_serial(self, serial: str) -> Certificate | None:
        row = await self._get_by(_t.c.serial == serial)
        return _certificate(row) if row else None

    async def list(
        self, filter: CertificateFilter, limit: int = 50, offset: int = 0
    ) -> Page[Certificate]:
        """Newest first (created_at, then id for a stable order)."""
        return await self._page(
            _conditions(filter),
            (_t.c.created_at.desc(), _t.c.id.desc()),
            limit,
            offset,
            _certificate,
        )

    async def revoke(
        self, certificate_id: uuid.UUID, at: datetime, reason: RevocationReason
    ) -> Certificate | None:
        """Mark revoked if still active; None when it was not active (or does not exist).

        The WHERE status='active' makes concurrent revocations of one certificate yield
        exactly one success (PostgreSQL re-checks the row after the lock; SQLite writers
        are serialized).
        """
        row = await self._update_returning(
            update(_t)
            .where(_t.c.id == certificate_id, _t.c.status == _ACTIVE)
            .values(status=_REVOKED, revoked_at=at, revocation_reason=reason.value)
            .returning(*_t.c)
        )
        return _certificate(row) if row else None

    async def with_renewed_by(
        self, certificates: Sequence[Certificate]
    ) -> builtins.list[Certificate]:
        """`certificates` with `renewed_by` filled: for each, the newest certificate that
        names it in renewed_from (one query for the lot)."""
        ids = [c.id for c in certificates]
        if not ids:
            return list(certificates)
        rows = await self._all(
            select(_t.c.renewed_from, _t.c.id)
            .where(_t.c.renewed_from.in_(ids))
            .order_by(_t.c.created_at, _t.c.id)
        )
        # Oldest first, so the newest renewal of each is the one left in the dict.
        newest = {row["renewed_from"]: row["id"] for row in rows}
        return [dataclasses.replace(c, renewed_by=newest.get(c.id)) for c in certificates]

    async def list_revoked(
        self, ca_id: uuid.UUID, now: datetime | None = None
    ) -> builtins.list[tuple[str, datetime, RevocationReason]]:
        """(serial, revoked_at, reason) of this CA's revoked certificates not yet expired
        at `now` (default: the current time): what its CRL lists."""
        now = now or datetime.now(UTC)
        rows = await self._session.execute(
            select(_t.c.serial, _t.c.revoked_at, _t.c.revocation_reason)
            .where(_t.c.ca_id == ca_id, _t.c.status == _REVOKED, _t.c.not_after >= now)
            .order_by(_t.c.revoked_at, _t.c.serial)
        )
        return [
            (
                serial,
                revoked_at,
                RevocationReason(reason) if reason else RevocationReason.UNSPECIFIED,
            )
            for serial, revoked_at, reason in rows.all()
        ]
