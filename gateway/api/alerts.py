"""Alerts (issue 13): `/api/v1/applications/{app}/alerts[/{alert_id}[/test|/deliveries]]`
(Admin writes, Auditor and above read) and a legacy project's alerts at
`/api/v1/projects/{project_id}/alerts[/{alert_id}]` (Product Admin; read, edit, delete;
POST answers 409 legacy_read_only). The request and response models live here, with the
routes that use them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import yarl
from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from gateway.api import serializers as ser
from gateway.api.common import actor, json_body, page_json, path_uuid, query_of, services
from gateway.api.models import Body, Empty, Name, PageQuery
from gateway.api.outputs import Out
from gateway.api.routing import Permission, Route
from gateway.core.alerts import (
    ALERT_BEFORE,
    MAX_CHANNELS,
    MAX_FILTERS,
    Alert,
    AlertEvent,
    Delivery,
    DeliveryStatus,
    FilterField,
    FilterOperator,
)
from gateway.services import alerts as svc
from gateway.services.certificates import resolve_application

# --- request models -------------------------------------------------------------------------


def _http_url(value: str) -> str:
    try:
        url = yarl.URL(value)
    except (ValueError, TypeError):
        raise ValueError("not a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http or https URL with a host")
    return value


HttpUrl = Annotated[
    str, StringConstraints(max_length=2000, pattern=r"^[^\x00\s]*$"), AfterValidator(_http_url)
]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")]
AlertBefore = Annotated[str, StringConstraints(pattern=ALERT_BEFORE.pattern, max_length=8)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class WebhookIn(_Strict):
    type: Literal["webhook"]
    url: HttpUrl
    secret: Annotated[str, StringConstraints(pattern=r"^whsec_[A-Za-z0-9+/=]{32,100}$")] | None = (
        Field(None, description="whsec_ and base64; generated and returned once when absent")
    )


class EmailIn(_Strict):
    type: Literal["email"]
    to: list[Email] = Field(min_length=1, max_length=20)


class SlackIn(_Strict):
    type: Literal["slack"]
    url: HttpUrl


class PagerDutyIn(_Strict):
    type: Literal["pagerduty"]
    routing_key: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^\S+$")]
    # Required (DESIGN.md Contract): no default endpoint, so nothing is ever sent to a
    # third party that the Admin did not name.
    url: HttpUrl = Field(
        description="the Events API v2 endpoint: https://events.pagerduty.com/v2/enqueue"
    )


ChannelIn = Annotated[WebhookIn | EmailIn | SlackIn | PagerDutyIn, Field(discriminator="type")]


class FilterIn(_Strict):
    field: FilterField
    operator: FilterOperator
    value: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00]*$")]


class AlertBody(Body):
    name: Name
    event: AlertEvent
    alert_before: AlertBefore | None = Field(
        None, description="expiration only: 30d, 2w, 3m, 1y (default 30d)"
    )
    filters: list[FilterIn] = Field(default_factory=list, max_length=MAX_FILTERS)
    channels: list[ChannelIn] = Field(min_length=1, max_length=MAX_CHANNELS)


class AlertPatch(Body):
    name: Name | None = None
    event: AlertEvent | None = None
    alert_before: AlertBefore | None = None
    filters: list[FilterIn] | None = Field(None, max_length=MAX_FILTERS)
    channels: list[ChannelIn] | None = Field(None, min_length=1, max_length=MAX_CHANNELS)


# --- response models ------------------------------------------------------------------------


class ChannelOut(Out):
    type: str
    id: str
    url: str | None = None
    to: list[str] | None = None
    routing_key: str | None = None
    # Only in the answer that generated it.
    secret: str | None = None


class AlertOut(Out):
    id: str
    project_id: str
    application: str | None
    name: str
    event: str
    alert_before: str | None
    filters: list[dict[str, Any]]
    channels: list[ChannelOut]
    created_at: str | None
    updated_at: str | None


class AlertListOut(Out):
    items: list[AlertOut]


class DeliveryOut(Out):
    id: str
    alert_id: str
    channel: int
    channel_type: str | None
    event_type: str
    status: Annotated[str, Field(json_schema_extra={"enum": [s.value for s in DeliveryStatus]})]
    attempts: int
    last_error: str | None
    next_attempt_at: str | None
    created_at: str | None
    updated_at: str | None


class DeliveryPageOut(Out):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


class TestOut(Out):
    deliveries: list[DeliveryOut]


# --- serializers ----------------------------------------------------------------------------


def alert_json(
    alert: Alert, app: str | None, secrets: dict[int, str] | None = None
) -> dict[str, Any]:
    channels = []
    for index, channel in enumerate(alert.channels):
        out: dict[str, Any] = {"type": channel.type.value, "id": str(channel.id)}
        if channel.url is not None:
            out["url"] = channel.url
        if channel.to:
            out["to"] = list(channel.to)
        if channel.routing_key is not None:
            out["routing_key"] = channel.routing_key
        if secrets and index in secrets:
            out["secret"] = secrets[index]
        channels.append(out)
    return {
        "id": str(alert.id),
        "project_id": str(alert.project_id),
        "application": app,
        "name": alert.name,
        "event": alert.event.value,
        "alert_before": alert.alert_before,
        "filters": [
            {"field": f.field.value, "operator": f.operator.value, "value": f.value}
            for f in alert.filters
        ],
        "channels": channels,
        "created_at": ser.ts(alert.created_at),
        "updated_at": ser.ts(alert.updated_at),
    }


def delivery_json(delivery: Delivery, alert: Alert | None = None) -> dict[str, Any]:
    channel_type = None
    if alert is not None and delivery.channel_index < len(alert.channels):
        channel_type = alert.channels[delivery.channel_index].type.value
    return {
        "id": str(delivery.id),
        "alert_id": str(delivery.alert_id),
        "channel": delivery.channel_index,
        "channel_type": channel_type,
        "event_type": delivery.event_type,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "next_attempt_at": ser.ts(delivery.next_attempt_at)
        if delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
        else None,
        "created_at": ser.ts(delivery.created_at),
        "updated_at": ser.ts(delivery.updated_at),
    }


# --- handlers -------------------------------------------------------------------------------


async def _scope(request: web.Request) -> svc.Scope:
    if "project_id" in request.match_info:
        return await svc.legacy_scope(services(request), path_uuid(request, "project_id"))
    return svc.Scope.of(await resolve_application(services(request), request.match_info["app"]))


def _slug(scope: svc.Scope) -> str | None:
    return scope.application.slug if scope.application else None


def _alert_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "alert_id")


async def list_alerts(request: web.Request) -> web.Response:
    scope = await _scope(request)
    alerts = await svc.list_alerts(services(request), scope)
    return web.json_response({"items": [alert_json(a, _slug(scope)) for a in alerts]})


async def create_alert(request: web.Request) -> web.Response:
    scope = await _scope(request)
    saved = await svc.create_alert(
        services(request), actor(request), scope, await json_body(request)
    )
    return web.json_response(
        alert_json(saved.alert, _slug(scope), saved.secrets),
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def refuse_legacy_create(request: web.Request) -> web.Response:
    await svc.refuse_legacy_create(services(request), path_uuid(request, "project_id"))
    raise AssertionError("refuse_legacy_create always raises")  # pragma: no cover


async def get_alert(request: web.Request) -> web.Response:
    scope = await _scope(request)
    alert = await svc.get_alert(services(request), scope, _alert_id(request))
    return web.json_response(alert_json(alert, _slug(scope)))


async def update_alert(request: web.Request) -> web.Response:
    scope = await _scope(request)
    saved = await svc.update_alert(
        services(request), actor(request), scope, _alert_id(request), await json_body(request)
    )
    return web.json_response(
        alert_json(saved.alert, _slug(scope), saved.secrets), headers={"Cache-Control": "no-store"}
    )


async def delete_alert(request: web.Request) -> web.Response:
    scope = await _scope(request)
    await svc.delete_alert(services(request), actor(request), scope, _alert_id(request))
    return web.Response(status=204)


async def test_alert(request: web.Request) -> web.Response:
    scope = await _scope(request)
    svcs = services(request)
    made = await svc.send_test(svcs, actor(request), scope, _alert_id(request))
    if svcs.dispatcher is not None:
        svcs.dispatcher.wake()
    alert = await svc.get_alert(svcs, scope, _alert_id(request))
    return web.json_response({"deliveries": [delivery_json(d, alert) for d in made]}, status=202)


async def list_deliveries(request: web.Request) -> web.Response:
    scope = await _scope(request)
    query = query_of(request, PageQuery)
    alert = await svc.get_alert(services(request), scope, _alert_id(request))
    page = await svc.list_deliveries(services(request), scope, alert.id, query.limit, query.offset)
    items = [delivery_json(d, alert) for d in page.items]
    return web.json_response(page_json(items, page.total, query.limit, query.offset))


def routes() -> list[Route]:
    base = "/api/v1/applications/{app}/alerts"
    one = base + "/{alert_id}"
    legacy = "/api/v1/projects/{project_id}/alerts"
    legacy_one = legacy + "/{alert_id}"
    read, admin, product = Permission.APP_READ, Permission.APP_ADMIN, Permission.PRODUCT_ADMIN
    return [
        Route(
            "GET",
            base,
            list_alerts,
            "alerts.list",
            read,
            "List an application's alerts",
            "alerts",
            schemas={200: AlertListOut},
        ),
        Route(
            "POST",
            base,
            create_alert,
            "alerts.create",
            admin,
            "Create an alert (a generated webhook secret is returned once)",
            "alerts",
            body=AlertBody,
            responses={201: "Created"},
            schemas={201: AlertOut},
        ),
        Route(
            "GET",
            one,
            get_alert,
            "alerts.get",
            read,
            "Get an alert",
            "alerts",
            schemas={200: AlertOut},
        ),
        Route(
            "PATCH",
            one,
            update_alert,
            "alerts.update",
            admin,
            "Change an alert (filters and channels are replaced whole)",
            "alerts",
            body=AlertPatch,
            schemas={200: AlertOut},
        ),
        Route(
            "DELETE",
            one,
            delete_alert,
            "alerts.delete",
            admin,
            "Delete an alert with its deliveries",
            "alerts",
            responses={204: "Deleted"},
        ),
        Route(
            "POST",
            one + "/test",
            test_alert,
            "alerts.test",
            admin,
            "Queue a test notification on every channel of the alert",
            "alerts",
            responses={202: "Queued"},
            schemas={202: TestOut},
        ),
        Route(
            "GET",
            one + "/deliveries",
            list_deliveries,
            "alerts.deliveries",
            read,
            "An alert's deliveries (newest first): status, attempts, last error, times",
            "alerts",
            query=PageQuery,
            schemas={200: DeliveryPageOut},
        ),
        Route(
            "GET",
            legacy,
            list_alerts,
            "legacy_alerts.list",
            product,
            "List a legacy project's alerts",
            "alerts",
            schemas={200: AlertListOut},
        ),
        Route(
            "POST",
            legacy,
            refuse_legacy_create,
            "legacy_alerts.create",
            product,
            "Refused (409 legacy_read_only): create alerts inside an Application",
            "alerts",
            body=Empty,
            body_optional=True,
            responses={},
        ),
        Route(
            "GET",
            legacy_one,
            get_alert,
            "legacy_alerts.get",
            product,
            "Get a legacy project's alert",
            "alerts",
            schemas={200: AlertOut},
        ),
        Route(
            "PATCH",
            legacy_one,
            update_alert,
            "legacy_alerts.update",
            product,
            "Change a legacy project's alert",
            "alerts",
            body=AlertPatch,
            schemas={200: AlertOut},
        ),
        Route(
            "DELETE",
            legacy_one,
            delete_alert,
            "legacy_alerts.delete",
            product,
            "Delete a legacy project's alert",
            "alerts",
            responses={204: "Deleted"},
        ),
    ]
