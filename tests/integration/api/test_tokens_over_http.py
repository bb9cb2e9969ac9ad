"""Bearer tokens on plain HTTP (server.tokens_over_http; RFC 6750 §5.3): refused by
default when the gateway's public URL is https, allowed through a trusted TLS proxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.config import ConfigError, load_config
from tests.helpers.databases import Seed
from tests.integration.api.conftest import make_config


async def client_for(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed: Seed, **server: Any
) -> tuple[TestClient, dict[str, str]]:
    config = make_config(tmp_path / "home", database_url)
    seed(config)
    for key, value in server.items():
        setattr(config.server, key, value)
    client = await aiohttp_client(create_app(config, background=False))
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    auth = {"Authorization": f"Bearer {bootstrap['admin_token']}"}
    return client, auth


@pytest.mark.parametrize(
    ("server", "status"),
    [
        ({"public_base_url": "https://pki.example.com"}, 403),
        ({"public_base_url": "http://127.0.0.1:8080", "tokens_over_http": "refuse"}, 403),
        ({"public_base_url": "https://pki.example.com", "tokens_over_http": "allow"}, 200),
        ({"public_base_url": "http://127.0.0.1:8080"}, 200),
        ({"public_base_url": "https://pki.example.com", "trusted_proxies": ["127.0.0.1"]}, 200),
    ],
    ids=["fail/auto-https", "fail/refuse", "ok/allow", "ok/auto-http", "ok/trusted-proxy"],
)
async def test_token_on_plain_http(
    aiohttp_client: Any,
    tmp_path: Path,
    database_url: str,
    seed_gateway: Seed,
    server: dict[str, Any],
    status: int,
) -> None:
    client, auth = await client_for(aiohttp_client, tmp_path, database_url, seed_gateway, **server)
    resp = await client.get("/api/v1/me", headers=auth)
    body = await resp.json()
    assert resp.status == status, body
    if status == 403:
        assert body["error"]["code"] == "tls_required"
    # Public routes need no token and stay reachable.
    assert (await client.get("/healthz")).status == 200


async def test_fail_proxy_saying_plain_http(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed_gateway: Seed
) -> None:
    client, auth = await client_for(
        aiohttp_client,
        tmp_path,
        database_url,
        seed_gateway,
        public_base_url="https://pki.example.com",
        trusted_proxies=["127.0.0.1"],
    )
    resp = await client.get("/api/v1/me", headers={**auth, "X-Forwarded-Proto": "http"})
    assert resp.status == 403


def test_fail_unknown_setting_value() -> None:
    with pytest.raises(ConfigError, match="tokens_over_http"):
        load_config(None, environ={"CERTGATE_SERVER__TOKENS_OVER_HTTP": "sometimes"})
