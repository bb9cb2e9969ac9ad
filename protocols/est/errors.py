"""EST's one error form: text/plain with the status (RFC 7030 §4.2.3: "the error
message ... SHOULD be text/plain"), raised once and rendered once by `render`."""

from __future__ import annotations

from aiohttp import web

from gateway.core.errors import (
    BadCSR,
    CAExternal,
    CAUnavailable,
    Conflict,
    DomainError,
    DuplicateSerial,
    Forbidden,
    InvalidInput,
    MethodNotEnabled,
    NotFound,
    PolicyDenied,
    Unauthorized,
)


class EstError(Exception):
    """A public message a device developer can act on, with its HTTP status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def from_domain(err: DomainError, realm: str | None) -> EstError:
    """Map a core error to its EST status; `realm` adds the Basic challenge to a 401."""
    if isinstance(err, PolicyDenied):
        lines = [f"- {v.rule}: {v.message}" for v in err.violations]
        return EstError(403, "the request violates the profile's policy:\n" + "\n".join(lines))
    if isinstance(err, BadCSR):
        return EstError(400, f"bad CSR: {err.message}")
    if isinstance(err, InvalidInput):
        return EstError(400, err.message)
    if isinstance(err, Unauthorized):
        return unauthorized(err.message, realm)
    if isinstance(err, MethodNotEnabled):
        # Same answer as an unknown target, so URLs cannot be probed for disabled EST.
        return EstError(404, err.message)
    if isinstance(err, NotFound):
        return EstError(404, err.message)
    if isinstance(err, Forbidden):
        return EstError(403, err.message)
    if isinstance(err, CAExternal):
        # Not "now": no retry helps until a connector to the CA's key exists (409, as REST).
        return EstError(409, f"cannot issue: {err.message}")
    if isinstance(err, CAUnavailable):
        return EstError(503, f"cannot issue now: {err.message}")
    if isinstance(err, Conflict | DuplicateSerial):
        return EstError(503, f"{err.message}; retry", {"Retry-After": "5"})
    return EstError(400, err.message)


def unauthorized(message: str, realm: str | None) -> EstError:
    # RFC 7030 §3.2.3 / RFC 7235 §3.1: a 401 carries a challenge the client can answer.
    headers = {"WWW-Authenticate": f'Basic realm="{realm}"'} if realm else {}
    return EstError(401, message, headers)


def render(err: EstError, request_id: str) -> web.Response:
    body = f"{err.message}\n"
    if err.status >= 500:
        body += f"(request id {request_id})\n"
    response = web.Response(status=err.status, text=body, content_type="text/plain")
    response.headers.update(err.headers)
    return response
