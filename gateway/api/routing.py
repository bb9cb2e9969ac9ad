"""The REST route table. Every route declares its permission here, next to its path, so a
route cannot exist without one (the role x route test walks this table)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Permission(enum.StrEnum):
    PUBLIC = "public"  # no token
    AUTHENTICATED = "authenticated"  # any valid token
    PRODUCT_ADMIN = "product:admin"
    APP_READ = "app:read"  # Auditor and above, within {app}
    APP_ISSUE = "app:issue"  # Operator and above
    APP_ADMIN = "app:admin"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    name: str
    permission: Permission
    summary: str
    tag: str
    request_body: dict[str, Any] | None = None
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})
    query: tuple[str, ...] = ()


def register(app: web.Application, table: dict[str, Route], routes: list[Route]) -> None:
    for route in routes:
        if route.name in table:
            raise RuntimeError(f"route name {route.name} is declared twice")
        table[route.name] = route
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
