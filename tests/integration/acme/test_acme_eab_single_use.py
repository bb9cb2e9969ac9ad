"""One EAB key binds one account unless the directory's settings allow reuse (eab_reuse;
off by default, on for the demo so that every client can use bootstrap.json's key)."""

from __future__ import annotations

from gateway.core.methods import AcmeSettings
from tests.helpers.acmeharness import AcmeGateway

SETTINGS = "/api/v1/applications/demo/profiles/tls-server/acme"


async def register(acme_gateway: AcmeGateway) -> tuple[int, str | None]:
    client = await acme_gateway.acme()
    reply = await client.register(
        acme_gateway.bootstrap["acme_eab_kid"], acme_gateway.bootstrap["acme_eab_hmac_key"]
    )
    return reply.status, reply.problem


async def test_fail_second_account_with_a_used_key(acme_gateway: AcmeGateway) -> None:
    view = await acme_gateway.rest("PATCH", SETTINGS, {"eab_reuse": False}, status=200)
    assert view["eab_reuse"] is False
    assert (await register(acme_gateway))[0] == 201
    assert await register(acme_gateway) == (403, "unauthorized")


async def test_ok_same_key_registers_again_as_the_same_account(
    acme_gateway: AcmeGateway,
) -> None:
    await acme_gateway.rest("PATCH", SETTINGS, {"eab_reuse": False}, status=200)
    client = await acme_gateway.acme()
    kid, hmac_key = (
        acme_gateway.bootstrap["acme_eab_kid"],
        acme_gateway.bootstrap["acme_eab_hmac_key"],
    )
    assert (await client.register(kid, hmac_key)).status == 201
    # RFC 8555 §7.3.1: the same account key finds its account (200), it is not a new binding.
    assert (await client.register(kid, hmac_key)).status == 200


async def test_ok_reuse_allowed(acme_gateway: AcmeGateway) -> None:
    view = await acme_gateway.rest("PATCH", SETTINGS, {"eab_reuse": True}, status=200)
    assert view["eab_reuse"] is True
    assert (await register(acme_gateway))[0] == 201
    assert (await register(acme_gateway))[0] == 201


async def test_ok_rotated_key_binds_a_new_account(acme_gateway: AcmeGateway) -> None:
    await acme_gateway.rest("PATCH", SETTINGS, {"eab_reuse": False}, status=200)
    assert (await register(acme_gateway))[0] == 201
    fresh = await acme_gateway.rest("POST", SETTINGS + "/eab", {}, status=201)
    client = await acme_gateway.acme()
    reply = await client.register(fresh["eab_kid"], fresh["eab_hmac_key"])
    assert reply.status == 201, reply.body


def test_fail_default_is_single_use() -> None:
    assert AcmeSettings.from_dict({"enabled": True}).eab_reuse is False
