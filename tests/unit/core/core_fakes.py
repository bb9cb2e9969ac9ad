"""In-memory fakes of the enrollment core's ports (gateway/core/ports.py), implementing the
Protocols directly (DESIGN.md: "test fakes implement them directly").

`FakeStore` is the committed state. A `FakeUnitOfWork` stages its writes and applies them
only when its transaction commits, so a test can assert "nothing stored when X raises";
every commit is recorded as one `Commit`, so a test can assert what committed together.
`FakeStore.log` is one journal of begin/commit/rollback, signing and publishing, for
assertions about order ("published only after commit", "signed outside any transaction").
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from core_helpers import NOW, key
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from gateway.core.approval import LIVE_STATES
from gateway.core.errors import Conflict, DuplicateSerial
from gateway.core.model import (
    Application,
    ApprovalPolicy,
    AuditEvent,
    CAKind,
    CAStatus,
    Certificate,
    CertificateAuthority,
    CertificateRequest,
    CertificateStatus,
    KeyType,
    Policy,
    Profile,
    ProfileAttachment,
    RequestState,
    RevocationReason,
)
from gateway.core.ports import UnitOfWork
from gateway.core.template import CertificateTemplate, SignedCertificate

T = TypeVar("T")

CA_KEY_KIND = "ec-p384"  # distinct from the CSR keys core_helpers.build_csr uses by default


def make_ca(project_id: uuid.UUID, ca_id: uuid.UUID, **changes: Any) -> CertificateAuthority:
    """A self-signed root CA (real certificate, key of core_helpers.key(CA_KEY_KIND))."""
    private = key(CA_KEY_KIND)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certgate test root")])
    not_before = NOW - timedelta(days=30)
    not_after = NOW + timedelta(days=3650)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA384())
    )
    values: dict[str, Any] = {
        "id": ca_id,
        "project_id": project_id,
        "name": "test-root",
        "kind": CAKind.ROOT,
        "parent_id": None,
        "key_type": KeyType.EC_P384,
        "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "chain_pem": "",
        "subject": name.rfc4514_string(),
        "serial": "1",
        "not_before": not_before,
        "not_after": not_after,
        "status": CAStatus.ACTIVE,
        "encrypted_key": b"",
        "created_at": NOW,
    }
    values.update(changes)
    return CertificateAuthority(**values)


# --- the store ----------------------------------------------------------------------------


@dataclass
class Commit:
    """What one committed transaction wrote."""

    certificates: list[Certificate] = field(default_factory=list)
    audit: list[AuditEvent] = field(default_factory=list)
    requests: list[CertificateRequest] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)  # anything a hook or listener staged

    def empty(self) -> bool:
        return not (self.certificates or self.audit or self.requests or self.extra)


@dataclass
class FakeStore:
    cas: dict[uuid.UUID, CertificateAuthority] = field(default_factory=dict)
    policies: dict[uuid.UUID, Policy] = field(default_factory=dict)
    profiles: dict[uuid.UUID, Profile] = field(default_factory=dict)
    applications: dict[uuid.UUID, Application] = field(default_factory=dict)
    attachments: dict[tuple[uuid.UUID, uuid.UUID], ProfileAttachment] = field(default_factory=dict)
    approval_policies: dict[tuple[uuid.UUID, uuid.UUID], ApprovalPolicy] = field(
        default_factory=dict
    )
    certificates: dict[uuid.UUID, Certificate] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    requests: dict[uuid.UUID, CertificateRequest] = field(default_factory=dict)
    extra: list[Any] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    open_transactions: list[FakeUnitOfWork] = field(default_factory=list)

    def writing_commits(self) -> list[Commit]:
        return [c for c in self.commits if not c.empty()]

    def audit_actions(self) -> list[str]:
        return [e.action for e in self.audit]


class _Reads:
    def __init__(self, table: dict[Any, Any]) -> None:
        self._table = table

    async def get(self, *key_parts: Any) -> Any:
        return self._table.get(key_parts[0] if len(key_parts) == 1 else key_parts)


class _ApprovalPolicies:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def get_for(
        self, application_id: uuid.UUID, profile_id: uuid.UUID
    ) -> ApprovalPolicy | None:
        return self._store.approval_policies.get((application_id, profile_id))


class _Certificates:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def _view(self) -> dict[uuid.UUID, Certificate]:
        return self._uow.store.certificates | self._uow.staged.certificates_by_id()

    async def add(self, certificate: Certificate) -> None:
        self._uow.check_writable()
        if any(c.serial == certificate.serial for c in self._view().values()):
            raise DuplicateSerial(f"serial {certificate.serial} is taken")
        self._uow.staged.certificates.append(certificate)

    async def get(self, certificate_id: uuid.UUID) -> Certificate | None:
        return self._view().get(certificate_id)

    async def revoke(
        self, certificate_id: uuid.UUID, at: datetime, reason: RevocationReason
    ) -> Certificate | None:
        self._uow.check_writable()
        current = self._view().get(certificate_id)
        if current is None or current.status is not CertificateStatus.ACTIVE:
            return None
        revoked = dataclasses.replace(
            current, status=CertificateStatus.REVOKED, revoked_at=at, revocation_reason=reason
        )
        self._uow.staged.certificates.append(revoked)
        return revoked


class _Audit:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, event: AuditEvent) -> None:
        self._uow.check_writable()
        self._uow.staged.audit.append(event)


class _Requests:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def _view(self) -> dict[uuid.UUID, CertificateRequest]:
        staged = {r.id: r for r in self._uow.staged.requests}
        return self._uow.store.requests | staged

    async def add(self, request: CertificateRequest) -> None:
        self._uow.check_writable()
        for other in self._view().values():
            if other.fingerprint == request.fingerprint and other.state in LIVE_STATES:
                raise Conflict("a live request exists", code="request_exists")
        self._uow.staged.requests.append(request)

    async def get(self, request_id: uuid.UUID) -> CertificateRequest | None:
        return self._view().get(request_id)

    async def find_by_fingerprint(
        self, fingerprint: str, states: tuple[RequestState, ...]
    ) -> CertificateRequest | None:
        found = [
            r for r in self._view().values() if r.fingerprint == fingerprint and r.state in states
        ]
        return max(found, key=lambda r: r.created_at) if found else None

    async def transition(
        self, new: CertificateRequest, expected: CertificateRequest
    ) -> CertificateRequest | None:
        self._uow.check_writable()
        current = self._view().get(expected.id)
        if (
            current is None
            or current.state is not expected.state
            or current.version != expected.version
        ):
            return None
        saved = dataclasses.replace(new, version=current.version + 1)
        self._uow.staged.requests.append(saved)
        return saved


@dataclass
class _Staged(Commit):
    def certificates_by_id(self) -> dict[uuid.UUID, Certificate]:
        return {c.id: c for c in self.certificates}


class FakeUnitOfWork:
    """One transaction over a FakeStore; implements ports.UnitOfWork."""

    def __init__(self, store: FakeStore, *, read_only: bool) -> None:
        self.store = store
        self.read_only = read_only
        self.open = True
        self.staged = _Staged()
        self._cas = _Reads(store.cas)
        self._policies = _Reads(store.policies)
        self._profiles = _Reads(store.profiles)
        self._applications = _Reads(store.applications)
        self._attachments = _Reads(store.attachments)
        self._certificates = _Certificates(self)
        self._audit = _Audit(self)
        self._approval_policies = _ApprovalPolicies(store)
        self._requests = _Requests(self)

    def check_writable(self) -> None:
        assert self.open, "write through a unit of work whose transaction has ended"
        assert not self.read_only, "write inside a read-only transaction"

    def stage(self, thing: Any) -> None:
        """For hooks and listeners: a write of their own, committed with the rest."""
        self.check_writable()
        self.staged.extra.append(thing)

    @property
    def cas(self) -> _Reads:
        return self._cas

    @property
    def policies(self) -> _Reads:
        return self._policies

    @property
    def profiles(self) -> _Reads:
        return self._profiles

    @property
    def applications(self) -> _Reads:
        return self._applications

    @property
    def attachments(self) -> _Reads:
        return self._attachments

    @property
    def certificates(self) -> _Certificates:
        return self._certificates

    @property
    def audit(self) -> _Audit:
        return self._audit

    @property
    def approval_policies(self) -> _ApprovalPolicies:
        return self._approval_policies

    @property
    def requests(self) -> _Requests:
        return self._requests

    def commit(self) -> None:
        staged = self.staged
        for cert in staged.certificates:
            self.store.certificates[cert.id] = cert
        self.store.audit.extend(staged.audit)
        for request in staged.requests:
            self.store.requests[request.id] = request
        self.store.extra.extend(staged.extra)
        self.store.commits.append(
            Commit(
                list(staged.certificates),
                list(staged.audit),
                list(staged.requests),
                list(staged.extra),
            )
        )


def as_fake(uow: UnitOfWork) -> FakeUnitOfWork:
    """The FakeUnitOfWork behind a port-typed `uow` (hooks and listeners get the port)."""
    assert isinstance(uow, FakeUnitOfWork)
    return uow


class FakeTransactions:
    """ports.TransactionFactory. `cached` does not memoize (a cache that never hits is a
    valid cache), so a test may change the configuration between calls; it records keys."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.cached_keys: list[Hashable] = []

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[FakeUnitOfWork]:
        uow = FakeUnitOfWork(self.store, read_only=read_only)
        kind = "read" if read_only else "write"
        self.store.log.append(f"begin:{kind}")
        self.store.open_transactions.append(uow)
        try:
            yield uow
        except BaseException:
            self.store.log.append(f"rollback:{kind}")
            raise
        else:
            uow.commit()
            self.store.log.append(f"commit:{kind}")
        finally:
            uow.open = False
            self.store.open_transactions.remove(uow)

    async def cached(self, key: Hashable, load: Callable[[FakeUnitOfWork], Awaitable[T]]) -> T:
        self.cached_keys.append(key)
        async with self.transaction(read_only=True) as uow:
            return await load(uow)


# --- signer, clock, events, revocation ------------------------------------------------------


class FakeSigner:
    """ports.Signer: signs `template` for real with the CA's test key. `serials` (if given)
    are used in order, then random ones; `fail` (if set) is raised instead of signing."""

    def __init__(self, store: FakeStore, serials: Iterator[int] | None = None) -> None:
        self.store = store
        self.serials = serials
        self.fail: Exception | None = None
        self.on_issue: Callable[[], None] | None = None  # runs as each signing starts
        self.calls: list[tuple[CertificateAuthority, CertificateTemplate]] = []
        self.inside_transaction: list[bool] = []

    def _serial(self) -> int:
        if self.serials is not None:
            nxt = next(self.serials, None)
            if nxt is not None:
                return nxt
        return x509.random_serial_number()

    async def issue(
        self, ca: CertificateAuthority, template: CertificateTemplate
    ) -> SignedCertificate:
        self.calls.append((ca, template))
        self.inside_transaction.append(bool(self.store.open_transactions))
        self.store.log.append("sign")
        if self.on_issue is not None:
            self.on_issue()
        if self.fail is not None:
            raise self.fail
        serial = self._serial()
        issuer = x509.load_pem_x509_certificate(ca.certificate_pem.encode()).subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(template.subject)
            .issuer_name(issuer)
            .public_key(template.public_key)
            .serial_number(serial)
            .not_valid_before(template.not_before)
            .not_valid_after(template.not_after)
        )
        if template.sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(list(template.sans)), critical=False
            )
        cert = builder.sign(key(CA_KEY_KIND), hashes.SHA384())
        return SignedCertificate(
            der=cert.public_bytes(serialization.Encoding.DER),
            pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            serial=serial,
            not_before=template.not_before,
            not_after=template.not_after,
        )


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@dataclass(frozen=True)
class Published:
    event: AuditEvent
    open_transactions: int  # transactions open when it was published
    committed: bool  # the event was in the store (committed) when it was published


class FakeEvents:
    """ports.EventPublisher: records each event with what the store looked like then."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.published: list[Published] = []

    async def publish(self, event: AuditEvent) -> None:
        self.store.log.append(f"publish:{event.action}")
        self.published.append(
            Published(
                event,
                len(self.store.open_transactions),
                any(e.id == event.id for e in self.store.audit),
            )
        )

    def events(self) -> list[AuditEvent]:
        return [p.event for p in self.published]


@dataclass(frozen=True)
class ListenerCall:
    certificate: Certificate
    uow_open: bool
    uow_read_only: bool
    seen_in_uow: Certificate | None  # the certificate as the calling transaction reads it
    committed_status: CertificateStatus | None  # as committed when the listener ran


class FakeRevocationListener:
    """ports.RevocationListener: records each call, stages a 'crl' write through the uow it
    is given (so the test can see it commit with the revocation), or raises `fail`."""

    def __init__(self) -> None:
        self.calls: list[ListenerCall] = []
        self.fail: Exception | None = None

    async def certificate_revoked(self, port: UnitOfWork, certificate: Certificate) -> None:
        uow = as_fake(port)
        committed = uow.store.certificates.get(certificate.id)
        self.calls.append(
            ListenerCall(
                certificate,
                uow.open,
                uow.read_only,
                await uow.certificates.get(certificate.id),
                committed.status if committed else None,
            )
        )
        uow.stage(("crl", certificate.ca_id, certificate.serial))
        if self.fail is not None:
            raise self.fail
