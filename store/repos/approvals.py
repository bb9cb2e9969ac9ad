"""Approval policies and certificate requests."""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping

from gateway.core.errors import Conflict, InvalidInput
from gateway.core.model import (
    Approval,
    ApprovalPolicy,
    ApprovalStep,
    CertificateRequest,
    EnrollmentMethod,
    Page,
    RequestState,
)
from store import tables, tables_approvals
from store.repos._base import Repository

_p = tables_approvals.approval_policies
_r = tables_approvals.certificate_requests


def _policy(row: RowMapping) -> ApprovalPolicy:
    return ApprovalPolicy(
        id=row["id"],
        application_id=row["application_id"],
        profile_id=row["profile_id"],
        steps=tuple(
            ApprovalStep(
                approvers=tuple(uuid.UUID(a) for a in step["approvers"]),
                required=int(step["required"]),
            )
            for step in row["steps"]
        ),
        bypass=tuple(uuid.UUID(b) for b in row["bypass"]),
        request_ttl_seconds=row["request_ttl_seconds"],
        created_at=row["created_at"],
        project_id=row["project_id"],
    )


def _policy_values(policy: ApprovalPolicy) -> dict[str, Any]:
    return {
        "id": policy.id,
        "application_id": policy.application_id,
        "profile_id": policy.profile_id,
        "steps": [
            {"approvers": [str(a) for a in step.approvers], "required": step.required}
            for step in policy.steps
        ],
        "bypass": [str(b) for b in policy.bypass],
        "request_ttl_seconds": policy.request_ttl_seconds,
        "created_at": policy.created_at,
        "project_id": policy.project_id,
    }


class ApprovalPolicyRepository(Repository):
    table = _p
    what = "approval policy"

    async def get(self, policy_id: uuid.UUID) -> ApprovalPolicy | None:
        row = await self._get_by(_p.c.id == policy_id)
        return _policy(row) if row else None

    async def get_for(
        self, application_id: uuid.UUID, profile_id: uuid.UUID
    ) -> ApprovalPolicy | None:
        row = await self._get_by(
            _p.c.application_id == application_id, _p.c.profile_id == profile_id
        )
        return _policy(row) if row else None

    async def list(self, application_id: uuid.UUID) -> builtins.list[ApprovalPolicy]:
        rows = await self._all(
            select(_p).where(_p.c.application_id == application_id).order_by(_p.c.created_at)
        )
        return [_policy(r) for r in rows]

    async def put(self, policy: ApprovalPolicy) -> ApprovalPolicy:
        """Create, or replace the steps, bypass and TTL of the policy of the same application
        and profile. An existing policy keeps its id and created_at, so the audit trail of one
        (application, profile) policy stays under one id."""
        values = _policy_values(policy)
        dialect_insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        statement = dialect_insert(_p).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["application_id", "profile_id"],
            set_={k: statement.excluded[k] for k in ("steps", "bypass", "request_ttl_seconds")},
        )
        result = await self._guarded(statement.returning(*_p.c))
        return _policy(result.mappings().one())

    async def delete(self, application_id: uuid.UUID, profile_id: uuid.UUID) -> bool:
        result = await self._guarded(
            delete(_p).where(_p.c.application_id == application_id, _p.c.profile_id == profile_id)
        )
        return bool(result.rowcount)

    # --- legacy (project-level) policies: application_id NULL, project_id set ----------------

    async def get_legacy(self, profile_id: uuid.UUID) -> ApprovalPolicy | None:
        """The policy gating the profile's legacy profile-scoped enrollment, if any."""
        row = await self._get_by(_p.c.application_id.is_(None), _p.c.profile_id == profile_id)
        return _policy(row) if row else None

    async def list_legacy(self, project_id: uuid.UUID) -> builtins.list[ApprovalPolicy]:
        rows = await self._all(
            select(_p)
            .where(_p.c.application_id.is_(None), _p.c.project_id == project_id)
            .order_by(_p.c.created_at, _p.c.id)
        )
        return [_policy(r) for r in rows]

    async def add_legacy(self, policy: ApprovalPolicy) -> None:
        """Insert a legacy policy (the REST API never creates one: they come with a legacy
        project); Conflict when the profile already has one."""
        if policy.application_id is not None or policy.project_id is None:
            raise ValueError("a legacy approval policy has a project and no application")
        await self._insert(
            _policy_values(policy),
            {
                tables_approvals.LEGACY_POLICY_INDEX: lambda: Conflict(
                    "this profile already has a legacy approval policy"
                ),
            },
        )

    async def update_legacy(self, policy: ApprovalPolicy) -> ApprovalPolicy | None:
        """Replace the steps, bypass and TTL of the legacy policy `policy.id` (id, profile,
        project and created_at never change); None when there is no such legacy policy."""
        row = await self._update_returning(
            update(_p)
            .where(_p.c.id == policy.id, _p.c.application_id.is_(None))
            .values(
                {
                    k: v
                    for k, v in _policy_values(policy).items()
                    if k in ("steps", "bypass", "request_ttl_seconds")
                }
            )
            .returning(*_p.c)
        )
        return _policy(row) if row else None

    async def delete_legacy(self, policy_id: uuid.UUID) -> bool:
        result = await self._guarded(
            delete(_p).where(_p.c.id == policy_id, _p.c.application_id.is_(None))
        )
        return bool(result.rowcount)


def _approval(data: dict[str, Any]) -> Approval:
    return Approval(
        step=int(data["step"]),
        principal_id=uuid.UUID(data["principal_id"]),
        decision=data["decision"],
        comment=data["comment"],
        at=datetime.fromisoformat(data["at"]),
    )


def _approval_json(approval: Approval) -> dict[str, Any]:
    return {
        "step": approval.step,
        "principal_id": str(approval.principal_id),
        "decision": approval.decision,
        "comment": approval.comment,
        # isoformat keeps the offset, so the aware UTC datetime comes back as it went in.
        "at": approval.at.isoformat(),
    }


def _request(row: RowMapping) -> CertificateRequest:
    return CertificateRequest(
        id=row["id"],
        application_id=row["application_id"],
        profile_id=row["profile_id"],
        csr_pem=row["csr_pem"],
        fingerprint=row["fingerprint"],
        requester=row["requester"],
        requester_id=row["requester_id"],
        method=EnrollmentMethod(row["method"]),
        state=RequestState(row["state"]),
        step=row["step"],
        approvals=tuple(_approval(a) for a in row["approvals"]),
        requested_validity_days=row["requested_validity_days"],
        renewed_from=row["renewed_from"],
        certificate_id=row["certificate_id"],
        comment=row["comment"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


# What a transition may change; the rest of a request is fixed when it is opened.
def _mutable_values(request: CertificateRequest) -> dict[str, Any]:
    return {
        "state": request.state.value,
        "step": request.step,
        "approvals": [_approval_json(a) for a in request.approvals],
        "certificate_id": request.certificate_id,
        "comment": request.comment,
        "updated_at": request.updated_at,
    }


@dataclass(frozen=True)
class RequestFilter:
    """Every field left None is ignored; the rest are ANDed."""

    application_id: uuid.UUID | None = None
    state: RequestState | None = None
    requester_id: uuid.UUID | None = None
    profile_id: uuid.UUID | None = None
    # Legacy requests (no application) of this project's profiles.
    legacy_project_id: uuid.UUID | None = None


def _conditions(f: RequestFilter) -> builtins.list[ColumnElement[bool]]:
    where: builtins.list[ColumnElement[bool]] = []
    if f.application_id is not None:
        where.append(_r.c.application_id == f.application_id)
    if f.state is not None:
        where.append(_r.c.state == f.state.value)
    if f.requester_id is not None:
        where.append(_r.c.requester_id == f.requester_id)
    if f.profile_id is not None:
        where.append(_r.c.profile_id == f.profile_id)
    if f.legacy_project_id is not None:
        profiles = tables.profiles
        where.append(_r.c.application_id.is_(None))
        where.append(
            _r.c.profile_id.in_(
                select(profiles.c.id).where(profiles.c.project_id == f.legacy_project_id)
            )
        )
    return where


class RequestRepository(Repository):
    table = _r
    what = "certificate request"

    async def add(self, request: CertificateRequest) -> None:
        """Insert; Conflict(code="request_exists") when a live request (open or approved)
        already has this fingerprint."""
        if request.state not in (RequestState.OPEN, RequestState.APPROVED):
            raise InvalidInput("a new request must be live (open or approved)")
        await self._insert(
            {
                "id": request.id,
                "application_id": request.application_id,
                "profile_id": request.profile_id,
                "csr_pem": request.csr_pem,
                "fingerprint": request.fingerprint,
                "requester": request.requester,
                "requester_id": request.requester_id,
                "method": request.method.value,
                "requested_validity_days": request.requested_validity_days,
                "renewed_from": request.renewed_from,
                "created_at": request.created_at,
                "expires_at": request.expires_at,
                "version": request.version,
                **_mutable_values(request),
            },
            {
                tables_approvals.LIVE_FINGERPRINT_INDEX: lambda: Conflict(
                    "the same request is already waiting for approval", code="request_exists"
                ),
            },
        )

    async def get(self, request_id: uuid.UUID) -> CertificateRequest | None:
        row = await self._get_by(_r.c.id == request_id)
        return _request(row) if row else None

    async def list(
        self, filter: RequestFilter, limit: int = 50, offset: int = 0
    ) -> Page[CertificateRequest]:
        """Newest first (created_at, then id for a stable order)."""
        return await self._page(
            _conditions(filter), (_r.c.created_at.desc(), _r.c.id.desc()), limit, offset, _request
        )

    async def list_due(
        self,
        application_id: uuid.UUID | None,
        now: datetime,
        limit: int = 500,
        *,
        legacy_project_id: uuid.UUID | None = None,
    ) -> builtins.list[CertificateRequest]:
        """Open requests of an application (or, application_id None, the legacy requests of
        `legacy_project_id`) whose approval window has passed."""
        owner = _conditions(
            RequestFilter(application_id=application_id, legacy_project_id=legacy_project_id)
        )
        if not owner:
            raise ValueError("list_due needs an application or a legacy project")
        rows = await self._all(
            select(_r)
            .where(
                *owner,
                _r.c.state == RequestState.OPEN.value,
                _r.c.expires_at <= now,
            )
            .order_by(_r.c.expires_at)
            .limit(limit)
        )
        return [_request(r) for r in rows]

    async def find_by_fingerprint(
        self, fingerprint: str, states: tuple[RequestState, ...]
    ) -> CertificateRequest | None:
        """The newest request with this fingerprint in one of `states`."""
        row = await self._one(
            select(_r)
            .where(_r.c.fingerprint == fingerprint, _r.c.state.in_([s.value for s in states]))
            .order_by(_r.c.created_at.desc(), _r.c.id.desc())
            .limit(1)
        )
        return _request(row) if row else None

    async def transition(
        self, new: CertificateRequest, expected: CertificateRequest
    ) -> CertificateRequest | None:
        """Store `new` if the row still is `expected` (same state and version), bumping the
        version; None (nothing written) when another writer changed it first.

        PostgreSQL: a concurrent UPDATE of the row waits for the first writer's commit and
        then re-checks the WHERE against the committed row, so it matches nothing. SQLite:
        writers are serialized, so the second one reads the changed row. Either way only
        one of two racing decisions lands.
        """
        if new.id != expected.id:
            raise ValueError("transition between two different requests")
        row = await self._update_returning(
            update(_r)
            .where(
                _r.c.id == expected.id,
                _r.c.state == expected.state.value,
                _r.c.version == expected.version,
            )
            .values(**_mutable_values(new), version=_r.c.version + 1)
            .returning(*_r.c)
        )
        return _request(row) if row else None
