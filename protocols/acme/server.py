"""The ACME front-end's shared machinery: dependencies, per-request context, URLs by named
route, the one wrapper that renders every Problem, and the ordered JWS pipeline.

Handlers live in accounts.py, orders.py and authorizations.py; routes.py binds them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import aiohttp
from aiohttp import web

from gateway.core.acme import (
    Account,
    AccountStatus,
    AcmeTransactions,
    AcmeUnitOfWork,
    EndpointResolver,
    PendingRequests,
)
from gateway.core.enrollment import EnrollmentRequest, Issued, Pending
from gateway.core.errors import DomainError
from gateway.core.model import Certificate, RevocationReason
from gateway.core.ports import Clock, InTransaction
from gateway.core.target import EnrollmentTarget
from protocols.acme import jws as jwslib
from protocols.acme import nonces
from protocols.acme.problems import PROBLEM_JSON, Problem, malformed

log = logging.getLogger("certgate.acme")
T = TypeVar("T")

APP = "app"  # /applications/{app}/profiles/{profile}/acme/…
LEGACY = "legacy"  # /profiles/{profile_id}/acme/…


class Enroller(Protocol):
    """The part of gateway.core.enrollment.EnrollmentService the front-end calls."""

    async def enroll(
        self,
        request: EnrollmentRequest,
        *,
        also: InTransaction[AcmeUnitOfWork] | None = None,
    ) -> Issued | Pending: ...

    async def revoke(
        self,
        certificate_id: uuid.UUID,
        reason: RevocationReason,
        *,
        actor: str,
        source_ip: str | None = None,
        application_id: uuid.UUID | None = None,
    ) -> Certificate: ...


@dataclass(frozen=True)
class ValidationSettings:
    http01_port: int = 80
    tlsalpn01_port: int = 443
    resolvers: tuple[str, ...] = ()
    attempts: int = 3  # bounded retries of one challenge validation
    retry_delay: float = 1.0  # seconds before the second attempt; doubles after
    timeout: float = 10.0  # per target (connection + response)


@dataclass
class AcmeDeps:
    db: AcmeTransactions
    endpoints: EndpointResolver
    enrollment: Enroller
    pending: PendingRequests
    clock: Clock
    base_url: str  # server.public_base_url or the HTTP listener's URL
    https_base_url: str
    public_base_url_set: bool
    validation: ValidationSettings = field(default_factory=ValidationSettings)


def new_http_session() -> aiohttp.ClientSession:
    """For http-01 fetches: no connection is kept (each target is a different host, and a
    kept connection would skip the fresh connect §8.3 validates), no cookies."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True, limit=0, use_dns_cache=False),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


class AcmeServer:
    """Holds the dependencies (bound once the app's services are open) and the background
    validation tasks of this process."""

    def __init__(self) -> None:
        self._deps: AcmeDeps | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None

    def http_session(self) -> aiohttp.ClientSession:
        """The process's session for http-01 fetches (new_http_session), made
        on first use on the running loop and closed by close()."""
        if self._http is None or self._http.closed:
            self._http = new_http_session()
        return self._http

    def bind(self, deps: AcmeDeps) -> None:
        self._deps = deps

    @property
    def deps(self) -> AcmeDeps:
        if self._deps is None:
            raise Problem("serverInternal", "ACME is starting", status=503)
        return self._deps

    def spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        async def run() -> T:
            return await coro

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def now(self) -> datetime:
        return self.deps.clock.now()


@dataclass
class Ctx:
    """One ACME request: its endpoint, how to name resources under it, and its transaction.

    A signed request (verify_post) runs in one write transaction, from consuming its nonce
    to the handler's last write, committed before the response is sent. A handler that
    must call out (issuance, approval, revocation, a validation task) ends it first with
    `commit()`; after that, `work()` opens transactions of their own."""

    server: AcmeServer
    request: web.Request
    kind: str
    target: EnrollmentTarget
    headers: dict[str, str] = field(default_factory=dict)
    _tx: AbstractAsyncContextManager[AcmeUnitOfWork] | None = None
    _uow: AcmeUnitOfWork | None = None
    # The nonce consumed inside the open transaction (value, keep-until), until it commits.
    _spent: tuple[str, datetime] | None = None

    async def begin(self) -> AcmeUnitOfWork:
        if self._uow is None:
            tx = self.deps.db.transaction()
            self._uow = await tx.__aenter__()
            self._tx = tx
        return self._uow

    async def use_nonce(self, value: str, keep_until: datetime) -> bool:
        """Open the request's transaction by recording its nonce as used (RFC 8555 §6.5);
        False when it was used before."""
        if not await (await self.begin()).acme.use_nonce(value, keep_until):
            return False
        self._spent = (value, keep_until)
        return True

    @property
    def uow(self) -> AcmeUnitOfWork:
        """The request's open transaction (verify_post opened it)."""
        if self._uow is None:
            raise RuntimeError("the request's transaction is not open")
        return self._uow

    @asynccontextmanager
    async def work(self, *, read_only: bool = False) -> AsyncIterator[AcmeUnitOfWork]:
        """The request's transaction while it is open, else one of its own."""
        if self._uow is not None:
            yield self._uow
            return
        async with self.deps.db.transaction(read_only=read_only) as uow:
            yield uow

    async def commit(self) -> None:
        tx, self._tx, self._uow = self._tx, None, None
        if tx is not None:
            await tx.__aexit__(None, None, None)
        self._spent = None

    async def abort(self, err: BaseException) -> None:
        """Roll the request back, but keep its nonce spent. RFC 8555 §6.5: a nonce is
        accepted once; a request that failed after its nonce was accepted (a Problem from
        the handler, say) must not be replayable later, when the same request might
        succeed. So the rollback, which takes the nonce's use with it, is followed by a
        transaction that records the use alone (only on this error path)."""
        tx, self._tx, self._uow = self._tx, None, None
        spent, self._spent = self._spent, None
        if tx is not None:
            try:
                await tx.__aexit__(type(err), err, err.__traceback__)
            except BaseException as rollback_err:
                if rollback_err is not err:
                    log.warning("rolling back an ACME request failed: %r", rollback_err)
        if spent is not None:
            try:
                async with self.deps.db.transaction() as uow:
                    await uow.acme.use_nonce(*spent)
            except Exception:
                log.exception("could not record a used nonce after a failed request")

    @property
    def deps(self) -> AcmeDeps:
        return self.server.deps

    def base(self) -> str:
        deps = self.deps
        if self.request.secure and not deps.public_base_url_set:
            return deps.https_base_url
        return deps.base_url

    def url(self, name: str, **parts: str) -> str:
        """URLs come from the named routes (DESIGN.md), never from string formatting: the
        route's own formatter, filled with percent-encoded parts (what url_for does,
        without building a yarl URL per call: a response names up to a dozen URLs)."""
        match = self.request.match_info
        values = {k: quote(match[k], safe="") for k in _PREFIX_PARTS[self.kind]}
        values.update((k, quote(v, safe="")) for k, v in parts.items())
        return self.base() + _formatter(
            self.request.app.router, f"acme.{self.kind}.{name}"
        ).format_map(values)

    def app_url(self, name: str, **parts: str) -> str | None:
        """A URL of a route outside the ACME tree (e.g. the issuer certificate), or None
        when the application does not serve that route."""
        try:
            route = self.request.app.router[name]
        except KeyError:
            return None
        return self.base() + str(route.url_for(**parts))

    def request_url(self) -> str:
        return self.base() + self.request.rel_url.raw_path

    def resource_id(self, name: str) -> uuid.UUID:
        try:
            return uuid.UUID(self.request.match_info[name])
        except ValueError:
            raise Problem("malformed", "no such resource", status=404) from None


_PREFIX_PARTS = {APP: ("app", "profile"), LEGACY: ("profile_id",)}
_FORMATTERS: dict[tuple[int, str], str] = {}


def _formatter(router: web.UrlDispatcher, name: str) -> str:
    """The path template of a named route ("/…/order/{order_id}"), looked up once."""
    key = (id(router), name)
    found = _FORMATTERS.get(key)
    if found is None:
        info = router[name].get_info()
        found = str(info.get("formatter") or info["path"])
        _FORMATTERS[key] = found
    return found


Handler = Callable[[Ctx], Awaitable[web.Response]]


def iso(value: datetime | None) -> str | None:
    """RFC 3339 timestamps (RFC 8555 §7.1) in UTC with a Z."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def new_nonce(ctx: Ctx) -> str:
    """RFC 8555 §6.5: an unpredictable value any process can check (protocols.acme.nonces);
    nothing is stored until it is used."""
    return nonces.issue(await ctx.deps.endpoints.nonce_key(ctx.target), ctx.server.now())


def endpoint(server: AcmeServer, kind: str, handler: Handler, *, nonce: bool = True) -> Any:
    """Wrap a handler: resolve the endpoint, run it in the request's transaction (Ctx),
    render any Problem as application/problem+json (RFC 8555 §6.7), add Replay-Nonce (§6.5)
    and the directory Link (§7.1)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        ctx: Ctx | None = None
        try:
            ctx = Ctx(server, request, kind, await _resolve(server, request, kind))
            try:
                response = await handler(ctx)
            except BaseException as err:
                await ctx.abort(err)
                raise
            # The state the response describes is committed before it is sent.
            await ctx.commit()
        except Problem as problem:
            response = _problem_response(problem)
        except web.HTTPRequestEntityTooLarge:
            response = _problem_response(Problem("malformed", "request body too large", 413))
        except DomainError as err:
            response = _problem_response(Problem("malformed", err.message))
        except Exception:
            request_id = uuid.uuid4().hex
            log.exception(
                "ACME %s %s failed (request %s)", request.method, request.path, request_id
            )
            response = _problem_response(
                Problem("serverInternal", f"internal error (request id {request_id})", 500)
            )
        if ctx is not None:
            response.headers.update(ctx.headers)
            if nonce:
                try:
                    response.headers["Replay-Nonce"] = await new_nonce(ctx)
                except Exception:
                    log.exception("could not make a new nonce")
            response.headers.add("Link", f'<{ctx.url("directory")}>;rel="index"')
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return wrapped


def _problem_response(problem: Problem) -> web.Response:
    response = web.json_response(
        problem.to_json(), status=problem.status, content_type=PROBLEM_JSON
    )
    response.headers.update(problem.headers)
    return response


async def _resolve(server: AcmeServer, request: web.Request, kind: str) -> EnrollmentTarget:
    resolver = server.deps.endpoints
    if kind == APP:
        found = await resolver.scoped(request.match_info["app"], request.match_info["profile"])
    else:
        try:
            profile_id = uuid.UUID(request.match_info["profile_id"])
        except ValueError:
            profile_id = None
        found = await resolver.legacy(profile_id) if profile_id else None
    if found is None:
        raise Problem("malformed", "no ACME directory here", status=404)
    return found


@dataclass(frozen=True)
class Verified:
    jws: jwslib.Jws
    jwk: dict[str, Any]
    account: Account | None  # None when the request was signed with a jwk


async def verify_post(ctx: Ctx, *, use_jwk: bool = False) -> Verified:
    """RFC 8555 §6.2-§6.5, in this order and nothing skipped:
    content type → flattened JSON, one signature, no unprotected header → allowed alg →
    nonce (consumed once) → url equals the request URL → jwk xor kid → signature."""
    body = await ctx.request.read()
    jws = jwslib.parse(ctx.request.content_type, body)
    nonce = jws.protected.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise Problem("badNonce", "JWS has no nonce")  # §6.5.1
    # Before the transaction opens: making the key (first use) is a transaction itself.
    key = await ctx.deps.endpoints.nonce_key(ctx.target)
    keep_until = nonces.accept(key, nonce, ctx.server.now())
    if keep_until is None or not await ctx.use_nonce(nonce, keep_until):
        raise Problem("badNonce", "nonce is unknown, expired or already used")
    if jws.protected.get("url") != ctx.request_url():  # §6.4
        raise unauthorized_url()
    has_jwk, has_kid = "jwk" in jws.protected, "kid" in jws.protected
    if has_jwk == has_kid:  # §6.2: exactly one of them
        raise malformed("JWS must have exactly one of jwk and kid")
    if use_jwk and has_jwk:
        jwk = jws.protected["jwk"]
        jwslib.verify(jws, jwk)
        return Verified(jws, jwslib.public_jwk(jwk), None)
    if has_jwk:
        raise malformed("this request must be signed with an account key (kid)")
    account = await account_for_kid(ctx, jws.protected["kid"])
    jwslib.verify(jws, account.jwk)
    return Verified(jws, account.jwk, account)


def unauthorized_url() -> Problem:
    return Problem("unauthorized", "JWS url does not match the request URL")


async def account_for_kid(ctx: Ctx, kid: Any) -> Account:
    if not isinstance(kid, str):
        raise malformed("kid must be a string")
    account_id = None
    tail = kid.rstrip("/").rsplit("/", 1)[-1]
    try:
        account_id = uuid.UUID(tail)
    except ValueError:
        pass
    account = await ctx.uow.acme.get_account(account_id) if account_id is not None else None
    if (
        account is None
        or account.scope != ctx.target.owner
        or kid != ctx.url("account", account_id=str(account.id))
    ):
        raise Problem("accountDoesNotExist", "no account with this kid in this directory")
    if account.status is not AccountStatus.VALID:
        raise Problem("unauthorized", f"account is {account.status.value}")  # §7.3.6
    return account


def json_response(
    ctx: Ctx, body: dict[str, Any], *, status: int = 200, location: str | None = None
) -> web.Response:
    response = web.json_response(body, status=status)
    if location:
        response.headers["Location"] = location
    return response
