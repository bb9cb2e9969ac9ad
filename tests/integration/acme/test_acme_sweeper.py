"""Validations orphaned by a crashed process (protocols.acme.sweeper): a challenge left
`processing` past STUCK_VALIDATION is ended as invalid, with its authorization and order
(RFC 8555 §7.1.6); a running validation is left alone; a late verdict changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from gateway.core.acme import STUCK_VALIDATION, ChallengeStatus
from protocols.acme import authorizations
from protocols.acme.server import AcmeDeps, AcmeServer
from protocols.acme.settings import ApprovalOutcomes, Endpoints
from protocols.acme.sweeper import purge_used_nonces, sweep_forever, sweep_stuck_validations
from tests.helpers.acmeclient import AcmeClient
from tests.helpers.acmeharness import AcmeGateway


def _server(gateway: AcmeGateway) -> AcmeServer:
    """What another gateway process on the same database would run."""
    services = gateway.services
    server = AcmeServer()
    server.bind(
        AcmeDeps(
            db=services.db,
            endpoints=Endpoints(services),
            enrollment=services.enrollment,
            pending=ApprovalOutcomes(services),
            clock=services.clock,
            base_url=gateway.config.base_url,
            https_base_url=gateway.config.https_base_url,
            public_base_url_set=True,
        )
    )
    return server


async def _order(client: AcmeClient, name: str) -> tuple[str, str, uuid.UUID]:
    """(order URL, authorization URL, http-01 challenge id) of a new order."""
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
    )
    assert order.status == 201, order.body
    authz_url = order.body["authorizations"][0]
    authz = await client.post(authz_url, None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    return order.headers["Location"], authz_url, uuid.UUID(chall["url"].rsplit("/", 1)[-1])


async def _crash_mid_validation(gateway: AcmeGateway, challenge_id: uuid.UUID, ago: Any) -> None:
    """The state a process leaves when it dies after §7.5.1 accepted the response."""
    started = gateway.services.clock.now() - ago
    async with gateway.services.db.transaction() as tx:
        moved = await tx.acme.set_challenge(
            challenge_id, ChallengeStatus.PROCESSING, [ChallengeStatus.PENDING], started_at=started
        )
    assert moved


async def test_ok_stuck_challenge_ended_running_one_kept(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    stuck_order, stuck_authz, stuck_id = await _order(client, "stuck.example.com")
    busy_order, busy_authz, busy_id = await _order(client, "busy.example.com")
    await _crash_mid_validation(acme_gateway, stuck_id, STUCK_VALIDATION + timedelta(seconds=1))
    await _crash_mid_validation(acme_gateway, busy_id, timedelta(seconds=30))

    server = _server(acme_gateway)
    assert await sweep_stuck_validations(server) == 1
    assert await sweep_stuck_validations(server) == 0  # nothing left; idempotent

    authz = await client.post(stuck_authz, None)
    assert authz.body["status"] == "invalid", authz.body
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    assert chall["status"] == "invalid"
    assert chall["error"]["type"] == "urn:ietf:params:acme:error:serverInternal"
    assert "interrupted" in chall["error"]["detail"]
    assert (await client.post(stuck_order, None)).body["status"] == "invalid"

    busy = await client.post(busy_authz, None)
    assert busy.body["status"] == "pending"
    assert next(c for c in busy.body["challenges"] if c["type"] == "http-01")["status"] == (
        "processing"
    )
    assert (await client.post(busy_order, None)).body["status"] == "pending"

    # A validator that was only slow, not dead, reports success after the sweep: the
    # compare-and-set refuses it, so the authorization does not flip back to valid.
    async with acme_gateway.services.db.transaction(read_only=True) as tx:
        found = await tx.acme.get_authorization(uuid.UUID(stuck_authz.rsplit("/", 1)[-1]))
    assert found is not None
    late = next(c for c in found.challenges if c.id == stuck_id)
    await authorizations.record_validation(server, found, late, None)
    assert (await client.post(stuck_authz, None)).body["status"] == "invalid"
    assert (await client.post(stuck_order, None)).body["status"] == "invalid"


async def test_ok_background_loop_sweeps(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    order_url, _authz_url, challenge_id = await _order(client, "loop.example.com")
    await _crash_mid_validation(acme_gateway, challenge_id, timedelta(hours=1))
    task = asyncio.create_task(sweep_forever(_server(acme_gateway), interval=0.05))
    try:
        for _ in range(100):
            if (await client.post(order_url, None)).body["status"] == "invalid":
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert (await client.post(order_url, None)).body["status"] == "invalid"


async def test_ok_used_nonces_forgotten_after_their_lifetime(acme_gateway: AcmeGateway) -> None:
    """A used nonce is remembered while its timestamp would still let it through (RFC 8555
    §6.5: never accepted twice), and swept after that."""
    server = _server(acme_gateway)
    now = server.now()
    async with acme_gateway.services.db.transaction() as tx:
        assert await tx.acme.use_nonce("old", now - timedelta(seconds=1))
        assert await tx.acme.use_nonce("live", now + timedelta(minutes=5))
        assert not await tx.acme.use_nonce("live", now + timedelta(minutes=5))
    # Not counted: the app's own sweeper (sweep_forever) may have purged it first.
    await purge_used_nonces(server)
    async with acme_gateway.services.db.transaction() as tx:
        assert await tx.acme.use_nonce("old", now + timedelta(minutes=5))  # forgotten
        assert not await tx.acme.use_nonce("live", now + timedelta(minutes=5))  # still used
