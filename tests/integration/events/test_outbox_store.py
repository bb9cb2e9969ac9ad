"""The outbox's store: claims, outcomes, expiry notices and leases, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from gateway.core.alerts import (
    Alert,
    AlertEvent,
    CertificateFacts,
    Channel,
    ChannelType,
    DeliveryStatus,
    deliveries_for,
)
from gateway.core.model import new_id
from store.db import Database
from tests.integration.store.store_factories import NOW, World, add_world

LEASE = timedelta(seconds=60)


def _alert(w: World, channels: int = 2, **kw: object) -> Alert:
    values: dict[str, object] = {
        "id": new_id(),
        "project_id": w.project.id,
        "application_id": w.app.id,
        "name": "ops",
        "event": AlertEvent.ISSUANCE,
        "alert_before": None,
        "filters": (),
        "channels": tuple(
            Channel(ChannelType.WEBHOOK, uuid.uuid4(), url="https://hooks.example.com/x")
            for _ in range(channels)
        ),
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Alert(**(values | kw))  # type: ignore[arg-type]


def _facts(w: World) -> CertificateFacts:
    return CertificateFacts(
        id=new_id(),
        serial="01",
        common_name="www.example.com",
        sans=("dns:www.example.com",),
        not_after=NOW + timedelta(days=10),
        profile=w.profile.slug,
        application=w.app.slug,
        project_id=w.project.id,
    )


async def _seed(database: Database, count: int = 2) -> tuple[World, Alert]:
    async with database.transaction() as tx:
        w = await add_world(tx)
        alert = _alert(w, channels=count)
        await tx.alerts.add(alert)
        await tx.deliveries.add_many(
            deliveries_for(alert, AlertEvent.ISSUANCE, _facts(w), NOW, new_id)
        )
    return w, alert


async def test_alert_round_trip_and_scope(database: Database) -> None:
    w, alert = await _seed(database)
    async with database.transaction(read_only=True) as tx:
        assert await tx.alerts.get(alert.id) == alert
        assert await tx.alerts.list_for(w.project.id, w.app.id) == [alert]
        assert await tx.alerts.list_for(w.project.id, None) == []
        assert await tx.alerts.listening(AlertEvent.ISSUANCE, w.project.id, w.app.id) == [alert]
        assert await tx.alerts.listening(AlertEvent.REVOCATION, w.project.id, w.app.id) == []
    async with database.transaction() as tx:
        assert await tx.alerts.delete(alert.id)
    async with database.transaction(read_only=True) as tx:
        assert await tx.alerts.get(alert.id) is None
        assert (await tx.deliveries.list_for_alert(alert.id, 10, 0)).total == 0


async def test_claim_takes_due_rows_once_and_counts_the_attempt(database: Database) -> None:
    _, alert = await _seed(database, count=3)
    async with database.transaction() as tx:
        first = await tx.deliveries.claim(NOW, 2, LEASE)
    async with database.transaction() as tx:
        second = await tx.deliveries.claim(NOW, 10, LEASE)
    async with database.transaction() as tx:
        none_left = await tx.deliveries.claim(NOW, 10, LEASE)
    assert len(first) == 2 and len(second) == 1 and none_left == []
    assert {d.id for d in first}.isdisjoint({d.id for d in second})
    assert all(d.status is DeliveryStatus.SENDING and d.attempts == 1 for d in first + second)
    # A claim that lapsed (its process died mid-send) is taken again, attempt counted.
    async with database.transaction() as tx:
        again = await tx.deliveries.claim(NOW + LEASE, 10, LEASE)
    assert len(again) == 3 and all(d.attempts == 2 for d in again)
    # The stale claim cannot record its outcome over the newer one.
    async with database.transaction() as tx:
        assert not await tx.deliveries.finish(first[0], DeliveryStatus.SUCCEEDED, NOW)
        newer = next(d for d in again if d.id == first[0].id)
        assert await tx.deliveries.finish(newer, DeliveryStatus.SUCCEEDED, NOW)
    async with database.transaction(read_only=True) as tx:
        page = await tx.deliveries.list_for_alert(alert.id, 10, 0)
    assert page.total == 3
    assert sorted(d.status.value for d in page.items) == ["sending", "sending", "succeeded"]


async def test_concurrent_claims_are_disjoint(database: Database) -> None:
    await _seed(database, count=10)

    async def claim() -> list[uuid.UUID]:
        async with database.transaction() as tx:
            return [d.id for d in await tx.deliveries.claim(NOW, 3, LEASE)]

    results = await asyncio.gather(*(claim() for _ in range(5)))
    taken = [i for r in results for i in r]
    assert len(taken) == len(set(taken)) == 10


async def test_retry_then_fail(database: Database) -> None:
    await _seed(database, count=1)
    async with database.transaction() as tx:
        (claimed,) = await tx.deliveries.claim(NOW, 1, LEASE)
        later = NOW + timedelta(seconds=30)
        assert await tx.deliveries.finish(
            claimed, DeliveryStatus.PENDING, NOW, next_attempt_at=later, error="HTTP 500"
        )
    async with database.transaction() as tx:
        assert await tx.deliveries.claim(NOW, 1, LEASE) == []  # not due yet
        (claimed,) = await tx.deliveries.claim(later, 1, LEASE)
        assert claimed.attempts == 2 and claimed.last_error == "HTTP 500"
        assert await tx.deliveries.finish(claimed, DeliveryStatus.FAILED, later, error="gave up")
    async with database.transaction() as tx:
        assert await tx.deliveries.claim(later + timedelta(days=1), 1, LEASE) == []
        assert await tx.deliveries.count(DeliveryStatus.FAILED) == 1


async def test_notices_are_recorded_once(database: Database) -> None:
    w, alert = await _seed(database, count=1)
    cert = w.certificate()
    async with database.transaction() as tx:
        await tx.certificates.add(cert)
        assert await tx.expiry.add_notice(alert.id, cert.id, "threshold:30d", NOW)
    async with database.transaction() as tx:
        assert not await tx.expiry.add_notice(alert.id, cert.id, "threshold:30d", NOW)
        assert await tx.expiry.add_notice(alert.id, cert.id, "day:2026-01-02", NOW)
        assert await tx.expiry.has_notice(alert.id, cert.id, "threshold:30d")


async def test_expiring_skips_renewed_revoked_and_out_of_scope(database: Database) -> None:
    async with database.transaction() as tx:
        w = await add_world(tx)
        alert = _alert(w, event=AlertEvent.EXPIRATION, alert_before="30d")
        await tx.alerts.add(alert)
        soon = w.certificate(serial="a1", not_after=NOW + timedelta(days=10))
        renewed = w.certificate(serial="a2", not_after=NOW + timedelta(days=10))
        successor = w.certificate(
            serial="a3", not_after=NOW + timedelta(days=100), renewed_from=renewed.id
        )
        later = w.certificate(serial="a4", not_after=NOW + timedelta(days=60))
        legacy = w.certificate(serial="a5", application_id=None)
        for cert in (soon, renewed, successor, later, legacy):
            await tx.certificates.add(cert)
    async with database.transaction(read_only=True) as tx:
        found = await tx.expiry.expiring(alert, NOW, NOW + timedelta(days=30), 100)
    assert [(c.id, p, a) for c, p, a in found] == [(soon.id, w.profile.slug, w.app.slug)]


async def test_lease_has_one_holder_until_it_runs_out(database: Database) -> None:
    async with database.transaction() as tx:
        assert await tx.leases.acquire("scan", "a", NOW, LEASE)
    async with database.transaction() as tx:
        assert not await tx.leases.acquire("scan", "b", NOW + timedelta(seconds=1), LEASE)
        assert await tx.leases.acquire("scan", "a", NOW + timedelta(seconds=1), LEASE)
    async with database.transaction() as tx:
        assert await tx.leases.acquire("scan", "b", NOW + timedelta(seconds=61), LEASE)
        await tx.leases.release("scan", "b")
    async with database.transaction() as tx:
        assert await tx.leases.acquire("scan", "c", NOW, LEASE)
