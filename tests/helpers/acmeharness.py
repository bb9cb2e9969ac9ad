"""Harness for in-process ACME tests: a gateway whose validators reach loopback through a
local DNS server (acme.resolvers, *.example.com → 127.0.0.1) and an http-01 responder on
acme.http01_port serving whatever the test puts in `responder.tokens`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.admin.services import Services
from gateway.appkeys import SERVICES
from gateway.config import Config
from tests.helpers.acmeclient import AcmeClient, Key, Reply, csr_der
from tests.helpers.dnsserver import DnsServer


@dataclass
class Responder:
    port: int
    tokens: dict[str, str] = field(default_factory=dict)


@dataclass
class AcmeGateway:
    client: TestClient
    config: Config
    bootstrap: dict[str, Any]
    responder: Responder
    dns: DnsServer

    @property
    def services(self) -> Services:
        return self.client.server.app[SERVICES]

    def path(self, url: str) -> str:
        return "/" + url.split("/", 3)[3]

    async def acme(self, *, legacy: bool = False, key: Key | None = None) -> AcmeClient:
        prefix = "legacy_" if legacy else ""
        client = AcmeClient(self.client, self.path(self.bootstrap[f"{prefix}acme_directory"]))
        if key is not None:
            client.key = key
        return await client.start()

    async def account(self, *, legacy: bool = False, key: Key | None = None) -> AcmeClient:
        client = await self.acme(legacy=legacy, key=key)
        prefix = "legacy_" if legacy else ""
        reply = await client.register(
            self.bootstrap[f"{prefix}acme_eab_kid"], self.bootstrap[f"{prefix}acme_eab_hmac_key"]
        )
        assert reply.status == 201, reply.body
        return client

    async def ready_order(self, client: AcmeClient, names: list[str]) -> Reply:
        """newOrder, answer every http-01 challenge, wait for `ready`."""
        order = await client.post(
            client.directory["newOrder"],
            {"identifiers": [_identifier(n) for n in names]},
        )
        assert order.status == 201, order.body
        for authz_url in order.body["authorizations"]:
            authz = await client.post(authz_url, None)
            chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
            self.responder.tokens[chall["token"]] = f"{chall['token']}.{client.key.thumbprint()}"
            reply = await client.post(chall["url"], {})
            assert reply.status == 200, reply.body
        return await poll(client, order.headers["Location"], {"ready", "invalid"})

    async def issue(self, client: AcmeClient, names: list[str]) -> tuple[Reply, Any]:
        order = await self.ready_order(client, names)
        assert order.body["status"] == "ready", order.body
        der, key = csr_der(names)
        from tests.helpers.acmeclient import b64

        final = await client.post(order.body["finalize"], {"csr": b64(der)})
        assert final.status == 200, final.body
        return await poll(client, order.headers["Location"], {"valid", "invalid"}), key


def _identifier(name: str) -> dict[str, str]:
    import ipaddress

    try:
        ipaddress.ip_address(name)
        return {"type": "ip", "value": name}
    except ValueError:
        return {"type": "dns", "value": name}


async def poll(client: AcmeClient, url: str, wanted: set[str], seconds: float = 20) -> Reply:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        reply = await client.post(url, None)
        status = reply.body.get("status")
        if status in wanted or asyncio.get_running_loop().time() > deadline:
            return reply
        await asyncio.sleep(0.1)
