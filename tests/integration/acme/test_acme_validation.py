"""Challenge validation: bounded retries (RFC 8555 §8.2), per-profile validation networks,
and per-target timeouts of the http-01, tls-alpn-01 and dns-01 validators."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.core.acme import ChallengeType, Identifier, IdentifierType
from protocols.acme import validators
from protocols.acme.server import ValidationSettings
from tests.helpers.acmeclient import AcmeClient
from tests.helpers.acmeharness import AcmeGateway, poll

SETTINGS = "/api/v1/applications/demo/profiles/tls-server/acme"
ERROR = "urn:ietf:params:acme:error:"


async def _order(client: AcmeClient, *values: str, kind: str = "dns") -> Any:
    reply = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": kind, "value": v} for v in values]},
    )
    return reply


class _Answers(dict[str, str]):
    """Responder tokens that answer wrong for the first `wrong` requests, counting them."""

    def __init__(self, token: str, value: str, wrong: int) -> None:
        super().__init__({token: value})
        self.hits = 0
        self.wrong = wrong

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self:
            return default
        self.hits += 1
        return "wrong" if self.hits <= self.wrong else self[key]


async def _http01(acme_gateway: AcmeGateway, client: AcmeClient, name: str, wrong: int) -> Any:
    order = await _order(client, name)
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    answers = _Answers(chall["token"], f"{chall['token']}.{client.key.thumbprint()}", wrong)
    acme_gateway.responder.tokens = answers
    assert (await client.post(chall["url"], {})).status == 200
    final = await poll(client, order.headers["Location"], {"ready", "invalid"}, seconds=30)
    return final, answers, order


async def test_ok_validation_retried_until_right(acme_gateway: AcmeGateway) -> None:
    """§8.2: a failed attempt is retried; the second attempt's right answer validates."""
    client = await acme_gateway.account()
    final, answers, _ = await _http01(acme_gateway, client, "retry.example.com", wrong=1)
    assert final.body["status"] == "ready", final.body
    assert answers.hits == 2


async def test_fail_validation_retries_are_bounded(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    final, answers, order = await _http01(acme_gateway, client, "bounded.example.com", wrong=99)
    assert final.body["status"] == "invalid", final.body
    attempts = ValidationSettings().attempts
    assert answers.hits == attempts
    await asyncio.sleep(1.5)  # no further attempt comes later
    assert answers.hits == attempts
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    assert chall["error"]["type"] == ERROR + "incorrectResponse"


async def test_fail_validation_networks_per_profile(acme_gateway: AcmeGateway) -> None:
    """A profile whose validators may reach only 10.0.0.0/8 does not connect to a name that
    resolves to 127.0.0.1; the legacy profile keeps its own (loopback) networks."""
    view = await acme_gateway.rest(
        "PATCH", SETTINGS, {"validation_networks": ["10.0.0.0/8"]}, status=200
    )
    assert view["validation_networks"] == ["10.0.0.0/8"]
    client = await acme_gateway.account()
    final, answers, order = await _http01(acme_gateway, client, "netpolicy.example.com", wrong=0)
    assert final.body["status"] == "invalid", final.body
    assert answers.hits == 0  # the validator never connected
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    assert chall["error"]["type"] == ERROR + "rejectedIdentifier", chall
    assert "outside" in chall["error"]["detail"], chall
    legacy = await acme_gateway.account(legacy=True)
    ready = await acme_gateway.ready_order(legacy, ["netpolicy-legacy.example.com"])
    assert ready.body["status"] == "ready", ready.body


@pytest.fixture
async def silent_tcp() -> AsyncIterator[int]:
    """A TCP listener that accepts and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()


@pytest.fixture
def silent_udp() -> Any:
    """A UDP socket that swallows DNS queries."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(ChallengeType.HTTP_01, id="fail/http-01"),
        pytest.param(ChallengeType.TLS_ALPN_01, id="fail/tls-alpn-01"),
    ],
)
async def test_fail_per_target_timeout(silent_tcp: int, kind: ChallengeType) -> None:
    """A target that accepts and never answers costs one timeout, then a connection error."""
    settings = ValidationSettings(http01_port=silent_tcp, tlsalpn01_port=silent_tcp, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(validators.ValidationFailed) as err:
        await validators.validate(
            kind, Identifier(IdentifierType.IP, "127.0.0.1"), "tok", "tok.x", settings,
            ["127.0.0.0/8"],
        )  # fmt: skip
    assert time.monotonic() - started < 2.5
    assert err.value.kind == "connection", err.value.detail


async def test_fail_dns01_resolver_timeout(silent_udp: str) -> None:
    settings = ValidationSettings(resolvers=(silent_udp,), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(validators.ValidationFailed) as err:
        await validators.validate(
            ChallengeType.DNS_01, Identifier(IdentifierType.DNS, "t.example.com"), "tok",
            "tok.x", settings, ["0.0.0.0/0"],
        )  # fmt: skip
    assert time.monotonic() - started < 2.5
    assert err.value.kind == "dns", err.value.detail
