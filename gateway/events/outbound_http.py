"""HTTP to the targets of alert channels (webhook, Slack, PagerDuty), held to the one
outbound policy (gateway.core.outbound.target_allowed).

The check sits where the connection is made, not only where the URL is accepted: the
session's resolver drops every address the policy refuses, so a name that resolves to a
private address (or starts to, DNS rebinding) never gets a connection, and aiohttp
connects to the addresses that were checked. An IP literal skips resolvers in aiohttp,
so `post_json` checks it itself. Redirects are not followed: a 3xx is a failed attempt.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.core.outbound import target_allowed

# What an answer may show of itself in last_error.
_ERROR_BODY = 200


class DeliveryError(Exception):
    """An attempt failed; `message` goes to the delivery's last_error."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        # True when retrying cannot help (a refused target): the delivery fails at once.
        self.permanent = permanent


class PolicyResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses the outbound policy allows."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if target_allowed(r["host"], self._allow_private)]
        if not allowed:
            shown = ", ".join(sorted({r["host"] for r in found}))
            raise OSError(f"{host} resolves to {shown}: refused by the outbound policy")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def new_session(allow_private: bool) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            resolver=PolicyResolver(allow_private), use_dns_cache=False, limit=100
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def check_url(url: str, allow_private: bool) -> yarl.URL:
    """An http(s) URL whose host, when an IP literal or a localhost name, the policy
    allows; DeliveryError(permanent) otherwise. Names are checked again on connect."""
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError):
        raise DeliveryError(f"{url!r} is not a URL", permanent=True) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DeliveryError("the URL must be http or https with a host", permanent=True)
    host = parsed.host
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not target_allowed(str(literal), allow_private):
            raise DeliveryError(
                f"{host} is a private, loopback or reserved address (refused unless "
                "CERTGATE_EVENTS__ALLOW_PRIVATE_TARGETS is set)",
                permanent=True,
            )
    elif not allow_private and (host == "localhost" or host.endswith(".localhost")):
        raise DeliveryError(
            f"{host} is a loopback name (refused unless CERTGATE_EVENTS__ALLOW_PRIVATE_TARGETS "
            "is set)",
            permanent=True,
        )
    return parsed


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    timeout_s: float,
) -> int:
    """POST; the status of a 2xx answer, DeliveryError for anything else."""
    target = check_url(url, allow_private)
    sent: dict[str, Any] = {"Content-Type": "application/json", **headers}
    try:
        async with session.post(
            target,
            data=body,
            headers=sent,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            if 200 <= resp.status < 300:
                return resp.status
            text = (await resp.content.read(_ERROR_BODY)).decode("utf-8", "replace")
            raise DeliveryError(f"HTTP {resp.status} from {target.host}: {text}".strip())
    except TimeoutError:
        raise DeliveryError(f"{target.host}: no answer within {timeout_s:g} s") from None
    except (aiohttp.ClientError, OSError) as err:
        raise DeliveryError(f"{target.host}: {err}") from None
