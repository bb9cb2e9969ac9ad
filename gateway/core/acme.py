"""ACME (RFC 8555) domain: the server's records, their state rules as pure functions, and
the ports the protocol front-end (protocols.acme) calls. Standard library + cryptography.

Records are frozen dataclasses; repositories in `store` return them. Every state rule cites
the RFC section it implements; the front-end never decides a status by itself.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import ipaddress
import re
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509

from gateway.core.errors import Violation
from gateway.core.model import Certificate, PolicyRules, RequestState
from gateway.core.names import Findings, check_sans

if TYPE_CHECKING:  # gateway.core.target imports this module's settings types
    from gateway.core.target import EnrollmentTarget

# --- enums (RFC 8555 §7.1.6 status values, §7.1.3 identifier types) -----------------------


class AccountStatus(enum.StrEnum):
    VALID = "valid"
    DEACTIVATED = "deactivated"
    REVOKED = "revoked"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AuthzStatus(enum.StrEnum):
    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ChallengeStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class ChallengeType(enum.StrEnum):
    HTTP_01 = "http-01"  # RFC 8555 §8.3
    DNS_01 = "dns-01"  # RFC 8555 §8.4
    TLS_ALPN_01 = "tls-alpn-01"  # RFC 8737


class IdentifierType(enum.StrEnum):
    DNS = "dns"
    IP = "ip"  # RFC 8738


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identifier:
    type: IdentifierType
    value: str

    @property
    def wildcard(self) -> bool:
        return self.type is IdentifierType.DNS and self.value.startswith("*.")

    @property
    def base(self) -> str:
        """The name an authorization is for: RFC 8555 §7.1.4 strips the "*." of a wildcard."""
        return self.value[2:] if self.wildcard else self.value


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    scope: str  # which directory the account belongs to (its EnrollmentTarget.owner)
    thumbprint: str  # RFC 7638 JWK thumbprint, base64url
    jwk: dict[str, Any]
    status: AccountStatus
    contact: tuple[str, ...]
    eab_kid: str | None
    created_at: datetime


@dataclass(frozen=True)
class Problem:
    """A stored problem document (order/challenge `error`), RFC 8555 §6.7 / RFC 7807."""

    type: str  # short name: "connection", "unauthorized", …
    detail: str
    identifier: Identifier | None = None


@dataclass(frozen=True)
class Order:
    id: uuid.UUID
    account_id: uuid.UUID
    status: OrderStatus
    identifiers: tuple[Identifier, ...]
    authorization_ids: tuple[uuid.UUID, ...]
    expires: datetime
    not_before: datetime | None
    not_after: datetime | None
    error: Problem | None
    certificate_id: uuid.UUID | None
    request_id: uuid.UUID | None  # approval request while `processing` (EnrollmentService)
    replaces: str | None  # RFC 9773 §5 certificate identifier this order replaces
    created_at: datetime


@dataclass(frozen=True)
class Challenge:
    id: uuid.UUID
    authorization_id: uuid.UUID
    type: ChallengeType
    token: str
    status: ChallengeStatus
    validated: datetime | None
    error: Problem | None
    # When the challenge went `processing`; a process that crashed mid-validation leaves
    # it there, and the sweeper (`challenge_stuck`) ends it.
    started_at: datetime | None = None


@dataclass(frozen=True)
class Authorization:
    id: uuid.UUID
    account_id: uuid.UUID
    order_id: uuid.UUID
    identifier: Identifier  # as in the order; a wildcard keeps its "*." (see `wildcard`)
    status: AuthzStatus
    expires: datetime
    challenges: tuple[Challenge, ...] = field(default=())

    @property
    def wildcard(self) -> bool:
        return self.identifier.wildcard


# --- state rules ----------------------------------------------------------------------------


def order_status(order: Order, authz_statuses: Iterable[AuthzStatus], now: datetime) -> OrderStatus:
    """RFC 8555 §7.1.6: an order whose authorizations are all valid is `ready`; one with an
    invalid/deactivated/expired/revoked authorization, or past `expires` before issuance,
    is `invalid`. `processing`, `valid` and `invalid` are only left by explicit transitions."""
    if order.status in (OrderStatus.VALID, OrderStatus.INVALID, OrderStatus.PROCESSING):
        return order.status
    statuses = list(authz_statuses)
    if now >= order.expires:
        return OrderStatus.INVALID
    if any(s not in (AuthzStatus.PENDING, AuthzStatus.VALID) for s in statuses):
        return OrderStatus.INVALID
    if statuses and all(s is AuthzStatus.VALID for s in statuses):
        return OrderStatus.READY
    return OrderStatus.PENDING


def authorization_status(authz: Authorization, now: datetime) -> AuthzStatus:
    """RFC 8555 §7.1.6: a pending or valid authorization past `expires` is `expired`."""
    if authz.status in (AuthzStatus.PENDING, AuthzStatus.VALID) and now >= authz.expires:
        return AuthzStatus.EXPIRED
    return authz.status


def challenge_types_for(
    identifier: Identifier, offered: Sequence[ChallengeType]
) -> list[ChallengeType]:
    """Which challenges an identifier gets. RFC 8555 §7.1.3: wildcards only through dns-01;
    RFC 8738 §7: IP identifiers never through dns-01 (there is no reverse-zone TXT rule)."""
    if identifier.wildcard:
        allowed = [ChallengeType.DNS_01]
    elif identifier.type is IdentifierType.IP:
        allowed = [ChallengeType.HTTP_01, ChallengeType.TLS_ALPN_01]
    else:
        allowed = list(ChallengeType)
    return [t for t in offered if t in allowed]


def can_respond_to_challenge(authz: AuthzStatus, challenge: ChallengeStatus) -> bool:
    """RFC 8555 §7.5.1: a client may only trigger a pending challenge of a pending
    authorization; repeating a POST to a processing/valid one is answered, not re-run."""
    return authz is AuthzStatus.PENDING and challenge is ChallengeStatus.PENDING


def challenge_stuck(challenge: Challenge, now: datetime, bound: timedelta) -> bool:
    """A challenge `processing` for longer than any validation can take (bounded attempts
    times per-target timeout) lost its validator, e.g. to a crash. RFC 8555 §7.1.6 has no way
    back to `pending`, so the sweeper moves it to `invalid` and the client orders again."""
    if challenge.status is not ChallengeStatus.PROCESSING:
        return False
    return challenge.started_at is None or now - challenge.started_at >= bound


@dataclass(frozen=True)
class ApprovalOutcome:
    """What the enrollment core says about the approval request an order waits on."""

    state: RequestState | None  # None: the request no longer exists
    certificate_id: uuid.UUID | None = None
    comment: str = ""  # the approver's reason for a rejection or cancellation


def order_after_approval(outcome: ApprovalOutcome) -> tuple[OrderStatus, Problem | None]:
    """RFC 8555 §7.1.6: a `processing` order moves to `valid` once its certificate is issued
    and to `invalid` (with an error, §7.1.3) when issuance will never happen; an open or
    approved-but-not-yet-issued request keeps it `processing`."""
    if outcome.state is RequestState.ISSUED and outcome.certificate_id is not None:
        return OrderStatus.VALID, None
    if outcome.state in (None, RequestState.REJECTED, RequestState.CANCELLED, RequestState.EXPIRED):
        what = outcome.state.value if outcome.state is not None else "withdrawn"
        detail = f"the certificate request was {what}"
        if outcome.comment:
            detail += f": {outcome.comment}"
        return OrderStatus.INVALID, Problem("unauthorized", detail)
    return OrderStatus.PROCESSING, None


def can_deactivate_authorization(status: AuthzStatus) -> bool:
    """RFC 8555 §7.5.2: only pending or valid authorizations can be deactivated."""
    return status in (AuthzStatus.PENDING, AuthzStatus.VALID)


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2); ValueError otherwise."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except Exception as err:
        raise ValueError("not base64url") from err


def key_authorization(token: str, thumbprint: str) -> str:
    """RFC 8555 §8.1: token || '.' || base64url(JWK thumbprint)."""
    return f"{token}.{thumbprint}"


def dns01_txt_value(key_auth: str) -> str:
    """RFC 8555 §8.4: base64url(SHA-256(key authorization))."""
    return b64url(hashlib.sha256(key_auth.encode("ascii")).digest())


def dns01_record_name(identifier: Identifier) -> str:
    """RFC 8555 §8.4: _acme-challenge.<domain>, the wildcard's base name for wildcards."""
    return "_acme-challenge." + identifier.base.rstrip(".")


def csr_identifiers(csr: x509.CertificateSigningRequest) -> set[Identifier]:
    """The identifiers a CSR asks for: SAN dNSName / iPAddress entries and a CN."""
    found = _san_identifiers(csr.extensions)
    for attribute in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        value = attribute.value if isinstance(attribute.value, str) else ""
        found.add(identifier_for(value))
    return found


def certificate_identifiers(cert: x509.Certificate) -> set[Identifier]:
    """The identifiers a certificate names (its SAN dNSName / iPAddress entries),
    normalized as `normalize` does."""
    return {normalize(i) for i in _san_identifiers(cert.extensions)}


def _san_identifiers(extensions: x509.Extensions) -> set[Identifier]:
    found: set[Identifier] = set()
    try:
        sans = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    for name in sans:
        if isinstance(name, x509.DNSName):
            found.add(Identifier(IdentifierType.DNS, name.value.lower()))
        elif isinstance(name, x509.IPAddress):
            found.add(Identifier(IdentifierType.IP, str(name.value)))
        else:
            found.add(Identifier(IdentifierType.DNS, f"<unsupported {type(name).__name__}>"))
    return found


def identifier_for(value: str) -> Identifier:
    try:
        return Identifier(IdentifierType.IP, str(ipaddress.ip_address(value)))
    except ValueError:
        return Identifier(IdentifierType.DNS, value.lower())


def identifier_violations(identifier: Identifier, rules: PolicyRules) -> list[Violation]:
    """What the profile's policy says against one order identifier, judged as the SAN it
    would become. newOrder refuses such an identifier (RFC 8555 §7.4, rejectedIdentifier),
    so no validator ever connects out for a name the policy forbids."""
    name: x509.GeneralName
    if identifier.type is IdentifierType.IP:
        name = x509.IPAddress(ipaddress.ip_address(identifier.value))
    else:
        name = x509.DNSName(identifier.value)
    found = Findings()
    check_sans((name,), rules, found)
    return list(found)


def csr_mismatch(csr: x509.CertificateSigningRequest, identifiers: Iterable[Identifier]) -> str:
    """RFC 8555 §7.4: the CSR must ask for exactly the order's identifiers. Returns why it
    does not ("" when it matches). A CN must be one of the SAN identifiers."""
    wanted = {normalize(i) for i in identifiers}
    asked = {normalize(i) for i in csr_identifiers(csr)}
    extra = sorted(i.value for i in asked - wanted)
    missing = sorted(i.value for i in wanted - asked)
    parts = []
    if extra:
        parts.append("names not in the order: " + ", ".join(extra))
    if missing:
        parts.append("order identifiers missing from the CSR: " + ", ".join(missing))
    return "; ".join(parts)


def normalize(identifier: Identifier) -> Identifier:
    if identifier.type is IdentifierType.IP:
        return Identifier(IdentifierType.IP, str(ipaddress.ip_address(identifier.value)))
    return Identifier(IdentifierType.DNS, identifier.value.lower().rstrip("."))


DEFAULT_VALIDATION_NETWORKS = ("0.0.0.0/0", "::/0")

# Lifetimes (RFC 8555 leaves them to the server).
ORDER_LIFETIME = timedelta(days=7)
AUTHZ_LIFETIME = timedelta(days=7)
NONCE_LIFETIME = timedelta(hours=1)
# Longer than the slowest validation (attempts times timeout + back-off), so the sweeper never
# ends a challenge whose validator is still running in some process.
STUCK_VALIDATION = timedelta(minutes=5)


def expire(order: Order, statuses: Iterable[AuthzStatus], now: datetime) -> Order:
    return replace(order, status=order_status(order, statuses, now))


# --- endpoint and ports ---------------------------------------------------------------------


class EndpointResolver(Protocol):
    async def scoped(self, app_slug: str, profile_slug: str) -> EnrollmentTarget | None: ...

    async def legacy(self, profile_id: uuid.UUID) -> EnrollmentTarget | None: ...

    async def eab_key(self, target: EnrollmentTarget, kid: str) -> bytes | None:
        """The HMAC key of an EAB key id valid for this endpoint, or None."""

    async def nonce_key(self, target: EnrollmentTarget) -> bytes:
        """The key that authenticates this endpoint's nonces (RFC 8555 §6.5), the same in
        every process serving it; made on first use."""


class PendingRequests(Protocol):
    async def outcome(self, request_id: uuid.UUID) -> ApprovalOutcome:
        """The current state of an approval request (and its certificate once issued)."""


class AcmeRepositoryPort(Protocol):
    async def use_nonce(self, value: str, expires: datetime) -> bool:
        """Record a nonce as used (kept until `expires`); True exactly once per nonce."""

    async def purge_nonces(self, now: datetime) -> int: ...

    async def add_account(self, account: Account) -> Account:
        """Insert; when (scope, thumbprint) exists, returns the existing account instead."""

    async def get_account(self, account_id: uuid.UUID) -> Account | None: ...

    async def find_account(self, scope: str, thumbprint: str) -> Account | None: ...

    async def account_bound_by(self, scope: str, eab_kid: str) -> Account | None:
        """An account of the directory `scope` that an EAB key id has bound, if any."""

    async def update_account(
        self,
        account_id: uuid.UUID,
        *,
        status: AccountStatus | None = None,
        contact: tuple[str, ...] | None = None,
        jwk: dict[str, Any] | None = None,
        thumbprint: str | None = None,
    ) -> Account | None: ...

    async def add_order(self, order: Order, authorizations: Sequence[Authorization]) -> None: ...

    async def get_order(self, order_id: uuid.UUID) -> Order | None: ...

    async def list_orders(self, account_id: uuid.UUID, limit: int) -> list[Order]: ...

    async def set_order(
        self,
        order_id: uuid.UUID,
        *,
        status: OrderStatus,
        expected: Sequence[OrderStatus] | None = None,
        error: Problem | None = None,
        certificate_id: uuid.UUID | None = None,
        request_id: uuid.UUID | None = None,
    ) -> bool:
        """Compare-and-set: update only when the current status is in `expected`."""

    async def find_order_by_certificate(self, certificate_id: uuid.UUID) -> Order | None: ...

    async def cancel_pending(self, account_id: uuid.UUID, error: Problem) -> int:
        """Deactivate the account's pending authorizations and invalidate its pending and
        ready orders (with `error`); how many orders."""

    async def find_order_replacing(self, replaces: str, now: datetime) -> Order | None:
        """An order, not invalid (nor expired) at `now`, whose `replaces` (RFC 9773 §5)
        is this certificate id."""

    async def authorized_identifiers(self, account_id: uuid.UUID, now: datetime) -> set[Identifier]:
        """The identifiers of the account's valid, unexpired authorizations (normalized)."""

    async def get_authorization(
        self, authz_id: uuid.UUID, *, challenges: bool = True
    ) -> Authorization | None: ...

    async def authorizations_of(
        self, order_id: uuid.UUID, *, challenges: bool = True
    ) -> list[Authorization]:
        """An order's authorizations; challenges=False leaves their challenges out (the
        order's status needs only the authorizations' own)."""

    async def set_authorization(
        self, authz_id: uuid.UUID, status: AuthzStatus, expected: Sequence[AuthzStatus]
    ) -> bool: ...

    async def get_challenge(self, challenge_id: uuid.UUID) -> Challenge | None: ...

    async def set_challenge(
        self,
        challenge_id: uuid.UUID,
        status: ChallengeStatus,
        expected: Sequence[ChallengeStatus],
        *,
        validated: datetime | None = None,
        error: Problem | None = None,
        started_at: datetime | None = None,
    ) -> bool: ...

    async def stuck_challenges(self, started_before: datetime, limit: int) -> list[Challenge]:
        """Challenges `processing` since before `started_before` (or with no start time)."""


class CertificateLookup(Protocol):
    async def get(self, certificate_id: uuid.UUID) -> Certificate | None: ...

    async def get_by_serial(self, serial: str) -> Certificate | None: ...


class AcmeUnitOfWork(Protocol):
    @property
    def acme(self) -> AcmeRepositoryPort: ...

    @property
    def certificates(self) -> CertificateLookup: ...


class AcmeTransactions(Protocol):
    def transaction(
        self, *, read_only: bool = False
    ) -> AbstractAsyncContextManager[AcmeUnitOfWork]: ...
