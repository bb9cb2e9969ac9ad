"""An in-process gateway whose alert workers are driven by the test (background=False, so
nothing runs on its own), a real webhook receiver and a real SMTP server on loopback
(tests/helpers/receivers.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.config import load_config
from tests.helpers.databases import Seed
from tests.helpers.receivers import SmtpServer, WebhookReceiver
from tests.integration.api.conftest import Gateway, gateway  # noqa: F401 (the default-settings gateway)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = await WebhookReceiver().start()
    yield server
    await server.stop()


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
async def alerts_gateway(
    aiohttp_client: Any,
    tmp_path: Path,
    database_url: str,
    seed_gateway: Seed,
    smtp_server: SmtpServer,
) -> Gateway:
    environ = {
        "CERTGATE_HOME": str(tmp_path / "home"),
        "CERTGATE_DATABASE__URL": database_url,
        "CERTGATE_TLS__ENABLED": "false",
        "CERTGATE_SERVER__PUBLIC_BASE_URL": "http://127.0.0.1:8080",
        "CERTGATE_EVENTS__ALLOW_PRIVATE_TARGETS": "true",
        "CERTGATE_EVENTS__RETRY_BASE_S": "0.05",
        "CERTGATE_EVENTS__MAX_ATTEMPTS": "3",
        "CERTGATE_EVENTS__SEND_TIMEOUT_S": "1",
        **smtp_server.environ(),
    }
    config = load_config(None, environ=environ)
    seed_gateway(config)
    client = await aiohttp_client(create_app(config, background=False))
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    return Gateway(client, config, bootstrap)
