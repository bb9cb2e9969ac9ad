"""Ports the enrollment core calls, declared here by their consumer and cut to what it uses.

`store` implements the repositories, `gateway.pki` the signer; tests implement them with
fakes directly (DESIGN.md: "Ports are typing.Protocols declared by the consumer").
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from gateway.core.model import (
    Application,
    ApprovalPolicy,
    AuditEvent,
    Certificate,
    CertificateAuthority,
    CertificateRequest,
    Policy,
    Profile,
    ProfileAttachment,
    RequestState,
    RevocationReason,
)
from gateway.core.template import CertificateTemplate, SignedCertificate

T = TypeVar("T")


class CARepository(Protocol):
    async def get(self, ca_id: uuid.UUID | None) -> CertificateAuthority | None: ...


class PolicyRepository(Protocol):
    async def get(self, policy_id: uuid.UUID) -> Policy | None: ...


class ProfileRepository(Protocol):
    async def get(self, profile_id: uuid.UUID) -> Profile | None: ...


class ApplicationRepository(Protocol):
    async def get(self, application_id: uuid.UUID) -> Application | None: ...


class AttachmentRepository(Protocol):
    async def get(
        self, application_id: uuid.UUID, profile_id: uuid.UUID
    ) -> ProfileAttachment | None: ...


class CertificateRepository(Protocol):
    async def add(self, certificate: Certificate) -> None:
        """Insert; raises DuplicateSerial if the serial is taken (unique index)."""

    async def get(self, certificate_id: uuid.UUID) -> Certificate | None: ...

    async def revoke(
        self, certificate_id: uuid.UUID, at: datetime, reason: RevocationReason
    ) -> Certificate | None:
        """Mark revoked if still active; None when it was not active."""


class AuditRepository(Protocol):
    async def add(self, event: AuditEvent) -> None: ...


class ApprovalPolicyRepository(Protocol):
    async def get_for(
        self, application_id: uuid.UUID, profile_id: uuid.UUID
    ) -> ApprovalPolicy | None: ...

    async def get_legacy(self, profile_id: uuid.UUID) -> ApprovalPolicy | None:
        """The legacy (project-level) policy of a profile's legacy enrollment."""


class RequestRepository(Protocol):
    async def add(self, request: CertificateRequest) -> None:
        """Insert; Conflict(code="request_exists") if a live request (open or approved) with
        the same fingerprint exists."""

    async def get(self, request_id: uuid.UUID) -> CertificateRequest | None: ...

    async def find_by_fingerprint(
        self, fingerprint: str, states: tuple[RequestState, ...]
    ) -> CertificateRequest | None:
        """The newest request with this fingerprint in one of `states`."""

    async def transition(
        self, new: CertificateRequest, expected: CertificateRequest
    ) -> CertificateRequest | None:
        """Store `new` only if the row is still `expected` (same state and version); returns
        the stored request (version bumped), or None when someone else changed it first."""


class UnitOfWork(Protocol):
    """One transaction: everything added inside commits together or not at all."""

    @property
    def cas(self) -> CARepository: ...

    @property
    def policies(self) -> PolicyRepository: ...

    @property
    def profiles(self) -> ProfileRepository: ...

    @property
    def applications(self) -> ApplicationRepository: ...

    @property
    def attachments(self) -> AttachmentRepository: ...

    @property
    def certificates(self) -> CertificateRepository: ...

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def approval_policies(self) -> ApprovalPolicyRepository: ...

    @property
    def requests(self) -> RequestRepository: ...


# The unit of work a transaction factory hands out. The core needs only UnitOfWork; a
# front-end that passes an in-transaction hook (InTransaction) gets the store's own, richer
# one back, typed, instead of casting it.
U_co = TypeVar("U_co", bound=UnitOfWork, covariant=True)
U_contra = TypeVar("U_contra", bound=UnitOfWork, contravariant=True)
# What an in-transaction hook needs of the unit of work: any view of it (a front-end
# declares the repositories it writes, e.g. gateway.core.acme.AcmeUnitOfWork).
W_contra = TypeVar("W_contra", contravariant=True)


class TransactionFactory(Protocol[U_co]):
    def transaction(self, *, read_only: bool = False) -> AbstractAsyncContextManager[U_co]: ...

    async def cached(self, key: Hashable, load: Callable[[U_co], Awaitable[T]]) -> T:
        """`load` run in a read-only transaction, memoized by `key` until the configuration
        changes (store.cache). Only for configuration reads returning immutable values."""
        ...


class Signer(Protocol):
    async def issue(
        self, ca: CertificateAuthority, template: CertificateTemplate
    ) -> SignedCertificate: ...

    async def self_sign(
        self, key: CertificateIssuerPrivateKeyTypes, template: CertificateTemplate
    ) -> SignedCertificate:
        """The template signed by the certificate's own key (a self-signed profile)."""
        ...


class RevocationListener(Protocol[U_contra]):
    """Called inside the revoking transaction so the CRL is current when it commits."""

    async def certificate_revoked(self, uow: U_contra, certificate: Certificate) -> None: ...


class InTransaction(Protocol[W_contra]):
    """A front-end's own record of an issuance (an ACME order turning valid, a SCEP
    transaction turning SUCCESS), written inside the transaction that stores the
    certificate: both commit, or neither does. Raising rolls the issuance back."""

    async def certificate_stored(self, uow: W_contra, certificate: Certificate) -> None: ...


class EventOutbox(Protocol[U_contra]):
    """Durable notifications (alerts) of an issuance, renewal or revocation, written inside
    the transaction that stores it: the change and its notifications commit together, so
    a crash can neither lose them nor send them for a change that rolled back."""

    async def record(self, uow: U_contra, event: AuditEvent, certificate: Certificate) -> None: ...


class EventPublisher(Protocol):
    """After-commit notifications (alerts, syncs, metrics). Must not raise."""

    async def publish(self, event: AuditEvent) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...
