"""Domain errors. Each carries a stable `code`; front-ends map them to their own form
(REST JSON error, ACME problem, EST text/plain, SCEP failInfo) in one place each."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base class. `code` is stable and public; `message` is safe to show a client."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(DomainError):
    code = "not_found"


class NoActiveProject(NotFound):
    """The organization has no active project, so no Application can be served.

    A NotFound for the enrollment protocols (an application-scoped URL is then simply not
    served, 404 in each protocol's form); the REST API answers it 409, since the request
    names nothing missing: the organization's state has to be fixed first."""

    code = "no_active_project"


class Conflict(DomainError):
    code = "conflict"


class InvalidInput(DomainError):
    code = "invalid_input"


class BadCSR(InvalidInput):
    """Unparseable CSR or one whose signature (proof of possession) does not verify."""

    code = "bad_csr"


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class CAUnavailable(DomainError):
    """The profile's CA is disabled, missing or expired: nothing can be issued."""

    code = "ca_unavailable"


class CAExternal(CAUnavailable):
    """The profile's CA is external: its certificate is held here, its key is not, and no
    connector to the system holding the key exists yet. Unlike its parent this does not pass
    with time, but it is still a state of the CA, not of the request: nothing is stored."""

    code = "ca_external"


class SelfSignedNeedsKey(InvalidInput):
    """A self-signed profile signs each certificate with the certificate's own key, so only
    a key generated here can be used: a CSR brings a key certgate does not hold."""

    code = "self_signed_needs_key"


class MethodNotEnabled(DomainError):
    code = "method_not_enabled"


class DuplicateSerial(DomainError):
    """Raised by the store when a serial is already taken; the core re-signs."""

    code = "duplicate_serial"


@dataclass(frozen=True)
class Violation:
    """One violated policy rule, in words a requester understands."""

    rule: str  # stable id, e.g. "san.dns.not_allowed"
    message: str
    identifier: str | None = None  # the offending value (SAN, attribute), for per-identifier errors


class PolicyDenied(DomainError):
    """Every violated rule, not only the first (issue: a denial lists them all)."""

    code = "policy_denied"

    def __init__(self, violations: list[Violation] | tuple[Violation, ...]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(v.message for v in self.violations) or "denied by policy")
