"""Ending validations that a crashed process left behind.

A challenge response (RFC 8555 §7.5.1) moves the challenge to `processing` and starts its
validation as a task of the process that received it. If that process dies, nothing else
would ever finish the challenge: the client polls a `processing` challenge and a `pending`
authorization until the order expires. Every process therefore sweeps, now and then, the
challenges that have been `processing` for longer than any validation can take
(`gateway.core.acme.STUCK_VALIDATION`) and ends them as `invalid` with a serverInternal
error. RFC 8555 §7.1.6 has no way back to `pending`, and a re-run could crash the next
process the same way; the client's next order gets fresh challenges.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from gateway.core import acme as rules
from gateway.core.acme import STUCK_VALIDATION, AuthzStatus, ChallengeStatus
from gateway.core.acme import Problem as StoredProblem
from protocols.acme.authorizations import settle_order
from protocols.acme.server import AcmeServer

log = logging.getLogger("certgate.acme.sweeper")

SWEEP_INTERVAL = 60.0  # seconds between sweeps; each process sweeps, the CAS picks one
SWEEP_BATCH = 100
INTERRUPTED = "validation was interrupted before it finished (server restart); order again"


async def sweep_stuck_validations(server: AcmeServer, bound: timedelta = STUCK_VALIDATION) -> int:
    """End every challenge stuck in `processing` for `bound` or longer; how many were.
    Each is moved by compare-and-set, so concurrent sweepers (or a validator that finishes
    at the last moment) never both write a verdict."""
    deps = server.deps
    now = server.now()
    async with deps.db.transaction(read_only=True) as uow:
        stuck = await uow.acme.stuck_challenges(now - bound, SWEEP_BATCH)
    ended = 0
    for challenge in stuck:
        if not rules.challenge_stuck(challenge, now, bound):
            continue
        async with deps.db.transaction() as uow:
            authz = await uow.acme.get_authorization(challenge.authorization_id)
            if authz is None:
                continue
            moved = await uow.acme.set_challenge(
                challenge.id,
                ChallengeStatus.INVALID,
                [ChallengeStatus.PROCESSING],
                error=StoredProblem("serverInternal", INTERRUPTED, authz.identifier),
            )
            if not moved:
                continue
            # §7.1.6: an invalid challenge makes its authorization (and order) invalid.
            await uow.acme.set_authorization(authz.id, AuthzStatus.INVALID, [AuthzStatus.PENDING])
            await settle_order(uow, authz.order_id, now)
        ended += 1
        log.warning(
            "ended challenge %s (%s for %s): %s",
            challenge.id,
            challenge.type.value,
            authz.identifier.value,
            INTERRUPTED,
        )
    return ended


async def purge_used_nonces(server: AcmeServer) -> int:
    """Forget used nonces past their lifetime (their timestamp rejects them now: see
    protocols.acme.nonces); how many were forgotten."""
    async with server.deps.db.transaction() as uow:
        return await uow.acme.purge_nonces(server.now())


async def sweep_forever(server: AcmeServer, interval: float = SWEEP_INTERVAL) -> None:
    """The background loop (started by the composition root's cleanup_ctx): a sweep at
    start-up, where a restart after a crash finds what the crash left, then one per
    interval. Used nonces past their lifetime go at the same pace."""
    while True:
        try:
            await sweep_stuck_validations(server)
            await purge_used_nonces(server)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweeping stuck ACME validations or used nonces failed")
        await asyncio.sleep(interval)
