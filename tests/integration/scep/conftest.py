"""An in-process gateway with SCEP enabled on the demo attachment (static challenge set)
and on the legacy profile, plus a tiny SCEP client bound to it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509

from gateway.app import create_app
from gateway.appkeys import SERVICES
from gateway.services.graph import Services
from tests.helpers import scepclient as sc
from tests.helpers.databases import Prepared, Seed
from tests.integration.api.conftest import make_config

STATIC = "static-challenge-1"
SCEP_PATH = "/applications/demo/profiles/tls-server/scep"
SETTINGS = "/api/v1/applications/demo/profiles/tls-server/scep"


@dataclass
class Scep:
    client: TestClient
    bootstrap: dict[str, Any]
    path: str = SCEP_PATH

    @property
    def services(self) -> Services:
        return self.client.server.app[SERVICES]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bootstrap['admin_token']}"}

    async def api(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = await self.client.request(method, path, json=body, headers=self.auth)
        data = await resp.json()
        assert resp.status == status, data
        return data

    async def ca_certs(self, path: str | None = None) -> list[x509.Certificate]:
        resp = await self.client.get((path or self.path) + "?operation=GetCACert")
        assert resp.status == 200
        assert resp.content_type == "application/x-x509-ca-ra-cert"
        return sc.ca_certs(await resp.read())

    async def ra(self, path: str | None = None) -> x509.Certificate:
        return (await self.ca_certs(path))[0]

    async def send(self, der: bytes, *, get: bool = False, path: str | None = None) -> bytes:
        url = (path or self.path) + "/pkiclient.exe"
        if get:
            resp = await self.client.get(
                url, params={"operation": "PKIOperation", "message": sc.b64(der)}
            )
        else:
            resp = await self.client.post(
                url + "?operation=PKIOperation",
                data=der,
                headers={"Content-Type": "application/x-pki-message"},
            )
        body = await resp.read()
        assert resp.status == 200, body
        assert resp.content_type == "application/x-pki-message"
        return body

    async def enroll(
        self,
        requester: sc.Requester,
        csr: x509.CertificateSigningRequest,
        *,
        message_type: int = 19,
        path: str | None = None,
        get: bool = False,
        **kwargs: Any,
    ) -> sc.Reply:
        ra = await self.ra(path)
        der = sc.pki_message(requester, ra, message_type, sc.csr_der(csr), **kwargs)
        return sc.read_reply(await self.send(der, get=get, path=path), requester)


async def _enable(client: TestClient, bootstrap: dict[str, Any]) -> dict[str, Any]:
    s = Scep(client, bootstrap)
    await s.api("PATCH", SETTINGS, {"enabled": True})
    await s.api("POST", SETTINGS + "/challenge", {"challenge": STATIC}, status=201)
    return {}


# SCEP on with the static challenge, made once per run on a first-started gateway.
SCEP_ENABLED = Prepared("scep-enabled", _enable)


@pytest.fixture
async def scep(
    aiohttp_client: Any,
    tmp_path: Path,
    database_url: str,
    seed_gateway: Seed,
) -> Scep:
    config = make_config(tmp_path / "home", database_url)
    state = seed_gateway(config, SCEP_ENABLED)
    client = await aiohttp_client(create_app(config, background=False))
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    s = Scep(client, bootstrap)
    if state is None:
        await _enable(client, bootstrap)
    return s
