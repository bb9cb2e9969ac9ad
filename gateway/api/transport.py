"""Whether a REST request arrived over TLS, for the bearer-token rule of
`server.tokens_over_http` (RFC 6750 §5.3: a bearer token MUST be sent over TLS; one
sent in clear is readable by anyone on the path and must not be honoured)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from gateway.config import ServerConfig
from gateway.core.errors import Forbidden


def _from_trusted_proxy(request: web.Request, proxies: Sequence[str]) -> bool:
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    for entry in proxies:
        try:
            if address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def over_tls(request: web.Request, server: ServerConfig) -> bool:
    """TLS to this process, or a trusted TLS-terminating proxy that does not say the
    client spoke plain HTTP to it (X-Forwarded-Proto, as EST trusts its client header)."""
    if request.transport is not None and request.transport.get_extra_info("ssl_object"):
        return True
    if _from_trusted_proxy(request, server.trusted_proxies):
        proto = request.headers.get("X-Forwarded-Proto", "https").split(",")[0]
        return proto.strip().lower() == "https"
    return False


def require_tls_for_tokens(request: web.Request, server: ServerConfig) -> None:
    """Refuse a token-authenticated request on plain HTTP when the setting says so."""
    if server.refuses_tokens_over_http() and not over_tls(request, server):
        raise Forbidden(
            "API tokens are accepted only over HTTPS; this token has been sent in clear, "
            "consider revoking it",
            code="tls_required",
        )
