"""An in-process gateway (aiohttp test client) on the parametrized database_url, seeded
from the run's bootstrapped template (tests/conftest.py, seed_gateway)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.appkeys import SERVICES
from gateway.config import Config, load_config
from gateway.services.graph import Services
from tests.helpers.databases import Seed


@dataclass
class Gateway:
    client: TestClient
    config: Config
    bootstrap: dict[str, Any]

    @property
    def services(self) -> Services:
        return self.client.server.app[SERVICES]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bootstrap['admin_token']}"}

    async def post(
        self, path: str, body: Any, *, token: str | None = None, status: int | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else self.auth
        resp = await self.client.post(path, json=body, headers=headers)
        data = await resp.json()
        if status is not None:
            assert resp.status == status, data
        return data

    async def get(self, path: str, *, status: int | None = 200, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else self.auth
        resp = await self.client.get(path, headers=headers)
        data = await resp.json()
        if status is not None:
            assert resp.status == status, data
        return data

    def issue_path(self, app: str = "demo", profile: str = "tls-server") -> str:
        return f"/api/v1/applications/{app}/profiles/{profile}/certificates"


def make_config(home: Path, database_url: str) -> Config:
    config = load_config(
        None,
        environ={
            "CERTGATE_HOME": str(home),
            "CERTGATE_DATABASE__URL": database_url,
            "CERTGATE_TLS__ENABLED": "false",
            "CERTGATE_SERVER__PUBLIC_BASE_URL": "http://127.0.0.1:8080",
        },
    )
    return config


@pytest.fixture
async def gateway(
    aiohttp_client: Any,
    tmp_path: Path,
    database_url: str,
    seed_gateway: Seed,
) -> Gateway:
    config = make_config(tmp_path / "home", database_url)
    seed_gateway(config)
    client = await aiohttp_client(create_app(config, background=False))
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    return Gateway(client, config, bootstrap)
