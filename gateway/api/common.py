"""What every REST handler shares: the error middleware, auth, body parsing, pagination."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from gateway.api.models import Body, Query
from gateway.api.routing import APP_PARAM, APP_ROLES, ROUTES, Permission, Route
from gateway.api.transport import require_tls_for_tokens
from gateway.appkeys import AUTH, CONFIG, SERVICES
from gateway.core.errors import (
    BadCSR,
    CAUnavailable,
    Conflict,
    DomainError,
    DuplicateSerial,
    Forbidden,
    InvalidInput,
    MethodNotEnabled,
    NoActiveProject,
    NotFound,
    PolicyDenied,
    Unauthorized,
)
from gateway.core.model import Application, AppRole, Member, ProductRole
from gateway.services.audit import Actor
from gateway.services.auth import Authenticated
from gateway.services.catalog import active_project
from gateway.services.graph import Services
from store.db import Tx

log = logging.getLogger("certgate.api")

PRINCIPAL = web.RequestKey("principal", Authenticated)
BODY = web.RequestKey("body", Body)
BODY_JSON = web.RequestKey("body_json", dict[str, Any])
QUERY = web.RequestKey("query", Query)
REQUEST_ID = web.RequestKey("request_id", str)

_STATUS: list[tuple[type[DomainError], int]] = [
    (BadCSR, 400),
    (InvalidInput, 400),
    (Unauthorized, 401),
    (PolicyDenied, 403),
    (MethodNotEnabled, 403),
    (Forbidden, 403),
    # Before NotFound, its base: nothing requested is missing, the organization must first
    # designate an active project (409, like every other state conflict).
    (NoActiveProject, 409),
    (NotFound, 404),
    (CAUnavailable, 409),
    (Conflict, 409),
    (DuplicateSerial, 503),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="certgate"'} if status == 401 else None
    return web.json_response({"error": body}, status=status, headers=headers)


def domain_error_response(err: DomainError) -> web.Response:
    status = next((s for cls, s in _STATUS if isinstance(err, cls)), 400)
    extra: dict[str, Any] = {}
    if isinstance(err, PolicyDenied):
        extra["violations"] = [
            {"rule": v.rule, "message": v.message, "identifier": v.identifier}
            for v in err.violations
        ]
    return error_response(status, err.code, err.message, **extra)


@web.middleware
async def api_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The REST sub-application's middleware: request id, metrics, authentication and
    authorization, validation against the route's models, and the one JSON error form."""
    return await serve(request, handler)


def standalone(handler: Any) -> Any:
    """The same handling for a route of the table outside the sub-application (health,
    metrics, PKI), without a middleware that the protocols' routes would pass through."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await serve(request, handler)

    return wrapped


async def serve(request: web.Request, handler: Any) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    services = request.config_dict[SERVICES]
    started = time.perf_counter()
    route_name = getattr(request.match_info.route, "name", None) or "unmatched"
    try:
        response = await _dispatch(request, handler, route_name)
    except _Invalid as invalid:
        response = invalid.response
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = error_response(exc.status, code, exc.reason)
    except DomainError as err:
        response = domain_error_response(err)
    except Exception:
        # Public detail, private cause: the log has the traceback, the client a request id.
        log.exception(
            "unhandled error on %s %s (request %s)", request.method, request.path, request_id
        )
        response = error_response(500, "internal", f"internal error (request id {request_id})")
    response.headers["X-Request-Id"] = request_id
    services.metrics.requests.labels(request.method, route_name, str(response.status)).inc()
    services.metrics.request_latency.labels(route_name).observe(time.perf_counter() - started)
    return response


async def _dispatch(request: web.Request, handler: Any, route_name: str) -> web.StreamResponse:
    route = request.config_dict[ROUTES].get(route_name)
    if route is not None and route.permission is not Permission.PUBLIC:
        require_tls_for_tokens(request, request.config_dict[CONFIG].server)
        auth = await request.config_dict[AUTH].authenticate(request.headers.get("Authorization"))
        request[PRINCIPAL] = auth
        _check_slugs(request)
        access = await authorize(request, auth, route.permission)
        if access is not None:
            request[ACCESS] = access
    if route is not None:
        await _validate(request, route)
    result: web.StreamResponse = await handler(request)
    return result


_SLUG = re.compile(r"[a-z0-9-]{1,63}")
_SLUG_PARAMS = ("app", "profile")


def _check_slugs(request: web.Request) -> None:
    """A path slug that cannot exist (DESIGN.md: `[a-z0-9-]{1,63}`) names nothing: 404
    before it reaches a query (PostgreSQL refuses NUL in text)."""
    for name in _SLUG_PARAMS:
        value = request.match_info.get(name)
        if value is not None and not _SLUG.fullmatch(value):
            raise NotFound(f"{name} '{value[:80]}' is not a valid slug")


def _violations(err: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "rule": e["type"],
            "field": ".".join(str(p) for p in e["loc"]),
            "message": e["msg"],
            "identifier": None,
        }
        for e in err.errors(include_url=False, include_context=False, include_input=False)
    ]


def _invalid(err: ValidationError, model: type[Body] | type[Query], where: str) -> web.Response:
    violations = _violations(err)
    first = err.errors(include_url=False)[0]
    top = str(first["loc"][0]) if first["loc"] else ""
    code = model.error_codes.get(top, "invalid_input")
    field_name = violations[0]["field"]
    message = f"{where} {field_name}: {first['msg']}" if field_name else f"{where}: {first['msg']}"
    raise _Invalid(error_response(400, code, message, violations=violations))


class _Invalid(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def _validate(request: web.Request, route: Route) -> None:
    """Query and body against the route's models, before the handler runs. The handler
    finds the model under BODY/QUERY and the body's JSON form through json_body()."""
    if route.query is not None:
        try:
            request[QUERY] = route.query.model_validate(dict(request.query))
        except ValidationError as err:
            _invalid(err, route.query, "query parameter")
    if route.body is None:
        return
    if route.body_optional and not request.body_exists:
        raw = b"{}"
    else:
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(reason="send the body as application/json")
        raw = await request.read() or b"{}"
    try:
        model = route.body.model_validate_json(raw)
    except ValidationError as err:
        if any(e["type"] == "json_invalid" for e in err.errors()):
            raise InvalidInput(f"body is not valid JSON: {err.errors()[0]['msg']}") from None
        if any(e["type"] == "model_type" and not e["loc"] for e in err.errors()):
            raise InvalidInput("body must be a JSON object") from None
        _invalid(err, route.body, "body")
    request[BODY] = model
    request[BODY_JSON] = model.model_dump(mode="json", exclude_unset=True)


@dataclass(frozen=True)
class Access:
    """What authorize() found for an application route: the application (None only when a
    Product Admin names one that does not exist; the handler answers 404) and the caller's
    role in it (None for a Product Admin who is not a member)."""

    application: Application | None
    role: AppRole | None


ACCESS = web.RequestKey("access", Access)


async def authorize(
    request: web.Request, auth: Authenticated, permission: Permission
) -> Access | None:
    """The one access decision of the REST API (routing.APP_ROLES is its table).

    Product Admins may do everything. Application permissions also need the Product Member
    product role, and a role in the application named by the path's {app}. A caller with
    no role in that application gets 403 whether or not it exists, so non-members cannot
    probe which applications exist; 404 for a missing application is only ever answered
    to a Product Admin (by the handler), the one caller allowed to see every application.
    """
    if permission in (Permission.PUBLIC, Permission.AUTHENTICATED):
        return None
    principal = auth.principal
    is_admin = principal.product_role is ProductRole.ADMIN
    if permission is Permission.PRODUCT_ADMIN:
        if is_admin:
            return None
        raise Forbidden("this operation needs the Product Admin role")
    allowed = APP_ROLES[permission]  # KeyError: a new permission nobody mapped
    if principal.product_role is None:
        raise Forbidden("reaching an application needs the Product Member role")
    slug = request.match_info[APP_PARAM]  # routing.register() guarantees the parameter

    async def load(tx: Tx) -> tuple[Application | None, Member | None]:
        project = await active_project(tx)
        app = await tx.applications.get_by_slug(project.id, slug)
        return app, await tx.members.get(app.id, principal.id) if app is not None else None

    app, member = await services(request).db.cached(("member", slug, principal.id), load)
    role = member.role if member is not None else None
    if is_admin:
        return Access(app, role)
    if app is None or role is None:
        raise Forbidden(f"you have no role in application '{slug}'")
    if role not in allowed:
        needed = " or ".join(sorted(r.value for r in allowed))
        raise Forbidden(
            f"this operation needs the {needed} role in application '{slug}' "
            f"(yours is {role.value})"
        )
    return Access(app, role)


def services(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def actor(request: web.Request) -> Actor:
    auth: Authenticated | None = request.get(PRINCIPAL)
    name = f"principal:{auth.principal.name}" if auth else "anonymous"
    return Actor(name, request.remote, auth.principal.id if auth else None)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The body as JSON: validated by the route's model when it declares one."""
    validated: dict[str, Any] | None = request.get(BODY_JSON)
    if validated is not None:
        return validated
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(reason="send the body as application/json")
    raw = await request.read()
    try:
        body = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidInput(f"body is not valid JSON: {err}") from None
    except (ValueError, RecursionError):
        raise InvalidInput("body is not valid JSON (too deep or a number too long)") from None
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object")
    return body


B = TypeVar("B", bound=Body)
Q = TypeVar("Q", bound=Query)


def body_of(request: web.Request, model: type[B]) -> B:
    """The body the dispatcher validated against the route's model."""
    body = request[BODY]
    if not isinstance(body, model):  # the route declares another model: a programming error
        raise TypeError(f"route body is {type(body).__name__}, not {model.__name__}")
    return body


def query_of(request: web.Request, model: type[Q]) -> Q:
    """The query the dispatcher validated against the route's model."""
    query = request[QUERY]
    if not isinstance(query, model):
        raise TypeError(f"route query is {type(query).__name__}, not {model.__name__}")
    return query


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound(f"{name} must be a UUID") from None


def pagination(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise InvalidInput("limit and offset must be integers") from None
    if not 1 <= limit <= 500 or offset < 0:
        raise InvalidInput("limit must be 1..500 and offset >= 0")
    return limit, offset


def page_json(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def iso_datetime(value: object, name: str) -> datetime | None:
    """An ISO 8601 date-time with a timezone ("Z" accepted) from a query or body value."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} must include a timezone (e.g. Z)")
    return parsed
