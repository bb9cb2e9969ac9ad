"""EnrollmentService: the one path every certificate takes (DESIGN.md, "The flow of one
enrollment"): policy engine -> approval -> CA signer -> store -> events.

The store step commits the certificate and its audit event in one transaction before the
caller answers; events are published only after that commit.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.core import approval
from gateway.core import csr as csr_lib
from gateway.core.approval import Decision, Pending, Resume
from gateway.core.decisions import RequestDecisions, load_request
from gateway.core.errors import (
    BadCSR,
    CAExternal,
    CAUnavailable,
    Conflict,
    DomainError,
    DuplicateSerial,
    InvalidInput,
    MethodNotEnabled,
    NotFound,
    PolicyDenied,
    SelfSignedNeedsKey,
)
from gateway.core.model import (
    Application,
    ApprovalPolicy,
    AuditEvent,
    CAKind,
    Certificate,
    CertificateAuthority,
    CertificateRequest,
    CertificateStatus,
    EnrollmentMethod,
    Policy,
    Profile,
    ProfileAttachment,
    RequestState,
    RevocationReason,
    new_id,
)
from gateway.core.policy import evaluate
from gateway.core.ports import (
    Clock,
    EventOutbox,
    EventPublisher,
    InTransaction,
    RevocationListener,
    Signer,
    TransactionFactory,
    UnitOfWork,
)
from gateway.core.template import CertificateTemplate

__all__ = [
    "ApprovalGate",
    "AutoApprove",
    "Decision",
    "EnrollmentRequest",
    "EnrollmentService",
    "Issued",
    "Pending",
    "Resume",
]

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
    # The principal asking, when it is one: approval bypass, self-approval and cancel use it.
    requester_id: uuid.UUID | None = None
    # The certificate's own private key, when it was generated here (server-side key
    # generation): a self-signed profile signs the certificate with it. Never stored by
    # the core; the CSR's public key must be this key's.
    subject_key: CertificateIssuerPrivateKeyTypes | None = None


@dataclass(frozen=True)
class Issued:
    certificate: Certificate


class ApprovalGate(Protocol):
    """Decides whether a request needs human approval: None (issue now), Pending (wait), or
    Resume (an identical, already approved request exists: finish that one)."""

    async def check(
        self, request: EnrollmentRequest, template: CertificateTemplate
    ) -> Pending | Resume | None: ...


class AutoApprove:
    async def check(
        self, request: EnrollmentRequest, template: CertificateTemplate
    ) -> Pending | Resume | None:
        return None


class _Superseded(Exception):
    """The request changed between reading and storing: roll the transaction back."""


# At issuance time these mean the stored CSR may no longer be issued: the request is
# rejected. CAUnavailable is not among them: the request stays approved and is retried.
_DENIALS = (PolicyDenied, BadCSR, MethodNotEnabled, NotFound)


U = TypeVar("U", bound=UnitOfWork)


class _MarkIssued:
    """Marks an approved request issued in the transaction storing its certificate."""

    def __init__(self, current: CertificateRequest, clock: Clock) -> None:
        self._current = current
        self._clock = clock
        self.stored: CertificateRequest | None = None

    async def certificate_stored(self, uow: UnitOfWork, certificate: Certificate) -> None:
        saved = await uow.requests.transition(
            approval.mark_issued(self._current, certificate.id, self._clock.now()),
            self._current,
        )
        if saved is None:
            raise _Superseded
        self.stored = saved


class EnrollmentService(Generic[U]):
    """Generic over the unit of work of its transactions (ports.TransactionFactory), so a
    front-end's in-transaction record (ports.InTransaction) gets the store's own unit of
    work, typed."""

    def __init__(
        self,
        transactions: TransactionFactory[U],
        signer: Signer,
        clock: Clock,
        events: EventPublisher,
        *,
        approvals: ApprovalGate | None = None,
        revocation: RevocationListener[U] | None = None,
        outbox: EventOutbox[U] | None = None,
    ) -> None:
        self._tx = transactions
        self._signer = signer
        self._clock = clock
        self._events = events
        self._approvals: ApprovalGate = approvals or AutoApprove()
        self._revocation = revocation
        self._outbox = outbox
        self._decisions = RequestDecisions(transactions, clock, events)

    async def enroll(
        self,
        request: EnrollmentRequest,
        *,
        also: InTransaction[U] | None = None,
    ) -> Issued | Pending:
        """Judge, approve, sign and store. `also` runs inside the transaction that stores a
        certificate issued by this call (a front-end's own record of the outcome commits
        with it); if it raises, nothing is stored. It does not run for Pending, nor when an
        earlier, approved identical request is finished instead (Resume)."""
        csr = (
            request.csr
            if isinstance(request.csr, x509.CertificateSigningRequest)
            else csr_lib.parse_csr(request.csr)
        )
        request = dataclasses.replace(request, csr=csr)
        ca, template = await self._template(request, csr, self._clock.now())
        decision = await self._approvals.check(request, template)
        if isinstance(decision, Pending):
            return decision
        if isinstance(decision, Resume):
            return await self._resume(decision, request.subject_key)
        certificate = await self._sign_and_store(request, ca, template, csr, also=also)
        await self._events.publish(_issued_event(request, certificate))
        return Issued(certificate)

    async def _template(
        self, request: EnrollmentRequest, csr: x509.CertificateSigningRequest, now: datetime
    ) -> tuple[CertificateAuthority | None, CertificateTemplate]:
        """The issuing CA (None for a self-signed profile) and the policy's template."""
        profile = request.profile
        app = request.application

        # Configuration only, through the read cache (ports.TransactionFactory.cached): the
        # CA, the attachment and the policy change rarely and are read on every enrollment.
        # Signing never holds a write lock either way (SQLite serializes writers).
        async def load(
            uow: UnitOfWork,
        ) -> tuple[CertificateAuthority | None, ProfileAttachment | None, Policy | None]:
            attachment = await uow.attachments.get(app.id, profile.id) if app else None
            return (
                await uow.cas.get(profile.ca_id),
                attachment,
                await uow.policies.get(profile.policy_id),
            )

        key = ("enrollment", profile.id, profile.ca_id, profile.policy_id, app.id if app else None)
        found, attachment, policy = await self._tx.cached(key, load)
        ca: CertificateAuthority | None = None
        if profile.self_signed:
            _check_self_signing(request, csr)
        else:
            ca = _usable_ca(found, profile, now)
        _check_enrollment_allowed(request, attachment)
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
            ca_not_after=ca.not_after if ca is not None else None,
        )
        return ca, template

    async def _sign_and_store(
        self,
        request: EnrollmentRequest,
        ca: CertificateAuthority | None,
        template: CertificateTemplate,
        csr: x509.CertificateSigningRequest,
        *,
        request_id: uuid.UUID | None = None,
        also: InTransaction[U] | None = None,
    ) -> Certificate:
        """Sign, then store the certificate and its audit event in one transaction. `also`
        runs inside that transaction (an approved request is marked issued there); if it
        raises, nothing of the issuance is stored."""
        for attempt in range(1, _SERIAL_ATTEMPTS + 1):
            if ca is not None:
                signed = await self._signer.issue(ca, template)
            else:  # self-signed: _self_signing made sure the key is here
                assert request.subject_key is not None
                signed = await self._signer.self_sign(request.subject_key, template)
            certificate = Certificate(
                id=new_id(),
                serial=signed.serial_hex,
                project_id=request.profile.project_id,
                ca_id=ca.id if ca is not None else None,
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
                # A self-signed certificate is its own trust anchor: no chain.
                chain_pem=ca.full_chain_pem if ca is not None else "",
                method=request.method,
                requester=request.requester,
                renewed_from=request.renewed_from,
                created_at=self._clock.now(),
            )
            try:
                async with self._tx.transaction() as uow:
                    await uow.certificates.add(certificate)
                    issued = _issued_event(request, certificate, request_id)
                    await uow.audit.add(issued)
                    if self._outbox is not None:
                        await self._outbox.record(uow, issued, certificate)
                    if also is not None:
                        await also.certificate_stored(uow, certificate)
            except DuplicateSerial:
                log.warning("serial collision on attempt %d; re-signing", attempt)
                continue
            return certificate
        raise DuplicateSerial("could not allocate a unique serial number")

    # --- approval (issue 3) ----------------------------------------------------------------

    async def decide(
        self,
        request_id: uuid.UUID,
        decision: Decision,
        principal_id: uuid.UUID,
        comment: str = "",
        *,
        actor: str,
        source_ip: str | None = None,
        application_id: uuid.UUID | None = None,
    ) -> CertificateRequest:
        """Record one decision about a request (gateway.core.approval holds the rules).

        Approving records one approval; when that approves the request, its certificate is
        issued. Approving a request already approved when the call comes retries its
        issuance (it stays approved when the CA cannot sign, e.g. disabled); issuance errors
        do not undo the approval. A caller who loses a race for the last approval gets
        request_closed: their approval was not recorded, and the winner issues.
        """
        reads = 0

        def decide(
            current: CertificateRequest, policy: ApprovalPolicy | None, now: datetime
        ) -> CertificateRequest | None:
            nonlocal reads
            reads += 1
            if decision is Decision.REJECT:
                return approval.reject(current, policy, principal_id, now, comment)
            if decision is Decision.CANCEL:
                return approval.cancel(current, principal_id, now, comment)
            if current.state is RequestState.APPROVED and reads == 1:
                return None  # decided before this call: only the issuance is left to do
            return approval.record_approval(current, policy, principal_id, now, comment)

        decided = await self._decisions.decide(
            request_id,
            application_id,
            decide,
            decision.action,
            actor,
            source_ip=source_ip,
            comment=comment,
        )
        if decision is not Decision.APPROVE or decided.state is not RequestState.APPROVED:
            return decided
        try:
            issued, _ = await self._complete(decided.id, actor)
        except (CAUnavailable, SelfSignedNeedsKey) as err:
            # SelfSignedNeedsKey: the key that must sign is the requester's, held by the
            # front-end (EST serverkeygen) until the requester repeats the request (Resume).
            log.warning("request %s approved but not issued: %s", decided.id, err.message)
            async with self._tx.transaction(read_only=True) as uow:
                return await load_request(uow, decided.id)
        return issued

    async def fetch_request(
        self, request_id: uuid.UUID, *, application_id: uuid.UUID | None = None
    ) -> tuple[CertificateRequest, Certificate | None]:
        """The request and, once issued, its certificate: what a requester polls. An open
        request past its expiry is expired now; an approved one is issued now if the CA can."""
        now = self._clock.now()
        async with self._tx.transaction(read_only=True) as uow:
            current = await load_request(uow, request_id, application_id)
        if approval.is_due(current, now):
            current = await self._decisions.expire(current, now)
        if current.state is RequestState.APPROVED:
            try:
                return await self._complete(current.id, "system")
            except (CAUnavailable, SelfSignedNeedsKey) as err:
                log.warning("request %s still not issued: %s", current.id, err.message)
                return current, None
        if current.state is RequestState.ISSUED:
            async with self._tx.transaction(read_only=True) as uow:
                assert current.certificate_id is not None
                return current, await uow.certificates.get(current.certificate_id)
        return current, None

    async def expire_due(self, requests: Sequence[CertificateRequest]) -> int:
        """Expire those of `requests` whose approval window has passed; how many were."""
        return await self._decisions.expire_due(requests)

    async def _resume(
        self, decision: Resume, subject_key: CertificateIssuerPrivateKeyTypes | None
    ) -> Issued | Pending:
        """An identical enrollment was approved earlier: its certificate, or still Pending.
        `subject_key`: the repeated request's own key (a self-signed profile signs with it)."""
        current, certificate = await self._complete(
            decision.request_id, "system", subject_key=subject_key
        )
        if certificate is not None:
            return Issued(certificate)
        if current.state is RequestState.REJECTED:
            raise Conflict(f"request was rejected: {current.comment}", code="request_rejected")
        return Pending(current.id, decision.retry_after)

    async def _complete(
        self,
        request_id: uuid.UUID,
        actor: str,
        *,
        subject_key: CertificateIssuerPrivateKeyTypes | None = None,
    ) -> tuple[CertificateRequest, Certificate | None]:
        """Issue the certificate of an approved request through the same path as enroll().

        The stored CSR is judged again against the profile and its policy as they are now; a
        denial rejects the request. The certificate insert and the request's move to issued
        commit together, conditional on the request still being the approved one read, so
        concurrent completions store exactly one certificate. Raises CAUnavailable, or
        SelfSignedNeedsKey for a self-signed profile's request completed without its key
        (`subject_key`); either way the request stays approved.
        """
        now = self._clock.now()
        async with self._tx.transaction(read_only=True) as uow:
            current = await load_request(uow, request_id)
            if current.state is RequestState.ISSUED:
                assert current.certificate_id is not None
                return current, await uow.certificates.get(current.certificate_id)
            if current.state is not RequestState.APPROVED:
                return current, None
            profile = await uow.profiles.get(current.profile_id)
            # A legacy request (no application) issues as its legacy enrollment would.
            app_id = current.application_id
            app = await uow.applications.get(app_id) if app_id is not None else None
        try:
            if profile is None or (app is None and app_id is not None):
                raise NotFound("the request's application or profile no longer exists")
            csr = csr_lib.parse_csr(current.csr_pem)
            request = EnrollmentRequest(
                profile=profile,
                application=app,
                csr=csr,
                requester=current.requester,
                method=current.method,
                requested_validity_days=current.requested_validity_days,
                renewed_from=current.renewed_from,
                requester_id=current.requester_id,
                subject_key=subject_key,
            )
            ca, template = await self._template(request, csr, now)
        except _DENIALS as denied:
            return await self._reject_at_issuance(current, denied, actor), None
        mark_issued = _MarkIssued(current, self._clock)
        try:
            certificate = await self._sign_and_store(
                request, ca, template, csr, request_id=current.id, also=mark_issued
            )
        except _Superseded:
            # Someone else completed (or cancelled) it first; their outcome stands.
            return await self._complete(request_id, actor, subject_key=subject_key)
        await self._events.publish(_issued_event(request, certificate, current.id))
        assert mark_issued.stored is not None
        return mark_issued.stored, certificate

    async def _reject_at_issuance(
        self, current: CertificateRequest, denied: DomainError, actor: str
    ) -> CertificateRequest:
        now = self._clock.now()
        rejected = approval.reject_at_issuance(current, denied.message, now)
        details = {"reason": denied.code, "comment": denied.message, "triggered_by": actor}
        saved = await self._decisions.store(
            current, rejected, "request.rejected", "system", now, details=details
        )
        if saved is not None:
            return saved
        async with self._tx.transaction(read_only=True) as uow:
            return await load_request(uow, current.id)

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
            if self._outbox is not None:
                await self._outbox.record(uow, event, revoked)
        await self._events.publish(event)
        return revoked


def _issued_event(
    request: EnrollmentRequest, certificate: Certificate, request_id: uuid.UUID | None = None
) -> AuditEvent:
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
            "request_id": str(request_id) if request_id else None,
        },
    )


def _usable_ca(
    ca: CertificateAuthority | None, profile: Profile, now: datetime
) -> CertificateAuthority:
    if ca is None:
        raise CAUnavailable(f"the CA of profile '{profile.slug}' no longer exists")
    if ca.kind is CAKind.EXTERNAL:
        raise CAExternal(
            f"CA '{ca.name}' of profile '{profile.slug}' is external: its key is held outside "
            "certgate and no connector to the system holding it exists yet, so nothing can "
            "be issued through this profile"
        )
    if not ca.enabled:
        raise CAUnavailable(f"CA '{ca.name}' of profile '{profile.slug}' is disabled")
    if ca.not_after <= now:
        raise CAUnavailable(f"CA '{ca.name}' of profile '{profile.slug}' has expired")
    return ca


def _check_self_signing(request: EnrollmentRequest, csr: x509.CertificateSigningRequest) -> None:
    """A self-signed profile names no CA: the certificate's own key signs it, so that key
    must have been generated here and be the CSR's."""
    key = request.subject_key
    if key is None:
        raise SelfSignedNeedsKey(
            f"profile '{request.profile.slug}' is self-signed: each certificate is signed by "
            "its own key, which certgate must generate (send key_type, subject and sans "
            "instead of a CSR); a CSR's private key is not held here"
        )
    if _spki(key.public_key()) != _spki(csr.public_key()):
        raise InvalidInput("the generated key does not match the CSR's public key")


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _check_enrollment_allowed(
    request: EnrollmentRequest, attachment: ProfileAttachment | None
) -> None:
    app = request.application
    if app is None:
        return  # legacy, profile-scoped: the front-end checked the profile's own settings
    if app.project_id != request.profile.project_id or attachment is None:
        raise NotFound(f"profile '{request.profile.slug}' is not attached to '{app.slug}'")
    if not attachment.method_enabled(request.method):
        raise MethodNotEnabled(
            f"{request.method.value.upper()} enrollment is not enabled for "
            f"'{app.slug}/{request.profile.slug}'"
        )
