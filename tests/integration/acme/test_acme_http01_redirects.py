"""http-01 follows redirects (RFC 8555 §8.3 SHOULD), each hop held to the first one's
rules: http(s) on the configured ports, an address within the validation networks, and a
bounded number of hops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gateway.core.acme import ChallengeType, Identifier, IdentifierType
from protocols.acme import validators
from protocols.acme.server import ValidationSettings

TOKEN = "tok"
KEY_AUTH = "tok.thumb"
LOOPBACK = ["127.0.0.0/8"]


@dataclass
class Site:
    port: int
    redirects: dict[str, str] = field(default_factory=dict)  # path → Location
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site(0)

    async def serve(request: web.Request) -> web.StreamResponse:
        state.hits.append(f"{request.host} {request.path}")
        location = state.redirects.get(request.path)
        if location is not None:
            raise web.HTTPFound(location.replace("PORT", str(state.port)))
        if request.path == "/final":
            return web.Response(text=KEY_AUTH + "\n")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    state.port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state
    await runner.cleanup()


async def _validate(site: Site, networks: list[str] = LOOPBACK) -> None:
    settings = ValidationSettings(http01_port=site.port, timeout=2.0)
    await validators.validate(
        ChallengeType.HTTP_01,
        Identifier(IdentifierType.IP, "127.0.0.1"),
        TOKEN,
        KEY_AUTH,
        settings,
        networks,
    )


CHALLENGE = f"/.well-known/acme-challenge/{TOKEN}"


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("/final", id="ok/relative"),
        pytest.param("http://127.0.0.1:PORT/final", id="ok/absolute-same-port"),
        pytest.param("http://127.0.0.1/final", id="ok/absolute-default-port"),
    ],
)
async def test_ok_redirect_followed(site: Site, location: str) -> None:
    site.redirects[CHALLENGE] = location
    await _validate(site)
    assert [h.split(" ")[1] for h in site.hits] == [CHALLENGE, "/final"]


async def test_ok_redirect_chain(site: Site) -> None:
    site.redirects.update({CHALLENGE: "/a", "/a": "/b", "/b": "/final"})
    await _validate(site)
    assert len(site.hits) == 4


async def test_fail_redirect_loop_is_bounded(site: Site) -> None:
    site.redirects.update({CHALLENGE: "/a", "/a": CHALLENGE})
    with pytest.raises(validators.ValidationFailed) as err:
        await _validate(site)
    assert err.value.kind == "connection"
    assert "redirects" in err.value.detail
    assert len(site.hits) == validators.MAX_REDIRECTS + 1


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        pytest.param("http://127.0.0.1:1/final", "connection", id="fail/other-port"),
        pytest.param("ftp://127.0.0.1/final", "connection", id="fail/other-scheme"),
        pytest.param("http://10.1.2.3/final", "rejectedIdentifier", id="fail/outside-networks"),
    ],
)
async def test_fail_redirect_target_refused(site: Site, location: str, kind: str) -> None:
    site.redirects[CHALLENGE] = location
    with pytest.raises(validators.ValidationFailed) as err:
        await _validate(site)
    assert err.value.kind == kind, err.value.detail
    assert len(site.hits) == 1  # the refused target was never fetched


async def test_fail_redirect_to_wrong_content(site: Site) -> None:
    site.redirects[CHALLENGE] = "/missing"
    with pytest.raises(validators.ValidationFailed) as err:
        await _validate(site)
    assert err.value.kind == "unauthorized"
    assert "/missing" in err.value.detail and "404" in err.value.detail
