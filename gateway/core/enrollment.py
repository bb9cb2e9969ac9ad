"""EnrollmentService: the one path every certificate takes (DESIGN.md, "The flow of one
enrollment"): policy engine -> approval -> CA signer -> store -> events.

The store step commits the certificate and its audit event in one transaction before the
caller answers; events are published only after that commit.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509

from gateway.core import csr as csr_lib
from gateway.core.errors import (
    CAUnavailable,
    Conflict,
    DuplicateSerial,
    InvalidInput,
    MethodNotEnabled,
    NotFound,
)
from gateway.core.model import (
    Application,
    AuditEvent,
    Certificate,
    CertificateAuthority,
    CertificateStatus,
    EnrollmentMethod,
    Profile,
    RevocationReason,
    new_id,
)
from gateway.core.policy import evaluate
from gateway.core.ports import (
    Clock,
    EventPublisher,
    RevocationListener,
    Signer,
    TransactionFactory,
    UnitOfWork,
)
from gateway.core.template import CertificateTemplate

log = logging.getLogger(__name__)

# A fresh random serial colliding is ~2^-128; retrying a handful of times is plenty and
# keeps a broken unique index from looping forever.
_SERIAL_ATTEMPTS = 3


@dataclass(frozen=True)
class EnrollmentRequest:
    profile: Profile
    application: Application | None
    csr: x509.CertificateSigningRequest | bytes | str
    requester: str
    method: EnrollmentMethod
    source_ip: str | None = None
    requested_validity_days: int | None = None
    renewed_from: uuid.UUID | None = None


@dataclass(frozen=True)
class Issued:
    certificate: Certificate


@dataclass(frozen=True)
class Pending:
    request_id: uuid.UUID
    retry_after: int


class ApprovalGate(Protocol):
    """Decides whether a request needs human approval; returns Pending or None."""

    async def check(
        self, request: EnrollmentRequest, template: CertificateTemplate
    ) -> Pending | None: ...


class AutoApprove:
    async def check(
        self, request: EnrollmentRequest, template: CertificateTemplate
    ) -> Pending | None:
        return None


class EnrollmentService:
    def __init__(
        self,
        transactions: TransactionFactory,
        signer: Signer,
        clock: Clock,
        events: EventPublisher,
        *,
        approvals: ApprovalGate | None = None,
        revocation: RevocationListener | None = None,
    ) -> None:
        self._tx = transactions
        self._signer = signer
        self._clock = clock
        self._events = events
        self._approvals: ApprovalGate = approvals or AutoApprove()
        self._revocation = revocation

    async def enroll(self, request: EnrollmentRequest) -> Issued | Pending:
        csr = (
            request.csr
            if isinstance(request.csr, x509.CertificateSigningRequest)
            else csr_lib.parse_csr(request.csr)
        )
        now = self._clock.now()
        # Reads happen in their own short transaction so that signing never holds a
        # write lock (SQLite serializes writers).
        async with self._tx.transaction(read_only=True) as uow:
            ca = await self._usable_ca(uow, request.profile, now)
            await self._check_enrollment_allowed(uow, request)
            policy = await uow.policies.get(request.profile.policy_id)
            if policy is None:
                raise CAUnavailable(
                    f"profile '{request.profile.slug}' refers to a policy that no longer exists"
                )
        template = evaluate(
            csr,
            request.profile,
            policy.rules,
            now,
            requested_validity_days=request.requested_validity_days,
            ca_not_after=ca.not_after,
        )
        pending = await self._approvals.check(request, template)
        if pending is not None:
            return pending
        certificate = await self._sign_and_store(request, ca, template, csr)
        await self._events.publish(_issued_event(request, certificate))
        return Issued(certificate)

    async def _usable_ca(
        self, uow: UnitOfWork, profile: Profile, now: datetime
    ) -> CertificateAuthority:
        ca = await uow.cas.get(profile.ca_id)
        if ca is None:
            raise CAUnavailable(f"the CA of profile '{profile.slug}' no longer exists")
        if not ca.enabled:
            raise CAUnavailable(f"CA '{ca.name}' of profile '{profile.slug}' is disabled")
        if ca.not_after <= now:
            raise CAUnavailable(f"CA '{ca.name}' of profile '{profile.slug}' has expired")
        return ca

    async def _check_enrollment_allowed(self, uow: UnitOfWork, request: EnrollmentRequest) -> None:
        app = request.application
        if app is None:
            return  # legacy, profile-scoped: the front-end checked the profile's own settings
        if app.project_id != request.profile.project_id:
            raise NotFound(f"profile '{request.profile.slug}' is not attached to '{app.slug}'")
        attachment = await uow.attachments.get(app.id, request.profile.id)
        if attachment is None:
            raise NotFound(f"profile '{request.profile.slug}' is not attached to '{app.slug}'")
        if not attachment.method_enabled(request.method):
            raise MethodNotEnabled(
                f"{request.method.value.upper()} enrollment is not enabled for "
                f"'{app.slug}/{request.profile.slug}'"
            )

    async def _sign_and_store(
        self,
        request: EnrollmentRequest,
        ca: CertificateAuthority,
        template: CertificateTemplate,
        csr: x509.CertificateSigningRequest,
    ) -> Certificate:
        for attempt in range(1, _SERIAL_ATTEMPTS + 1):
            signed = await self._signer.issue(ca, template)
            certificate = Certificate(
                id=new_id(),
                serial=signed.serial_hex,
                project_id=request.profile.project_id,
                ca_id=ca.id,
                profile_id=request.profile.id,
                application_id=request.application.id if request.application else None,
                subject=template.subject.rfc4514_string(),
                common_name=csr_lib.common_name(template.subject),
                sans=csr_lib.san_strings(template.sans),
                key_type=csr_lib.key_type_label(template.public_key),
                not_before=signed.not_before,
                not_after=signed.not_after,
                status=CertificateStatus.ACTIVE,
                revoked_at=None,
                revocation_reason=None,
                certificate_pem=signed.pem,
                chain_pem=ca.full_chain_pem,
                method=request.method,
                requester=request.requester,
                renewed_from=request.renewed_from,
                created_at=self._clock.now(),
            )
            try:
                async with self._tx.transaction() as uow:
                    await uow.certificates.add(certificate)
                    await uow.audit.add(_issued_event(request, certificate))
            except DuplicateSerial:
                log.warning("serial collision on attempt %d; re-signing", attempt)
                continue
            return certificate
        raise DuplicateSerial("could not allocate a unique serial number")

    async def revoke(
        self,
        certificate_id: uuid.UUID,
        reason: RevocationReason,
        *,
        actor: str,
        source_ip: str | None = None,
        application_id: uuid.UUID | None = None,
    ) -> Certificate:
        """Revoke and rebuild the CA's CRL in the same transaction (RFC 5280 §5)."""
        now = self._clock.now()
        async with self._tx.transaction() as uow:
            current = await uow.certificates.get(certificate_id)
            if current is None or (
                application_id is not None and current.application_id != application_id
            ):
                raise NotFound("certificate not found")
            if reason is RevocationReason.CERTIFICATE_HOLD:
                # Holds are reversible; we only issue permanent revocations.
                raise InvalidInput("certificate_hold is not supported; revocation is permanent")
            revoked = await uow.certificates.revoke(certificate_id, now, reason)
            if revoked is None:
                raise Conflict("certificate is already revoked", code="already_revoked")
            event = AuditEvent(
                id=new_id(),
                at=now,
                actor=actor,
                action="certificate.revoked",
                target_type="certificate",
                target_id=str(revoked.id),
                project_id=revoked.project_id,
                application_id=revoked.application_id,
                source_ip=source_ip,
                details={"serial": revoked.serial, "reason": reason.value},
            )
            await uow.audit.add(event)
            if self._revocation is not None:
                await self._revocation.certificate_revoked(uow, revoked)
        await self._events.publish(event)
        return revoked


def _issued_event(request: EnrollmentRequest, certificate: Certificate) -> AuditEvent:
    return AuditEvent(
        id=certificate.id,  # one issuance, one event: reuse the id so retries cannot double it
        at=certificate.created_at,
        actor=request.requester,
        action="certificate.renewed" if request.renewed_from else "certificate.issued",
        target_type="certificate",
        target_id=str(certificate.id),
        project_id=certificate.project_id,
        application_id=certificate.application_id,
        source_ip=request.source_ip,
        details={
            "serial": certificate.serial,
            "subject": certificate.subject,
            "sans": list(certificate.sans),
            "profile": request.profile.slug,
            "method": request.method.value,
            "renewed_from": str(request.renewed_from) if request.renewed_from else None,
        },
    )
