"""Alert delivery end to end inside one process: an issuance or revocation through REST
writes its deliveries in its own transaction, the Dispatcher sends them to a real webhook
receiver (signatures checked by `standardwebhooks`) and a real SMTP server (STARTTLS +
AUTH), retries with backoff, gives up, and expiry scans notify once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from gateway.core.alerts import Alert, AlertEvent, Channel, ChannelType, DeliveryStatus
from gateway.core.enrollment import EnrollmentRequest
from gateway.core.model import AuditEvent, EnrollmentMethod, new_id
from gateway.events.outbox import AlertOutbox
from gateway.events.scheduler import ExpiryScanner
from gateway.services import alerts as alert_service
from tests.helpers.receivers import SmtpServer, WebhookReceiver
from tests.helpers.x509util import make_csr
from tests.integration.api.conftest import Gateway

ALERTS = "/api/v1/applications/demo/alerts"


@asynccontextmanager
async def workers(gw: Gateway) -> AsyncIterator[None]:
    dispatcher = gw.services.dispatcher
    assert dispatcher is not None
    task = asyncio.create_task(dispatcher.run_forever())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def alert(gw: Gateway, receiver: WebhookReceiver, path: str, **kw: Any) -> dict[str, Any]:
    body = {
        "name": path,
        "event": "issuance",
        "channels": [{"type": "webhook", "url": f"{receiver.base}/{path}"}],
        **kw,
    }
    made = await gw.post(ALERTS, body, status=201)
    receiver.secrets[path] = made["channels"][0]["secret"]
    return made


async def issue(gw: Gateway, name: str, **kw: Any) -> dict[str, Any]:
    return await gw.post(
        gw.issue_path(), {"sans": [name], "subject": {"CN": name}, **kw}, status=201
    )


async def deliveries(gw: Gateway, alert_id: str) -> list[dict[str, Any]]:
    return (await gw.get(f"{ALERTS}/{alert_id}/deliveries"))["items"]  # type: ignore[no-any-return]


async def wait_status(gw: Gateway, alert_id: str, status: str, timeout: float = 15) -> list[Any]:
    async with asyncio.timeout(timeout):
        while True:
            items = await deliveries(gw, alert_id)
            if items and all(d["status"] == status for d in items):
                return items
            await asyncio.sleep(0.05)


async def test_issuance_reaches_webhook_and_email(
    alerts_gateway: Gateway, receiver: WebhookReceiver, smtp_server: SmtpServer
) -> None:
    gw = alerts_gateway
    made = await alert(
        gw,
        receiver,
        "issued",
        channels=[
            {"type": "webhook", "url": f"{receiver.base}/issued"},
            {"type": "email", "to": ["ops@example.com", "pki@example.com"]},
        ],
    )
    cert = await issue(gw, "www.example.com")
    async with workers(gw):
        (got,) = await receiver.wait_for("issued")
        messages = await smtp_server.wait_for(1)
    assert got.verified, "standardwebhooks refused the signature"
    assert got.body["type"] == "certificate.issuance"
    assert got.body["id"] == got.headers["webhook-id"]
    data = got.body["data"]
    assert data["application"] == "demo"
    assert data["certificate"]["id"] == cert["id"]
    assert data["certificate"]["serial"] == cert["serial"]
    assert data["certificate"]["common_name"] == "www.example.com"
    assert data["certificate"]["profile"] == "tls-server"
    assert "dns:www.example.com" in data["certificate"]["sans"]
    sender, recipients, message, authenticated = messages[0]
    assert authenticated and sender == "certgate@example.com"
    assert recipients == ["ops@example.com", "pki@example.com"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for expected in ("www.example.com", cert["serial"], "demo", "tls-server"):
        assert expected in text and expected in html
    assert cert["not_after"][:10] in text
    items = await wait_status(gw, made["id"], "succeeded")
    assert sorted(d["channel_type"] for d in items) == ["email", "webhook"]
    assert all(d["attempts"] == 1 for d in items)


async def test_revocation_reaches_the_webhook(
    alerts_gateway: Gateway, receiver: WebhookReceiver
) -> None:
    gw = alerts_gateway
    await alert(gw, receiver, "revoked", event="revocation")
    cert = await issue(gw, "gone.example.com")
    await gw.post(
        f"/api/v1/applications/demo/certificates/{cert['id']}/revoke",
        {"reason": "key_compromise"},
        status=200,
    )
    async with workers(gw):
        (got,) = await receiver.wait_for("revoked")
    assert got.verified and got.body["type"] == "certificate.revocation"
    assert got.body["data"]["certificate"]["revocation_reason"] == "key_compromise"


async def test_filters_choose_the_certificates(
    alerts_gateway: Gateway, receiver: WebhookReceiver
) -> None:
    gw = alerts_gateway
    flt = [{"field": "san", "operator": "matches", "value": r"^api\d+\.example\.com$"}]
    await alert(gw, receiver, "filtered", filters=flt)
    await issue(gw, "www.example.com")
    await issue(gw, "api7.example.com")
    async with workers(gw):
        await receiver.wait_for("filtered")
        await asyncio.sleep(0.3)
    assert [r.body["data"]["certificate"]["common_name"] for r in receiver.at("filtered")] == [
        "api7.example.com"
    ]


async def test_a_failing_receiver_is_retried_with_one_delivery_id(
    alerts_gateway: Gateway, receiver: WebhookReceiver
) -> None:
    gw = alerts_gateway
    made = await alert(gw, receiver, "flaky")
    receiver.fail_times["flaky"] = 2
    await issue(gw, "flaky.example.com")
    async with workers(gw):
        (got,) = await receiver.wait_for("flaky")
        (item,) = await wait_status(gw, made["id"], "succeeded")
    ids = {i for p, i in receiver.attempts if p == "flaky"}
    assert ids == {got.headers["webhook-id"]} and len(receiver.attempts) == 3
    assert item["attempts"] == 3 and item["last_error"] is None


async def test_a_dead_receiver_ends_failed_and_a_hanging_one_blocks_nothing(
    alerts_gateway: Gateway, receiver: WebhookReceiver
) -> None:
    gw = alerts_gateway
    dead = await alert(gw, receiver, "dead")
    receiver.fail_times["dead"] = 100
    hanging = await alert(gw, receiver, "hang")
    receiver.hang.add("hang")
    await alert(gw, receiver, "fine")
    await issue(gw, "many.example.com")
    async with workers(gw):
        await receiver.wait_for("fine", timeout=0.9)  # before the hanging one times out (1 s)
        (failed,) = await wait_status(gw, dead["id"], "failed")
        (timed_out,) = await wait_status(gw, hanging["id"], "failed", timeout=20)
    assert failed["attempts"] == 3 and "HTTP 500" in failed["last_error"]
    assert "no answer within" in timed_out["last_error"]


async def test_test_send_goes_through_the_outbox(
    alerts_gateway: Gateway, receiver: WebhookReceiver
) -> None:
    gw = alerts_gateway
    made = await alert(gw, receiver, "tested", event="expiration", alert_before="2w")
    resp = await gw.client.post(f"{ALERTS}/{made['id']}/test", headers=gw.auth)
    queued = await resp.json()
    assert resp.status == 202 and queued["deliveries"][0]["status"] == "pending"
    async with workers(gw):
        (got,) = await receiver.wait_for("tested")
    assert got.verified and got.body["data"]["test"] is True
    assert got.body["type"] == "certificate.expiration"


async def test_expiry_scan_notifies_once_then_daily(
    alerts_gateway: Gateway, receiver: WebhookReceiver
) -> None:
    gw = alerts_gateway
    made = await alert(gw, receiver, "expiring", event="expiration", alert_before="30d")
    soon = await issue(gw, "soon.example.com", validity_days=10)
    await issue(gw, "later.example.com", validity_days=60)
    services = gw.services
    first = ExpiryScanner(services.db, services.clock, gw.config)
    second = ExpiryScanner(services.db, services.clock, gw.config)  # another process
    assert await first.scan() == 1
    assert await second.scan() is None  # the lease is the first one's
    assert await first.scan() == 0  # the same day: nothing new
    assert await second.scan(force=True) == 0  # even without the lease
    async with workers(gw):
        (got,) = await receiver.wait_for("expiring")
    assert got.verified and got.body["type"] == "certificate.expiration"
    assert got.body["data"]["certificate"]["id"] == soon["id"]
    assert got.body["data"]["days_left"] == 10

    class Tomorrow:
        def now(self) -> Any:
            return services.clock.now() + timedelta(days=1)

    tomorrow = ExpiryScanner(services.db, Tomorrow(), gw.config)
    assert await tomorrow.scan(force=True) == 1  # the daily reminder
    assert await tomorrow.scan(force=True) == 0
    assert len(await deliveries(gw, made["id"])) == 2


async def test_a_rolled_back_change_writes_no_delivery(
    alerts_gateway: Gateway, receiver: WebhookReceiver
) -> None:
    gw = alerts_gateway
    made = await alert(gw, receiver, "rollback")
    cert = await issue(gw, "rolled.example.com")
    services = gw.services
    async with services.db.transaction(read_only=True) as tx:
        stored = await tx.certificates.get(uuid.UUID(cert["id"]))
    assert stored is not None
    event = AuditEvent(uuid.uuid4(), stored.created_at, "t", "certificate.issued", "c", "x")
    try:
        async with services.db.transaction() as tx:
            await AlertOutbox(services.clock).record(tx, event, stored)
            raise RuntimeError("the change fails after its outbox rows were written")
    except RuntimeError:
        pass
    assert len(await deliveries(gw, made["id"])) == 1  # the issuance's own, not the rolled back
    async with services.db.transaction(read_only=True) as tx:
        assert await tx.deliveries.count(DeliveryStatus.PENDING) == 1


async def test_legacy_project_alerts_fire_for_legacy_issuance_only(
    alerts_gateway: Gateway, receiver: WebhookReceiver
) -> None:
    """A legacy alert hears certificates issued through its project's legacy profile
    endpoints (no application); an application's alert does not, and vice versa."""
    gw = alerts_gateway
    services = gw.services
    app_alert = await alert(gw, receiver, "app-only")
    boot = gw.bootstrap
    async with services.db.transaction(read_only=True) as tx:
        profile = await tx.profiles.get(uuid.UUID(boot["profile_id"]))
        legacy_profile = next(
            p for p in await tx.profiles.list(profile.project_id) if p.slug != profile.slug
        )
    now = services.clock.now()
    legacy = Alert(
        new_id(),
        legacy_profile.project_id,
        None,
        "legacy",
        AlertEvent.ISSUANCE,
        None,
        (),
        (Channel(ChannelType.WEBHOOK, new_id(), url=f"{receiver.base}/legacy"),),
        now,
        now,
    )
    async with services.db.transaction() as tx:
        await tx.alerts.add(legacy)
    receiver.secrets["legacy"] = "whsec_" + "QUJD" * 8
    # The secret, stored as the alerts service stores it (legacy alerts come from the
    # legacy system's data; the REST API never creates one).
    async with services.db.transaction() as tx:
        await alert_service._store_secret(
            services, tx, legacy.project_id, legacy.channels[0].id, receiver.secrets["legacy"]
        )
    request = EnrollmentRequest(
        profile=legacy_profile,
        application=None,
        csr=make_csr("legacy-alert.example.com")[0],
        requester="est:device",
        method=EnrollmentMethod.EST,
    )
    issued = await services.enrollment.enroll(request)
    await issue(gw, "app-alert.example.com")
    async with workers(gw):
        (got,) = await receiver.wait_for("legacy")
        await receiver.wait_for("app-only")
        await asyncio.sleep(0.3)
    assert got.verified and got.body["data"]["application"] is None
    assert got.body["data"]["certificate"]["id"] == str(issued.certificate.id)  # type: ignore[union-attr]
    assert [r.body["data"]["certificate"]["common_name"] for r in receiver.at("app-only")] == [
        "app-alert.example.com"
    ]
    assert len(receiver.at("legacy")) == 1 and app_alert["id"]


async def test_slack_and_pagerduty_channels_post_their_formats(
    alerts_gateway: Gateway, receiver: WebhookReceiver
) -> None:
    gw = alerts_gateway
    channels = [
        {"type": "slack", "url": f"{receiver.base}/slack"},
        {"type": "pagerduty", "routing_key": "R0UTING", "url": f"{receiver.base}/pd"},
    ]
    made = await gw.post(
        ALERTS, {"name": "chat", "event": "issuance", "channels": channels}, status=201
    )
    await issue(gw, "chat.example.com")
    async with workers(gw):
        (slack,) = await receiver.wait_for("slack")
        (pd,) = await receiver.wait_for("pd")
        await wait_status(gw, made["id"], "succeeded")
    assert "chat.example.com" in slack.body["text"] and slack.body["blocks"]
    assert "webhook-signature" not in slack.headers
    assert pd.body["routing_key"] == "R0UTING" and pd.body["event_action"] == "trigger"
    assert pd.body["payload"]["source"] == "certgate"
    assert "chat.example.com" in pd.body["payload"]["summary"]
