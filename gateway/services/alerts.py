"""Alerts of an Application (`/api/v1/applications/{app}/alerts`) and of a legacy project
(`/api/v1/projects/{id}/alerts`: read, edit, delete; creating one answers 409
`legacy_read_only`), their test sends and their deliveries.

The body's shape is checked by the REST models (gateway.api.alerts) before it gets here;
this module checks what needs the configuration or the database (private webhook targets,
alert_before against the event) and keeps webhook secrets: generated `whsec_…` when the
client sends none, returned once, stored encrypted under the project's key (`secrets`,
gateway.pki.kms) and never again shown.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gateway.core.alerts import (
    MAX_CHANNELS,
    WEBHOOK_SECRET_PURPOSE,
    Alert,
    AlertEvent,
    AlertFilter,
    CertificateFacts,
    Channel,
    ChannelType,
    Delivery,
    FilterField,
    FilterOperator,
    deliveries_for,
    parse_alert_before,
    secret_owner,
)
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.model import Application, Page, Secret, new_id
from gateway.events.channels.webhook import new_secret, secret_key
from gateway.events.filters import check_pattern
from gateway.events.outbound_http import DeliveryError, check_url
from gateway.pki.kms import secret_aad
from gateway.services.audit import Actor, event

if TYPE_CHECKING:
    from gateway.services.graph import Services
    from store.db import Tx

DEFAULT_ALERT_BEFORE = "30d"


@dataclass(frozen=True)
class Scope:
    """Whose alerts: an Application's, or (application None) a legacy project's."""

    project_id: uuid.UUID
    application: Application | None

    @property
    def application_id(self) -> uuid.UUID | None:
        return self.application.id if self.application else None

    @classmethod
    def of(cls, app: Application) -> Scope:
        return cls(app.project_id, app)


@dataclass(frozen=True)
class Saved:
    """An alert as stored, and the webhook secrets generated for it (channel index ->
    secret): the only time they are shown."""

    alert: Alert
    secrets: dict[int, str]


def _filters(raw: list[dict[str, Any]]) -> tuple[AlertFilter, ...]:
    made = []
    for index, item in enumerate(raw):
        flt = AlertFilter(
            FilterField(item["field"]), FilterOperator(item["operator"]), str(item["value"])
        )
        if flt.operator is FilterOperator.MATCHES:
            try:
                check_pattern(flt.value)
            except ValueError as err:
                raise InvalidInput(f"filters.{index}.value: {err}", code="unsafe_pattern") from None
        made.append(flt)
    return tuple(made)


def _alert_before(event: AlertEvent, value: str | None) -> str | None:
    if event is not AlertEvent.EXPIRATION:
        if value is not None:
            raise InvalidInput("alert_before applies to expiration alerts only")
        return None
    value = value or DEFAULT_ALERT_BEFORE
    try:
        parse_alert_before(value)
    except ValueError as err:
        raise InvalidInput(f"alert_before: {err}") from None
    return value


def _check_target(services: Services, url: str, where: str) -> None:
    try:
        check_url(url, services.config.events.allow_private_targets)
    except DeliveryError as err:
        raise InvalidInput(f"{where}: {err.message}", code="target_not_allowed") from None


async def _channels(
    services: Services,
    tx: Tx,
    project_id: uuid.UUID,
    raw: list[dict[str, Any]],
    before: tuple[Channel, ...] = (),
) -> tuple[tuple[Channel, ...], dict[int, str]]:
    """Channels from the body, with their webhook secrets stored; a webhook channel sent
    again without a secret keeps the one of the same URL it had (PATCH of other fields)."""
    if len(raw) > MAX_CHANNELS:
        raise InvalidInput(f"an alert has at most {MAX_CHANNELS} channels")
    kept = {c.url: c for c in before if c.type is ChannelType.WEBHOOK}
    made: list[Channel] = []
    generated: dict[int, str] = {}
    for index, item in enumerate(raw):
        kind = ChannelType(item["type"])
        url = item.get("url")
        if url is not None:
            _check_target(services, url, f"channels.{index}.url")
        if kind is not ChannelType.WEBHOOK:
            made.append(
                Channel(
                    kind,
                    new_id(),
                    url=url,
                    to=tuple(item.get("to") or ()),
                    routing_key=item.get("routing_key"),
                )
            )
            continue
        secret = item.get("secret")
        previous = kept.pop(url, None)
        if secret is None and previous is not None:
            made.append(previous)
            continue
        if secret is None:
            secret = new_secret()
            generated[index] = secret
        else:
            try:
                secret_key(secret)
            except ValueError as err:
                raise InvalidInput(f"channels.{index}.secret: {err}") from None
        channel = Channel(kind, new_id(), url=url)
        await _store_secret(services, tx, project_id, channel.id, secret)
        made.append(channel)
    return tuple(made), generated


async def _store_secret(
    services: Services, tx: Tx, project_id: uuid.UUID, channel_id: uuid.UUID, secret: str
) -> None:
    secret_id = new_id()
    ciphertext = await services.kms.encrypt(project_id, secret.encode(), secret_aad(secret_id))
    await tx.secrets.replace(
        Secret(
            id=secret_id,
            project_id=project_id,
            owner=secret_owner(channel_id),
            purpose=WEBHOOK_SECRET_PURPOSE,
            ciphertext=ciphertext,
            created_at=services.clock.now(),
        )
    )


async def _drop_secrets(tx: Tx, gone: list[Channel]) -> None:
    for channel in gone:
        if channel.type is ChannelType.WEBHOOK:
            secret = await tx.secrets.get_by_owner(secret_owner(channel.id), WEBHOOK_SECRET_PURPOSE)
            if secret is not None:
                await tx.secrets.delete(secret.id)


def _audit(scope: Scope, actor: Actor, at: Any, action: str, alert: Alert) -> Any:
    return event(
        actor,
        at,
        action,
        "alert",
        alert.id,
        project_id=scope.project_id,
        application_id=scope.application_id,
        details={"name": alert.name, "event": alert.event.value},
    )


async def _get(tx: Tx, scope: Scope, alert_id: uuid.UUID) -> Alert:
    """An alert of this scope; NotFound for another scope's, so ids cannot be probed."""
    alert = await tx.alerts.get(alert_id)
    if alert is None or (
        alert.application_id != scope.application_id or alert.project_id != scope.project_id
    ):
        raise NotFound("alert not found")
    return alert


async def legacy_scope(services: Services, project_id: uuid.UUID) -> Scope:
    async with services.db.transaction(read_only=True) as tx:
        if await tx.projects.get(project_id) is None:
            raise NotFound("project not found")
    return Scope(project_id, None)


async def refuse_legacy_create(services: Services, project_id: uuid.UUID) -> None:
    """Whatever the body: new alerts go into an Application (an unknown project is 404)."""
    await legacy_scope(services, project_id)
    raise Conflict(
        "alerts of a legacy project can be read, edited and deleted, not created; create "
        "it inside an Application instead (POST /api/v1/applications/{app}/alerts)",
        code="legacy_read_only",
    )


async def list_alerts(services: Services, scope: Scope) -> list[Alert]:
    async with services.db.transaction(read_only=True) as tx:
        return await tx.alerts.list_for(scope.project_id, scope.application_id)


async def get_alert(services: Services, scope: Scope, alert_id: uuid.UUID) -> Alert:
    async with services.db.transaction(read_only=True) as tx:
        return await _get(tx, scope, alert_id)


async def create_alert(
    services: Services, actor: Actor, scope: Scope, body: dict[str, Any]
) -> Saved:
    now = services.clock.now()
    alert_event = AlertEvent(body["event"])
    async with services.db.transaction() as tx:
        channels, generated = await _channels(
            services, tx, scope.project_id, body.get("channels") or []
        )
        alert = Alert(
            id=new_id(),
            project_id=scope.project_id,
            application_id=scope.application_id,
            name=body["name"],
            event=alert_event,
            alert_before=_alert_before(alert_event, body.get("alert_before")),
            filters=_filters(body.get("filters") or []),
            channels=channels,
            created_at=now,
            updated_at=now,
        )
        await tx.alerts.add(alert)
        await tx.audit.add(_audit(scope, actor, now, "alert.created", alert))
    return Saved(alert, generated)


async def update_alert(
    services: Services, actor: Actor, scope: Scope, alert_id: uuid.UUID, body: dict[str, Any]
) -> Saved:
    """Change what the body names; `filters` and `channels` are replaced whole."""
    now = services.clock.now()
    async with services.db.transaction() as tx:
        before = await _get(tx, scope, alert_id)
        alert_event = AlertEvent(body["event"]) if "event" in body else before.event
        alert_before = body.get("alert_before", before.alert_before)
        if alert_event is not AlertEvent.EXPIRATION and "alert_before" not in body:
            alert_before = None
        generated: dict[int, str] = {}
        channels = before.channels
        if "channels" in body:
            channels, generated = await _channels(
                services, tx, scope.project_id, body["channels"] or [], before.channels
            )
            await _drop_secrets(tx, [c for c in before.channels if c not in channels])
        alert = replace(
            before,
            name=body.get("name", before.name),
            event=alert_event,
            alert_before=_alert_before(alert_event, alert_before),
            filters=_filters(body["filters"] or []) if "filters" in body else before.filters,
            channels=channels,
            updated_at=now,
        )
        stored = await tx.alerts.update(alert)
        if stored is None:
            raise NotFound("alert not found")
        await tx.audit.add(_audit(scope, actor, now, "alert.updated", stored))
    return Saved(stored, generated)


async def delete_alert(services: Services, actor: Actor, scope: Scope, alert_id: uuid.UUID) -> None:
    now = services.clock.now()
    async with services.db.transaction() as tx:
        alert = await _get(tx, scope, alert_id)
        await _drop_secrets(tx, list(alert.channels))
        await tx.alerts.delete(alert.id)
        await tx.audit.add(_audit(scope, actor, now, "alert.deleted", alert))


async def send_test(
    services: Services, actor: Actor, scope: Scope, alert_id: uuid.UUID
) -> list[Delivery]:
    """Queue one test delivery per channel (data.test true), about a sample certificate:
    the outbox and the workers send it like any other, so it tests them too."""
    now = services.clock.now()
    async with services.db.transaction() as tx:
        alert = await _get(tx, scope, alert_id)
        facts = CertificateFacts(
            id=uuid.UUID(int=0),
            serial="00",
            common_name="test.example.com",
            sans=("dns:test.example.com",),
            not_after=now + timedelta(days=30),
            profile="test",
            application=scope.application.slug if scope.application else None,
            project_id=scope.project_id,
        )
        made = deliveries_for(alert, alert.event, facts, now, new_id, test=True)
        await tx.deliveries.add_many(made)
        await tx.audit.add(_audit(scope, actor, now, "alert.tested", alert))
    return made


async def list_deliveries(
    services: Services, scope: Scope, alert_id: uuid.UUID, limit: int, offset: int
) -> Page[Delivery]:
    async with services.db.transaction(read_only=True) as tx:
        await _get(tx, scope, alert_id)
        return await tx.deliveries.list_for_alert(alert_id, limit, offset)
