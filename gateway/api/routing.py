"""The REST route table. Every route declares its permission here, next to its path, so a
route cannot exist without one (the role x route test walks this table)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from gateway.api.models import Body, Query
from gateway.api.responses import RESPONSES
from gateway.core.model import AppRole

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Permission(enum.StrEnum):
    PUBLIC = "public"  # no token
    AUTHENTICATED = "authenticated"  # any valid token
    PRODUCT_ADMIN = "product:admin"
    APP_READ = "app:read"  # Auditor and above, within {app}
    APP_ISSUE = "app:issue"  # Operator and above
    APP_ADMIN = "app:admin"


# Which application roles meet each application permission (DESIGN.md: Admin ⊇ Operator ⊇
# Auditor). A caller also needs the Product Member (or Admin) product role; Product Admins
# meet every permission. gateway.api.common.authorize applies this table, and nothing else
# decides access.
APP_ROLES: dict[Permission, frozenset[AppRole]] = {
    Permission.APP_READ: frozenset({AppRole.AUDITOR, AppRole.OPERATOR, AppRole.ADMIN}),
    Permission.APP_ISSUE: frozenset({AppRole.OPERATOR, AppRole.ADMIN}),
    Permission.APP_ADMIN: frozenset({AppRole.ADMIN}),
}

# The path parameter naming the application (its slug in the active project).
APP_PARAM = "app"
_NO_APP_CHECK = frozenset({Permission.PUBLIC, Permission.AUTHENTICATED})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    name: str
    permission: Permission
    summary: str
    tag: str
    # The request body's model (validated before the handler runs; None: no body), whether
    # the body may be absent (then it is validated as {}), and the query's model.
    body: type[Body] | None = None
    body_optional: bool = False
    query: type[Query] | None = None
    # Success responses: status -> description, and status -> the model of its body.
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})
    schemas: dict[int, type[BaseModel]] = field(default_factory=dict)


API_PREFIX = "/api/v1"


def register(
    app: web.Application,
    table: dict[str, Route],
    routes: list[Route],
    api: web.Application | None = None,
    wrap: Callable[[Handler], Handler] | None = None,
) -> None:
    """Add the routes: those under API_PREFIX to the REST sub-application `api` (mounted at
    API_PREFIX, with its own middleware), the others (health, metrics, PKI) to `app`, each
    handler wrapped by `wrap` (the REST error form without the sub-application's middleware).
    REST route names are also declared on the root router, without handlers, so `url_for`
    by name works from the root app for every route of the table."""
    for route in routes:
        if route.name in table:
            raise RuntimeError(f"route name {route.name} is declared twice")
        if not isinstance(route.permission, Permission):
            raise RuntimeError(f"route {route.name} declares no permission")
        names_app = "{" + APP_PARAM + "}" in route.path
        if route.permission in APP_ROLES and not names_app:
            # An application permission is checked against the {app} of the path; without
            # one there is nothing to check it against.
            raise RuntimeError(f"route {route.name} needs {{{APP_PARAM}}} in its path")
        if names_app and route.permission in _NO_APP_CHECK and route.path.startswith("/api/"):
            # "Product Member is needed to reach any application": a REST route inside an
            # application must go through the application check (or be Product Admin's).
            raise RuntimeError(
                f"route {route.name} reaches an application but declares "
                f"{route.permission.value}; use an app:* permission"
            )
        if not route.schemas and route.name in RESPONSES:
            route = dataclasses.replace(
                route,
                schemas={
                    code: model
                    for code, model in RESPONSES[route.name].items()
                    if code in route.responses
                },
            )
        table[route.name] = route
        if api is not None and route.path.startswith(API_PREFIX + "/"):
            api.router.add_route(
                route.method, route.path.removeprefix(API_PREFIX), route.handler, name=route.name
            )
            # A name-only resource: it has no routes, so it never answers a request (the
            # sub-application does); it only builds URLs.
            app.router.add_resource(route.path, name=route.name)
        else:
            handler = wrap(route.handler) if wrap is not None else route.handler
            app.router.add_route(route.method, route.path, handler, name=route.name)


ROUTES = web.AppKey("routes", dict[str, Route])
