"""Certificate authorities and their CRLs."""

from __future__ import annotations

import builtins
import uuid

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping

from gateway.core.errors import Conflict, NotFound
from gateway.core.model import CAKind, CAStatus, CertificateAuthority, CrlRecord, KeyType
from store import tables
from store.repos._base import Repository

_t_ca = tables.certificate_authorities
_t_crl = tables.crls


def _ca(row: RowMapping) -> CertificateAuthority:
    return CertificateAuthority(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        kind=CAKind(row["kind"]),
        parent_id=row["parent_id"],
        key_type=KeyType(row["key_type"]),
        certificate_pem=row["certificate_pem"],
        chain_pem=row["chain_pem"],
        subject=row["subject"],
        serial=row["serial"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        status=CAStatus(row["status"]),
        encrypted_key=bytes(row["encrypted_key"]),
        created_at=row["created_at"],
        exportable=bool(row["exportable"]),
    )


def _crl(row: RowMapping) -> CrlRecord:
    return CrlRecord(
        ca_id=row["ca_id"],
        number=int(row["number"]),
        der=bytes(row["der"]),
        this_update=row["this_update"],
        next_update=row["next_update"],
    )


class CARepository(Repository):
    table = _t_ca
    what = "certificate authority"

    async def add(self, ca: CertificateAuthority) -> None:
        await self._insert(
            {
                "id": ca.id,
                "project_id": ca.project_id,
                "name": ca.name,
                "kind": ca.kind.value,
                "parent_id": ca.parent_id,
                "key_type": ca.key_type.value,
                "certificate_pem": ca.certificate_pem,
                "chain_pem": ca.chain_pem,
                "subject": ca.subject,
                "serial": ca.serial,
                "not_before": ca.not_before,
                "not_after": ca.not_after,
                "status": ca.status.value,
                "encrypted_key": ca.encrypted_key,
                "created_at": ca.created_at,
                "exportable": ca.exportable,
            },
            {
                "uq_certificate_authorities_project_id_name": lambda: Conflict(
                    f"a certificate authority named {ca.name!r} already exists in this project"
                ),
            },
        )

    async def get(self, ca_id: uuid.UUID | None) -> CertificateAuthority | None:
        """The CA `ca_id` names; None for None (a self-signed profile names no CA)."""
        if ca_id is None:
            return None
        row = await self._get_by(_t_ca.c.id == ca_id)
        return _ca(row) if row else None

    async def get_by_name(self, project_id: uuid.UUID, name: str) -> CertificateAuthority | None:
        row = await self._get_by(_t_ca.c.project_id == project_id, _t_ca.c.name == name)
        return _ca(row) if row else None

    async def list(
        self, project_id: uuid.UUID | None = None
    ) -> builtins.list[CertificateAuthority]:
        query = select(_t_ca).order_by(_t_ca.c.created_at, _t_ca.c.name)
        if project_id is not None:
            query = query.where(_t_ca.c.project_id == project_id)
        return [_ca(r) for r in await self._all(query)]

    async def set_status(self, ca_id: uuid.UUID, status: CAStatus) -> CertificateAuthority | None:
        row = await self._update_returning(
            update(_t_ca).where(_t_ca.c.id == ca_id).values(status=status.value).returning(*_t_ca.c)
        )
        return _ca(row) if row else None

    async def next_crl_number(self, ca_id: uuid.UUID) -> int:
        """The next CRL number for this CA (1, 2, …), never handed out twice.

        One atomic UPDATE … RETURNING: the row lock (PostgreSQL) or the write lock
        (SQLite) orders concurrent callers, in one process or several.
        """
        result = await self._session.execute(
            update(_t_ca)
            .where(_t_ca.c.id == ca_id)
            .values(crl_number=_t_ca.c.crl_number + 1)
            .returning(_t_ca.c.crl_number)
        )
        number = result.scalar_one_or_none()
        if number is None:
            raise NotFound("no such certificate authority")
        return int(number)


class CrlRepository(Repository):
    table = _t_crl
    what = "CRL"

    async def put(self, record: CrlRecord) -> None:
        """Store `record` as the CA's latest CRL, replacing the previous one."""
        await self._upsert(
            {
                "ca_id": record.ca_id,
                "number": record.number,
                "der": record.der,
                "this_update": record.this_update,
                "next_update": record.next_update,
            },
            key=("ca_id",),
        )

    async def get(self, ca_id: uuid.UUID) -> CrlRecord | None:
        row = await self._get_by(_t_crl.c.ca_id == ca_id)
        return _crl(row) if row else None
