"""Builders of the role x route matrix (test_access_matrix.py) for alerts: an alert made
fresh per case (an email channel: SMTP is not configured there, so nothing leaves the
machine), and a legacy project's alert written to the store (the REST API never creates
one)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from gateway.appkeys import SERVICES
from gateway.core.alerts import Alert, AlertEvent, Channel, ChannelType
from gateway.core.model import new_id
from tests.integration.api.access_world import Call, World

Build = Callable[[World, str], Awaitable[Call]]
DEMO = {"app": "demo"}
EMAIL = {"type": "email", "to": ["ops@example.com"]}


def new_alert(w: World) -> dict[str, Any]:
    return {"name": w.unique("alert"), "event": "issuance", "channels": [EMAIL]}


def _app_alert(body: Any = None, suffix: str = "") -> Build:
    async def build(w: World, caller: str) -> Call:
        made = await w.admin("POST", "/api/v1/applications/demo/alerts", new_alert(w))
        return Call({**DEMO, "alert_id": made["id"]}, body)

    return build


async def legacy_alert(w: World) -> str:
    now = datetime.now(UTC)
    alert = Alert(
        id=new_id(),
        project_id=uuid.UUID(w.project_id),
        application_id=None,
        name=w.unique("legacy-alert"),
        event=AlertEvent.REVOCATION,
        alert_before=None,
        filters=(),
        channels=(Channel(ChannelType.EMAIL, new_id(), to=("ops@example.com",)),),
        created_at=now,
        updated_at=now,
    )
    async with w.app[SERVICES].db.transaction() as tx:
        await tx.alerts.add(alert)
    return str(alert.id)


def _legacy(body: Any = None, with_alert: bool = True) -> Build:
    async def build(w: World, caller: str) -> Call:
        params = {"project_id": w.project_id}
        if with_alert:
            params["alert_id"] = await legacy_alert(w)
        return Call(params, body)

    return build


def alert_samples(
    sample: Callable[[Any, int, Build], Any], app: Any, product: Any
) -> dict[str, Any]:
    """`sample(permission, status, build)`; `app` is (read, admin), `product` Product Admin."""
    read, admin = app

    async def create(w: World, caller: str) -> Call:
        return Call(DEMO, new_alert(w))

    return {
        "alerts.list": sample(read, 200, _app_alert()),
        "alerts.create": sample(admin, 201, create),
        "alerts.get": sample(read, 200, _app_alert()),
        "alerts.update": sample(admin, 200, _app_alert({"name": "renamed"})),
        "alerts.delete": sample(admin, 204, _app_alert()),
        "alerts.test": sample(admin, 202, _app_alert()),
        "alerts.deliveries": sample(read, 200, _app_alert()),
        "legacy_alerts.list": sample(product, 200, _legacy(with_alert=False)),
        "legacy_alerts.create": sample(product, 409, _legacy({}, with_alert=False)),
        "legacy_alerts.get": sample(product, 200, _legacy()),
        "legacy_alerts.update": sample(product, 200, _legacy({"name": "renamed"})),
        "legacy_alerts.delete": sample(product, 204, _legacy()),
    }
