"""Request metrics and the request id for the protocols' routes (ACME, EST, SCEP).

They sit on the root application, outside the REST API's middleware (which authenticates,
validates and renders REST errors); operators still want them counted in
`certgate_http_requests` and correlated by `X-Request-Id` like every REST request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from gateway.appkeys import SERVICES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A client's own id is echoed when it looks like one; anything else is replaced, so a
# header cannot smuggle arbitrary text into the logs.
_MAX_ID = 128


@dataclass(frozen=True)
class RouteSpec:
    """One protocol route, as a protocol's route table declares it."""

    method: str
    path: str
    handler: Handler
    name: str
    summary: str


def mount(app: web.Application, specs: Iterable[RouteSpec]) -> None:
    """Add a protocol's routes to the root application, each one observed."""
    for spec in specs:
        app.router.add_route(
            spec.method, spec.path, observed(spec.handler, spec.name), name=spec.name
        )


def request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    if 0 < len(given) <= _MAX_ID and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


def observed(handler: Handler, route_name: str) -> Handler:
    """`handler`, counted and timed under `route_name`, its answer carrying X-Request-Id."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        rid = request_id(request)
        metrics = request.config_dict[SERVICES].metrics
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:  # a streamed answer has sent its headers already
                response.headers["X-Request-Id"] = rid
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-Id"] = rid
            raise
        finally:
            metrics.requests.labels(request.method, route_name, str(status)).inc()
            metrics.request_latency.labels(route_name).observe(time.perf_counter() - started)

    return wrapped
