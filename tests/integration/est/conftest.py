"""An in-process gateway with EST enabled on demo/tls-server.

The test client talks plain HTTP from 127.0.0.1, which `est_gw` lists as a trusted
TLS-terminating proxy, so client certificates travel in X-SSL-Client-Cert; `plain_gw`
trusts no proxy (the plain-HTTP rules). Real TLS is covered by test_est_tls.py and e2e.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from est_helpers import EstGateway

from gateway.app import create_app
from gateway.config import load_config
from tests.helpers.databases import Prepared, Seed


async def _start(
    aiohttp_client: Any,
    seed: Seed,
    home: Path,
    database_url: str,
    proxies: str,
    enable: bool = True,
    **extra: str,
) -> EstGateway:
    environ = extra | {
        "CERTGATE_HOME": str(home),
        "CERTGATE_DATABASE__URL": database_url,
        "CERTGATE_TLS__ENABLED": "false",
        "CERTGATE_SERVER__PUBLIC_BASE_URL": "http://127.0.0.1:8080",
    }
    config = load_config(None, environ=environ)
    config.server.trusted_proxies = [p for p in proxies.split(",") if p]
    state = seed(config, EST_ENABLED if enable else None)
    client = await aiohttp_client(create_app(config, background=False))
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    gw = EstGateway(client, bootstrap)
    if enable and state is None:
        await gw.enable()
    elif enable:
        gw.password = state["password"]
    return gw


async def _enable(client: TestClient, bootstrap: dict[str, Any]) -> dict[str, Any]:
    gw = EstGateway(client, bootstrap)
    await gw.enable()
    return {"password": gw.password}


# EstGateway.enable() on a first-started gateway, made once per run (tests/conftest.py).
EST_ENABLED = Prepared("est-enabled", _enable)


@pytest.fixture
async def est_gw(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed_gateway: Seed
) -> EstGateway:
    return await _start(
        aiohttp_client, seed_gateway, tmp_path / "home", database_url, "127.0.0.1/32,::1"
    )


@pytest.fixture
async def plain_gw(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed_gateway: Seed
) -> EstGateway:
    return await _start(aiohttp_client, seed_gateway, tmp_path / "home", database_url, "")


@pytest.fixture
async def header_gw(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed_gateway: Seed
) -> EstGateway:
    """Trusts 127.0.0.1 as a proxy that sends the client certificate in X-Client-Cert."""
    return await _start(
        aiohttp_client,
        seed_gateway,
        tmp_path / "home",
        database_url,
        "127.0.0.1/32,::1",
        CERTGATE_SERVER__CLIENT_CERT_HEADER="X-Client-Cert",
    )


@pytest.fixture
async def fresh_gw(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed_gateway: Seed
) -> EstGateway:
    """As first started: EST settings and passphrases exactly as bootstrap left them."""
    return await _start(
        aiohttp_client,
        seed_gateway,
        tmp_path / "home",
        database_url,
        "127.0.0.1/32,::1",
        enable=False,
    )
