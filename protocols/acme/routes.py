"""The ACME route table, once per URL form (DESIGN.md "URLs"): application-scoped
`/applications/{app}/profiles/{profile}/acme/…` and legacy `/profiles/{profile_id}/acme/…`.
Route names are `acme.<form>.<resource>`; `Ctx.url` builds every URL from them."""

from __future__ import annotations

import re

from aiohttp import web

from gateway.events.observe import RouteSpec
from protocols.acme import accounts, ari, authorizations, orders
from protocols.acme.problems import Problem, not_found
from protocols.acme.server import APP, LEGACY, AcmeServer, Ctx, Handler, endpoint

PREFIXES = {
    APP: "/applications/{app}/profiles/{profile}/acme",
    LEGACY: "/profiles/{profile_id}/acme",
}

# (method, path below the prefix, name, handler)
_TABLE: list[tuple[str, str, str, Handler]] = [
    ("GET", "/directory", "directory", accounts.directory),
    ("HEAD", "/new-nonce", "new-nonce", accounts.nonce),
    ("GET", "/new-nonce", "new-nonce-get", accounts.nonce),
    ("POST", "/new-account", "new-account", accounts.new_account),
    ("POST", "/account/{account_id}", "account", accounts.account),
    ("POST", "/account/{account_id}/orders", "orders", orders.list_orders),
    ("POST", "/key-change", "key-change", accounts.key_change),
    ("POST", "/new-order", "new-order", orders.new_order),
    ("POST", "/order/{order_id}", "order", orders.get_order),
    ("POST", "/order/{order_id}/finalize", "finalize", orders.finalize),
    ("POST", "/authz/{authz_id}", "authz", authorizations.authorization),
    ("POST", "/chall/{challenge_id}", "chall", authorizations.challenge),
    ("POST", "/cert/{cert_id}", "cert", orders.certificate),
    ("POST", "/revoke-cert", "revoke-cert", ari.revoke_cert),
    ("GET", "/renewal-info/{cert_id}", "renewal-info", ari.renewal_info),
    ("GET", "/renewal-info", "renewal-info-base", accounts.directory),
]

_NO_NONCE = {"directory", "renewal-info", "renewal-info-base", "unknown"}

# Each path of the table as a pattern, for telling a wrong method from an unknown path.
_PATTERNS = [
    (re.compile(re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), method)
    for method, path, _name, _handler in _TABLE
]


async def unknown(ctx: Ctx) -> web.Response:
    """Everything under an ACME prefix that no route takes: a problem document too (RFC 8555
    §6.7), never the router's text/plain 404 or 405, so a client can always parse it."""
    tail = ctx.request.match_info.get("tail", "")
    allowed = sorted({m for pattern, m in _PATTERNS if pattern.match(tail)})
    if allowed:
        raise Problem(
            "malformed",
            f"{ctx.request.method} is not allowed here (allowed: {', '.join(allowed)})",
            405,
            headers={"Allow": ", ".join(allowed)},
        )
    raise not_found("this ACME resource")


def route_specs(server: AcmeServer) -> list[RouteSpec]:
    """Every ACME route; the composition root registers them (as public routes: ACME
    authenticates with JWS, RFC 8555 §6.2)."""
    specs = []
    for kind, prefix in PREFIXES.items():
        for method, path, name, handler in _TABLE:
            wrapped = endpoint(server, kind, handler, nonce=name not in _NO_NONCE)
            specs.append(
                RouteSpec(method, prefix + path, wrapped, f"acme.{kind}.{name}", f"ACME {name}")
            )
        # Last: aiohttp tries resources in the order they were added.
        wrapped = endpoint(server, kind, unknown, nonce=False)
        specs.append(
            RouteSpec("*", prefix + "{tail:(?:/.*)?}", wrapped, f"acme.{kind}.unknown", "ACME 404")
        )
    return specs
