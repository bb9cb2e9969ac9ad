"""HTTP listeners with the limits aiohttp leaves open by default, so a slow or stalled
client cannot hold a connection (and its memory) for ever (issue 15, finding 7):

* the request head: aiohttp's keep-alive timer also runs from the moment a connection
  opens and closes a connection still waiting for a complete head when it fires, and data
  arriving does not reset it. Set to header_timeout_s, it bounds the time to send a head,
  after connecting and after each response (RFC 9112 §9.5: a server may close an idle
  connection at any time). TLS handshakes get the same limit.
* the body: a request whose body has not fully arrived body_timeout_s after its head has
  its connection closed (a 408 could not be read by a client still sending); a body the
  handler answered without reading gets as long again.
* concurrent connections: past max_connections a new connection gets a 503 with
  Retry-After and is closed, before any of its bytes is read.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.config import ServerConfig

log = logging.getLogger(__name__)

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 20\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\n"
    b"too many connections"
)


@dataclass(frozen=True)
class ListenerLimits:
    header_timeout_s: float = 15.0
    body_timeout_s: float = 30.0
    max_connections: int = 1000

    @classmethod
    def from_config(cls, server: ServerConfig) -> ListenerLimits:
        return cls(server.header_timeout_s, server.body_timeout_s, server.max_connections)


def _close_if_body_unread(request: web.BaseRequest, timeout: float) -> None:
    if request.content.is_eof() or request.transport is None:
        return
    log.info(
        "closing the connection of %s %s from %s: body incomplete after %.1f s",
        request.method,
        request.path,
        request.remote,
        timeout,
    )
    request.transport.close()


def body_deadline(timeout: float) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Root-app middleware: the whole body must have arrived `timeout` s after the head."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout, _close_if_body_unread, request, timeout)
        try:
            return await handler(request)
        finally:
            timer.cancel()

    return middleware


def make_runner(app: web.Application, limits: ListenerLimits) -> web.AppRunner:
    """The runner for `app` with the head and body limits (call before the app starts)."""
    app.middlewares.append(body_deadline(limits.body_timeout_s))
    # lingering_time: how long aiohttp goes on reading a body its handler answered without
    # reading (so the client still gets the answer); the body's limit applies there too.
    return web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=limits.header_timeout_s,
        lingering_time=limits.body_timeout_s,
    )


class _Busy(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()


class BoundedTCPSite(web.TCPSite):
    """A TCPSite refusing connections past the limit (counted over every site of the
    runner, HTTP and HTTPS together)."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        limits: ListenerLimits,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self._limits = limits

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        limit = self._limits.max_connections

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= limit:
                log.warning("refusing a connection: %d connections open", limit)
                return _Busy()
            return server()

        handshake = self._limits.header_timeout_s if self._ssl_context else None
        self._server = await asyncio.get_running_loop().create_server(
            protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=handshake,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]
