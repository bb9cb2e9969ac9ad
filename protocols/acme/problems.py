"""ACME errors: one raisable Problem, rendered once as application/problem+json
(RFC 8555 §6.7, RFC 7807) by `protocols.acme.server.acme_endpoint`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.core.acme import Identifier

ACME_ERROR = "urn:ietf:params:acme:error:"
PROBLEM_JSON = "application/problem+json"

# RFC 8555 §6.7 error types and the HTTP status each is sent with by default.
STATUS: dict[str, int] = {
    "accountDoesNotExist": 400,
    "alreadyReplaced": 409,  # RFC 9773 §5
    "alreadyRevoked": 400,
    "badCSR": 400,
    "badNonce": 400,
    "badPublicKey": 400,
    "badRevocationReason": 400,
    "badSignatureAlgorithm": 400,
    "caa": 403,
    "compound": 403,
    "connection": 400,
    "dns": 400,
    "externalAccountRequired": 400,
    "incorrectResponse": 400,
    "invalidProfile": 400,  # draft-aaron-acme-profiles
    "invalidContact": 400,
    "malformed": 400,
    "orderNotReady": 403,
    "rateLimited": 429,
    "rejectedIdentifier": 400,
    "serverInternal": 500,
    "tls": 400,
    "unauthorized": 403,
    "unsupportedContact": 400,
    "unsupportedIdentifier": 400,
    "userActionRequired": 403,
}


@dataclass
class Subproblem:
    """RFC 8555 §6.7.1: one identifier's own error inside a compound problem."""

    type: str
    detail: str
    identifier: Identifier

    def to_json(self) -> dict[str, Any]:
        return {
            "type": ACME_ERROR + self.type,
            "detail": self.detail,
            "identifier": {"type": self.identifier.type.value, "value": self.identifier.value},
        }


@dataclass
class Problem(Exception):
    """Raise it anywhere below a handler; the wrapper renders it."""

    type: str
    detail: str
    status: int = 0
    subproblems: list[Subproblem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    # RFC 8555 §7.3.4 / §6.7: extra members such as `algorithms` for badSignatureAlgorithm.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = STATUS.get(self.type, 400)
        super().__init__(f"{self.type}: {self.detail}")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": ACME_ERROR + self.type,
            "detail": self.detail,
            "status": self.status,
            **self.extra,
        }
        if self.subproblems:
            body["subproblems"] = [s.to_json() for s in self.subproblems]
        return body


def malformed(detail: str) -> Problem:
    return Problem("malformed", detail)


def unauthorized(detail: str) -> Problem:
    return Problem("unauthorized", detail)


def not_found(what: str) -> Problem:
    # RFC 8555 has no "notFound" type; pebble and boulder answer malformed with 404.
    return Problem("malformed", f"{what} does not exist", status=404)
