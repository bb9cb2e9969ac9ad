"""Slow and stalled clients against a real listening gateway (gateway/listeners.py): a
request head cut off, a body cut off, and more connections than the limit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.listeners import BoundedTCPSite, ListenerLimits, make_runner
from tests.helpers.databases import Seed
from tests.integration.api.conftest import make_config

LIMITS = ListenerLimits(header_timeout_s=0.5, body_timeout_s=0.5, max_connections=3)
# Without the limits aiohttp keeps such connections for an hour; well past the timeouts
# above but short enough that a failure does not stall the suite.
PATIENCE_S = 5.0


TOKEN: dict[int, str] = {}


@pytest.fixture
async def port(tmp_path: Path, database_url: str, seed_gateway: Seed) -> AsyncIterator[int]:
    config = make_config(tmp_path / "home", database_url)
    seed_gateway(config)
    token = json.loads((config.home / "bootstrap.json").read_text())["admin_token"]
    app = create_app(config, background=False)
    runner: web.AppRunner = make_runner(app, LIMITS)
    await runner.setup()
    site = BoundedTCPSite(runner, "127.0.0.1", 0, LIMITS)
    await site.start()
    TOKEN[site.port] = token
    try:
        yield site.port
    finally:
        await runner.cleanup()


async def closed_after(reader: asyncio.StreamReader) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent before."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(), PATIENCE_S)
    return time.monotonic() - start, data


async def test_fail_partial_head_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    elapsed, data = await closed_after(reader)
    assert elapsed < 2.0
    assert data == b""
    writer.close()


async def test_fail_head_trickled_byte_by_byte_is_closed(port: int) -> None:
    # Data arriving does not push the deadline back (slowloris).
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
            if reader.at_eof() or writer.is_closing():
                raise ConnectionError("closed")
            if time.monotonic() - start > PATIENCE_S:
                break
        await asyncio.wait_for(reader.readexactly(1), PATIENCE_S)
    assert time.monotonic() - start < 2.5
    writer.close()


@pytest.mark.parametrize("authorized", [True, False], ids=["read-by-handler", "unread-401"])
async def test_fail_cut_off_body_is_closed(port: int, authorized: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {TOKEN[port]}\r\n".encode() if authorized else b""
    writer.write(
        b"POST /api/v1/applications/demo/profiles/tls-server/certificates HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
        + auth
        + b'\r\n{"csr": "x'
    )
    await writer.drain()
    elapsed, _ = await closed_after(reader)
    assert elapsed < 2.0
    writer.close()


async def test_ok_complete_request_is_answered(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), PATIENCE_S)
    assert data.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_fail_connections_past_the_limit_get_503(port: int) -> None:
    held = []
    for _ in range(LIMITS.max_connections):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # stalls, holding its connection
        await writer.drain()
        held.append(writer)
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = await asyncio.wait_for(reader.read(), PATIENCE_S)
    assert data.startswith(b"HTTP/1.1 503")
    assert b"Retry-After: 1" in data
    writer.close()
    for stalled in held:
        stalled.close()
    # Once the stalled ones are gone (closed by their head timeout too), it serves again.
    await asyncio.sleep(LIMITS.header_timeout_s + 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.read(), PATIENCE_S)).startswith(b"HTTP/1.1 200")
    writer.close()
