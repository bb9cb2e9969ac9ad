"""Expiry scans: every events.scan_interval_s, the process holding the `expiry-scan` lease
(store.repos.alerts.LeaseRepository) looks for certificates inside an expiration alert's
`alert_before` window and writes their notices and deliveries in one transaction.

Once per certificate x alert x threshold: the first scan that finds it inside the
window records `threshold:<alert_before>` (and today's day mark), then one reminder per
UTC day (`day:<date>`) until the certificate is renewed (a certificate names it in
renewed_from), revoked or expired, which takes it out of the scan's query. The notice's
primary key decides, so neither two processes nor a restart notify twice; the lease only
saves the other processes the work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from gateway.config import Config
from gateway.core.alerts import (
    Alert,
    AlertEvent,
    alert_matches,
    day_mark,
    deliveries_for,
    parse_alert_before,
    threshold_mark,
)
from gateway.core.model import new_id
from gateway.core.ports import Clock
from gateway.events.filters import regex_search
from gateway.events.outbox import certificate_facts
from store.db import Database

log = logging.getLogger("certgate.events")

LEASE = "expiry-scan"
# Certificates taken per alert per scan; the rest come in the next scan.
SCAN_BATCH = 1000


class ExpiryScanner:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: Config,
        *,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._interval = config.events.scan_interval_s
        self._on_recorded = on_recorded
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"

    async def scan(self, *, force: bool = False) -> int | None:
        """One scan: how many deliveries it wrote, None when another process holds the
        lease. `force` scans without the lease (tests, and the CLI one day)."""
        now = self._clock.now()
        if not force:
            # Held for most of an interval: the next scan anywhere is an interval away.
            ttl = timedelta(seconds=self._interval * 0.9)
            async with self._db.transaction() as tx:
                if not await tx.leases.acquire(LEASE, self.holder, now, ttl):
                    return None
        async with self._db.transaction(read_only=True) as tx:
            alerts = await tx.alerts.of_event(AlertEvent.EXPIRATION)
        written = 0
        for alert in alerts:
            try:
                written += await self._scan_alert(alert, now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry scan of alert %s failed", alert.id)
        if written:
            self._on_recorded()
        return written

    async def _scan_alert(self, alert: Alert, now: datetime) -> int:
        if alert.alert_before is None:
            return 0
        horizon = now + parse_alert_before(alert.alert_before)
        first = threshold_mark(alert.alert_before)
        today = day_mark(now.date())
        written = 0
        async with self._db.transaction() as tx:
            for certificate, profile, app in await tx.expiry.expiring(
                alert, now, horizon, SCAN_BATCH
            ):
                facts = certificate_facts(certificate, profile, app, now=now)
                if not alert_matches(alert, facts, regex_search):
                    continue
                crossed = await tx.expiry.add_notice(alert.id, certificate.id, first, now)
                reminded = await tx.expiry.add_notice(alert.id, certificate.id, today, now)
                if not (crossed or reminded):
                    continue  # notified today already
                if not crossed:
                    facts.extra["reminder"] = True
                made = deliveries_for(alert, AlertEvent.EXPIRATION, facts, now, new_id)
                await tx.deliveries.add_many(made)
                written += len(made)
        return written

    async def run_forever(self) -> None:
        """The background loop: a scan at start-up, then one per interval."""
        while True:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry scan failed")
            await asyncio.sleep(self._interval)
