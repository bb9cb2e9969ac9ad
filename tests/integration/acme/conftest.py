"""Fixtures: an in-process gateway with ACME validation pointed at loopback (a local DNS
server as acme.resolvers, an http-01 responder on acme.http01_port, a tls-alpn-01
responder on acme.tlsalpn01_port)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import load_config
from tests.helpers.acmeharness import AcmeGateway, AlpnResponder, Responder
from tests.helpers.databases import Seed
from tests.helpers.dnsserver import DnsServer


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
async def responder() -> AsyncIterator[Responder]:
    holder = Responder(0)

    async def serve(request: web.Request) -> web.Response:
        value = holder.tokens.get(request.match_info["token"])
        return web.Response(text=value) if value else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    holder.port = int(runner.addresses[0][1])
    yield holder
    await runner.cleanup()


@pytest.fixture
async def alpn_responder() -> AsyncIterator[AlpnResponder]:
    responder = await AlpnResponder().start()
    yield responder
    await responder.stop()


def acme_environ(
    tmp_path: Path,
    database_url: str,
    responder: Responder,
    dns_server: DnsServer,
    alpn: AlpnResponder,
    base_url: str = "http://127.0.0.1:8080",
) -> dict[str, str]:
    return {
        "CERTGATE_HOME": str(tmp_path / "home"),
        "CERTGATE_DATABASE__URL": database_url,
        "CERTGATE_TLS__ENABLED": "false",
        "CERTGATE_SERVER__PUBLIC_BASE_URL": base_url,
        "CERTGATE_ACME__HTTP01_PORT": str(responder.port),
        "CERTGATE_ACME__TLSALPN01_PORT": str(alpn.port),
        "CERTGATE_ACME__RESOLVERS": dns_server.address,
    }


@pytest.fixture
async def acme_gateway(
    aiohttp_client: Any,
    tmp_path: Path,
    database_url: str,
    responder: Responder,
    dns_server: DnsServer,
    alpn_responder: AlpnResponder,
    seed_gateway: Seed,
) -> AcmeGateway:
    config = load_config(
        None,
        environ=acme_environ(tmp_path, database_url, responder, dns_server, alpn_responder),
    )
    seed_gateway(config)
    client = await aiohttp_client(create_app(config, background=False))
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    return AcmeGateway(client, config, bootstrap, responder, dns_server, alpn_responder)
