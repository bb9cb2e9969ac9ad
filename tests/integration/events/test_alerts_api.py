"""Alerts through the REST API: create, read, edit, delete, validation, secrets, the legacy
project's routes. Delivery itself is in test_alerts_delivery.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.core.alerts import (
    WEBHOOK_SECRET_PURPOSE,
    Alert,
    AlertEvent,
    Channel,
    ChannelType,
    secret_owner,
)
from gateway.core.model import new_id
from gateway.pki.kms import secret_aad
from tests.integration.api.conftest import Gateway

ALERTS = "/api/v1/applications/demo/alerts"
HOOK = "https://hooks.example.com/certgate"


def body(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "ops",
        "event": "expiration",
        "alert_before": "30d",
        "channels": [{"type": "webhook", "url": HOOK}],
    }
    return {**base, **kw}


async def _error(gw: Gateway, method: str, path: str, payload: Any, status: int = 400) -> Any:
    resp = await gw.client.request(method, path, json=payload, headers=gw.auth)
    data = await resp.json()
    assert resp.status == status, data
    return data["error"]


async def test_create_returns_a_generated_secret_once_and_stores_it_encrypted(
    alerts_gateway: Gateway,
) -> None:
    gw = alerts_gateway
    made = await gw.post(ALERTS, body(), status=201)
    secret = made["channels"][0]["secret"]
    assert secret.startswith("whsec_")
    assert made["event"] == "expiration" and made["alert_before"] == "30d"
    assert made["application"] == "demo"
    shown = await gw.get(f"{ALERTS}/{made['id']}")
    assert "secret" not in shown["channels"][0]
    assert [a["id"] for a in (await gw.get(ALERTS))["items"]] == [made["id"]]
    services = gw.services
    async with services.db.transaction(read_only=True) as tx:
        stored = await tx.secrets.get_by_owner(
            secret_owner(uuid.UUID(made["channels"][0]["id"])), WEBHOOK_SECRET_PURPOSE
        )
    assert stored is not None and secret.encode() not in stored.ciphertext
    plain = await services.kms.decrypt(stored.project_id, stored.ciphertext, secret_aad(stored.id))
    assert plain.decode() == secret


async def test_a_given_secret_is_kept_and_not_echoed(alerts_gateway: Gateway) -> None:
    given = "whsec_" + "A" * 44
    made = await alerts_gateway.post(
        ALERTS,
        body(
            event="issuance",
            alert_before=None,
            channels=[{"type": "webhook", "url": HOOK, "secret": given}],
        ),
        status=201,
    )
    assert "secret" not in made["channels"][0]
    assert made["alert_before"] is None


async def test_patch_keeps_a_webhook_secret_and_replaces_filters(alerts_gateway: Gateway) -> None:
    gw = alerts_gateway
    made = await gw.post(ALERTS, body(), status=201)
    path = f"{ALERTS}/{made['id']}"
    resp = await gw.client.patch(
        path,
        json={
            "name": "renamed",
            "filters": [{"field": "san", "operator": "ends_with", "value": ".example.com"}],
            "channels": [
                {"type": "webhook", "url": HOOK},
                {"type": "email", "to": ["ops@example.com"]},
                {"type": "slack", "url": "https://hooks.slack.example/T1"},
                {
                    "type": "pagerduty",
                    "routing_key": "R0UT1NG",
                    "url": "https://events.pagerduty.com/v2/enqueue",
                },
            ],
        },
        headers=gw.auth,
    )
    patched = await resp.json()
    assert resp.status == 200, patched
    assert patched["name"] == "renamed"
    assert patched["channels"][0]["id"] == made["channels"][0]["id"]  # same URL: same secret
    assert "secret" not in patched["channels"][0]
    assert [c["type"] for c in patched["channels"]] == ["webhook", "email", "slack", "pagerduty"]
    assert patched["filters"] == [
        {"field": "san", "operator": "ends_with", "value": ".example.com"}
    ]
    resp = await gw.client.delete(path, headers=gw.auth)
    assert resp.status == 204
    await gw.get(path, status=404)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(body(alert_before="30 days"), "alert_before", id="fail/alert-before-format"),
        pytest.param(body(alert_before="30h"), "alert_before", id="fail/alert-before-unit"),
        pytest.param(body(event="expired"), "event", id="fail/unknown-event"),
        pytest.param(
            body(channels=[{"type": "sms", "to": "+1"}]), "channels.0", id="fail/unknown-channel"
        ),
        pytest.param(
            body(channels=[{"type": "email", "to": [f"a{i}@example.com"]} for i in range(11)]),
            "channels",
            id="fail/eleven-channels",
        ),
        pytest.param(
            body(channels=[{"type": "webhook", "url": "ftp://hooks.example.com/x"}]),
            "channels.0.webhook.url",
            id="fail/webhook-not-http",
        ),
        pytest.param(
            body(filters=[{"field": "owner", "operator": "equals", "value": "x"}]),
            "filters.0.field",
            id="fail/unknown-filter-field",
        ),
        pytest.param(body(channels=[]), "channels", id="fail/no-channel"),
        pytest.param(
            body(channels=[{"type": "pagerduty", "routing_key": "R"}]),
            "channels.0.pagerduty.url",
            id="fail/pagerduty-without-url",
        ),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    alerts_gateway: Gateway, payload: dict[str, Any], field: str
) -> None:
    error = await _error(alerts_gateway, "POST", ALERTS, payload)
    assert error["code"] == "invalid_input"
    assert error["violations"][0]["field"].startswith(field), error


@pytest.mark.parametrize(
    "pattern", ["(a+)+$", "(a|ab)*c", r"(\w*)*x", r"(a)\1", "[unclosed"], ids=lambda p: p
)
async def test_unsafe_patterns_are_refused(alerts_gateway: Gateway, pattern: str) -> None:
    flt = [{"field": "common_name", "operator": "matches", "value": pattern}]
    error = await _error(alerts_gateway, "POST", ALERTS, body(filters=flt))
    assert error["code"] == "unsafe_pattern"
    assert "filters.0.value" in error["message"]


async def test_alert_before_only_for_expiration(alerts_gateway: Gateway) -> None:
    error = await _error(alerts_gateway, "POST", ALERTS, body(event="revocation"))
    assert "expiration alerts only" in error["message"]


async def test_private_targets_are_refused_unless_allowed(gateway: Gateway) -> None:
    # `gateway` runs with the default settings: ALLOW_PRIVATE_TARGETS false.
    for url in (
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://localhost/x",
    ):
        payload = body(channels=[{"type": "webhook", "url": url}])
        error = await _error(gateway, "POST", ALERTS, payload)
        assert error["code"] == "target_not_allowed", url
    made = await gateway.post(ALERTS, body(), status=201)
    assert made["channels"][0]["url"] == HOOK


async def test_legacy_project_alerts_read_edit_delete_but_not_create(
    alerts_gateway: Gateway,
) -> None:
    gw = alerts_gateway
    project_id = (await gw.get("/api/v1/projects"))["items"][0]["id"]
    now = datetime.now(UTC)
    alert = Alert(
        new_id(),
        uuid.UUID(project_id),
        None,
        "legacy",
        AlertEvent.REVOCATION,
        None,
        (),
        (Channel(ChannelType.EMAIL, new_id(), to=("ops@example.com",)),),
        now,
        now,
    )
    async with gw.services.db.transaction() as tx:
        await tx.alerts.add(alert)
    base = f"/api/v1/projects/{project_id}/alerts"
    error = await _error(gw, "POST", base, body(), status=409)
    assert error["code"] == "legacy_read_only"
    assert [a["id"] for a in (await gw.get(base))["items"]] == [str(alert.id)]
    assert (await gw.get(ALERTS))["items"] == []  # not the application's
    await gw.get(f"{ALERTS}/{alert.id}", status=404)
    resp = await gw.client.patch(f"{base}/{alert.id}", json={"name": "kept"}, headers=gw.auth)
    assert resp.status == 200 and (await resp.json())["name"] == "kept"
    resp = await gw.client.delete(f"{base}/{alert.id}", headers=gw.auth)
    assert resp.status == 204
    await _error(gw, "POST", f"/api/v1/projects/{uuid.uuid4()}/alerts", {}, status=404)
