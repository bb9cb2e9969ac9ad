"""Delivery workers: every gateway process runs one Dispatcher that claims due deliveries
from the outbox (store.repos.alerts.DeliveryRepository.claim), sends each on its own task
and records the outcomes (one transaction for all those that ended meanwhile).

* At most `concurrency` sends are in flight; a new claim is made as soon as one ends, so
  a receiver that hangs (until send_timeout_s) or fails holds one slot, never the others.
* A claim holds a delivery for CLAIM_LEASE; a process that dies mid-send leaves it
  `sending`, and any process takes it again once the claim lapses (at least once; the
  stable delivery id lets receivers drop the rare duplicate). In normal operation the
  claim outlives the attempt, so two processes never send one delivery.
* A failed attempt is retried after retry_base_s · 2^(attempts-1), with jitter, until
  max_attempts; then, or at once for a refused target, the delivery is `failed`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from gateway.config import Config
from gateway.core.alerts import (
    WEBHOOK_SECRET_PURPOSE,
    Alert,
    Delivery,
    DeliveryStatus,
    retry_delay,
    secret_owner,
)
from gateway.core.ports import Clock
from gateway.events import channels
from gateway.events.outbound_http import DeliveryError, new_session
from gateway.pki.kms import Kms, secret_aad
from store.db import Database

log = logging.getLogger("certgate.events")

POLL_S = 1.0
# Outcomes recorded in one transaction, at most.
RECORD_BATCH = 200
# How long an alert and a decrypted webhook secret are reused between deliveries.
CACHE_S = 2.0
_rng = random.SystemRandom()


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    status: DeliveryStatus
    at: datetime
    next_attempt_at: datetime | None = None
    error: str | None = None


class Dispatcher:
    def __init__(
        self, db: Database, kms: Kms, clock: Clock, config: Config, *, concurrency: int = 32
    ) -> None:
        self._db = db
        self._kms = kms
        self._clock = clock
        self._config = config
        self._concurrency = concurrency
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        events = config.events
        # Longer than any attempt can take: an HTTP attempt is bounded by send_timeout_s,
        # an SMTP exchange by twice its timeout (channels.email), plus a margin for the
        # database round trips around it.
        self.claim_lease = timedelta(seconds=3 * events.send_timeout_s + 10)
        self.sent = 0
        self._alerts: dict[uuid.UUID, tuple[float, Alert | None]] = {}
        self._secrets: dict[uuid.UUID, tuple[float, str]] = {}
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()

    def wake(self) -> None:
        """Something was committed to the outbox: look now rather than at the next poll."""
        self._wake.set()

    async def _secret(self, project_id: uuid.UUID, channel_id: uuid.UUID) -> str:
        now = time.monotonic()
        cached = self._secrets.get(channel_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._db.transaction(read_only=True) as tx:
            secret = await tx.secrets.get_by_owner(secret_owner(channel_id), WEBHOOK_SECRET_PURPOSE)
        if secret is None:
            raise LookupError("the webhook channel's secret is gone")
        plain = await self._kms.decrypt(secret.project_id, secret.ciphertext, secret_aad(secret.id))
        self._secrets[channel_id] = (now + CACHE_S, plain.decode())
        return plain.decode()

    async def _alert(self, alert_id: uuid.UUID) -> Alert | None:
        """The alert, read at most once per CACHE_S: a burst of deliveries of one alert
        reads it once. An edit is seen within CACHE_S; a channel replaced meanwhile has lost
        its secret, and that attempt is retried (channels.webhook), never signed wrongly."""
        now = time.monotonic()
        cached = self._alerts.get(alert_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._db.transaction(read_only=True) as tx:
            alert = await tx.alerts.get(alert_id)
        if len(self._alerts) > 1000:
            self._alerts.clear()
        self._alerts[alert_id] = (now + CACHE_S, alert)
        return alert

    async def claim(self, limit: int) -> list[Delivery]:
        async with self._db.transaction(read_only=True) as tx:
            if not await tx.deliveries.any_due(self._clock.now()):
                return []
        async with self._db.transaction() as tx:
            return await tx.deliveries.claim(self._clock.now(), limit, self.claim_lease)

    async def attempt(self, delivery: Delivery, http: aiohttp.ClientSession) -> Outcome:
        """Send one claimed delivery; what to record of it (see record)."""
        events = self._config.events
        alert = await self._alert(delivery.alert_id)
        error: DeliveryError | None = None
        if alert is None or delivery.channel_index >= len(alert.channels):
            error = DeliveryError("the alert or its channel was removed", permanent=True)
        else:
            ctx = channels.ChannelContext(
                http=http,
                smtp=self._config.smtp,
                allow_private=events.allow_private_targets,
                timeout_s=events.send_timeout_s,
                webhook_secret=self._secret,
                project_id=alert.project_id,
            )
            try:
                outcome = await channels.send(ctx, alert.channels[delivery.channel_index], delivery)
                log.info("delivery %s (%s): %s", delivery.id, delivery.event_type, outcome)
            except DeliveryError as err:
                error = err
            except Exception as err:  # a bug in a channel must not kill the worker
                log.exception("delivery %s: unexpected error", delivery.id)
                error = DeliveryError(f"internal error: {type(err).__name__}")
        now = self._clock.now()
        if error is None:
            return Outcome(delivery, DeliveryStatus.SUCCEEDED, now)
        if error.permanent or delivery.attempts >= events.max_attempts:
            log.warning("delivery %s failed for good: %s", delivery.id, error.message)
            return Outcome(delivery, DeliveryStatus.FAILED, now, error=error.message)
        delay = retry_delay(events.retry_base_s, delivery.attempts, _rng.uniform(0.5, 1.5))
        return Outcome(
            delivery,
            DeliveryStatus.PENDING,
            now,
            next_attempt_at=now + timedelta(seconds=delay),
            error=error.message,
        )

    async def record(self, outcomes: list[Outcome]) -> None:
        """Record attempts' outcomes, many in one transaction: on PostgreSQL a transaction
        per delivery, not the send, bounded the throughput."""
        async with self._db.transaction() as tx:
            for o in outcomes:
                await tx.deliveries.finish(
                    o.delivery, o.status, o.at, next_attempt_at=o.next_attempt_at, error=o.error
                )
        self.sent += sum(o.status is DeliveryStatus.SUCCEEDED for o in outcomes)

    async def _recorder(self) -> None:
        while True:
            batch = [await self._outcomes.get()]
            while not self._outcomes.empty() and len(batch) < RECORD_BATCH:
                batch.append(self._outcomes.get_nowait())
            try:
                await self.record(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Their claims lapse and other attempts follow; nothing is lost.
                log.exception("recording %d delivery outcomes failed", len(batch))

    async def run_forever(self) -> None:
        """The background loop (gateway.app starts it in every process)."""
        async with new_session(self._config.events.allow_private_targets) as session:
            recorder = asyncio.create_task(self._recorder())
            try:
                while True:
                    # Cleared before the claim: a wake during it is not lost.
                    self._wake.clear()
                    claimed: list[Delivery] = []
                    free = self._concurrency - len(self._inflight)
                    # Claim in bunches (a quarter of the slots), not one row per freed
                    # slot: each claim is two transactions.
                    if free > 0 and (free >= self._concurrency // 4 or not self._inflight):
                        try:
                            claimed = await self.claim(free)
                        except asyncio.CancelledError:
                            raise
                        except Exception:
                            log.exception("claiming deliveries failed")
                    for delivery in claimed:
                        task = asyncio.create_task(self._guarded(delivery, session))
                        self._inflight.add(task)
                        task.add_done_callback(self._done)
                    if claimed and len(claimed) == free:
                        continue  # more may be due: claim again as slots free up
                    try:
                        await asyncio.wait_for(self._wake.wait(), POLL_S)
                    except TimeoutError:
                        pass
            finally:
                for task in self._inflight:
                    task.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)
                recorder.cancel()
                await asyncio.gather(recorder, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # a slot is free

    async def _guarded(self, delivery: Delivery, http: aiohttp.ClientSession) -> None:
        try:
            self._outcomes.put_nowait(await self.attempt(delivery, http))
        except asyncio.CancelledError:
            raise
        except Exception:
            # The claim lapses and another attempt follows; nothing is lost.
            log.exception("attempting delivery %s failed", delivery.id)
