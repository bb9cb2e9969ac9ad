"""Alerts (issue 13): what an Application (or a legacy project) wants to hear about its
certificates, and the pure rules of delivering it.

An alert names one event (expiration, issuance, renewal, revocation), filters on the
certificate and up to MAX_CHANNELS channels. Each event an alert matches becomes one
*delivery* per channel: a row of the durable outbox (store.tables_events), written in the
transaction of the change that caused it and sent by the workers of gateway.events. The
rules here (alert_before, filters, retry delays, the notice marks of expiry scans, the
payload) have no I/O so that they are unit-tested alone.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

MAX_CHANNELS = 10
MAX_FILTERS = 20
# Attempts of one delivery before it is marked failed (the first one included).
MAX_ATTEMPTS = 8
# Retry delays stop doubling here: a receiver that is down for a day is retried hourly.
MAX_RETRY_DELAY_S = 3600.0

ALERT_BEFORE = re.compile(r"^[0-9]+[dwmy]$")
# Calendar-free units: a month is 30 days, a year 365 (what "3m before expiry" means to
# an operator; the exact calendar month would move the threshold by a day or two).
_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}
# No threshold past ten years: longer than any certificate we issue, and small enough that
# now + threshold stays inside datetime's range.
_MAX_ALERT_BEFORE_DAYS = 3650


class AlertEvent(enum.StrEnum):
    EXPIRATION = "expiration"
    ISSUANCE = "issuance"
    RENEWAL = "renewal"
    REVOCATION = "revocation"

    @property
    def type(self) -> str:
        """The webhook body's `type` (DESIGN.md Contract: "certificate.<event>")."""
        return f"certificate.{self.value}"


class FilterField(enum.StrEnum):
    COMMON_NAME = "common_name"
    PROFILE = "profile"
    SAN = "san"


class FilterOperator(enum.StrEnum):
    EQUALS = "equals"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    MATCHES = "matches"


class ChannelType(enum.StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class AlertFilter:
    field: FilterField
    operator: FilterOperator
    value: str


@dataclass(frozen=True)
class Channel:
    """One destination. A webhook's signing secret is not here: it lives encrypted in the
    `secrets` table, under `secret_owner(channel_id)`."""

    type: ChannelType
    id: uuid.UUID
    url: str | None = None
    to: tuple[str, ...] = ()
    routing_key: str | None = None


@dataclass(frozen=True)
class Alert:
    id: uuid.UUID
    project_id: uuid.UUID
    # None: a legacy project's alert, firing for certificates issued through the legacy
    # profile endpoints of `project_id` (those have no application either).
    application_id: uuid.UUID | None
    name: str
    event: AlertEvent
    alert_before: str | None
    filters: tuple[AlertFilter, ...]
    channels: tuple[Channel, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Delivery:
    """One send of one event to one channel of one alert. `id` is the stable delivery id
    (the webhook-id header and the body's `id`): the same on every attempt, so receivers
    can drop duplicates."""

    id: uuid.UUID
    alert_id: uuid.UUID
    channel_index: int
    event_type: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CertificateFacts:
    """What filters and messages see of a certificate."""

    id: uuid.UUID
    serial: str
    common_name: str | None
    sans: tuple[str, ...]  # typed, as stored: "dns:example.com", "ip:…"
    not_after: datetime
    profile: str
    application: str | None
    project_id: uuid.UUID
    revocation_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def secret_owner(channel_id: uuid.UUID) -> str:
    """The `secrets.owner` of a webhook channel's signing secret."""
    return f"alert-channel:{channel_id}"


WEBHOOK_SECRET_PURPOSE = "webhook_secret"


def parse_alert_before(text: str) -> timedelta:
    """ "30d", "2w", "3m", "1y" -> how long before expiry the alert fires. ValueError
    otherwise (the REST layer turns it into a 400 naming the field)."""
    if not ALERT_BEFORE.fullmatch(text):
        raise ValueError("alert_before must be a number followed by d, w, m or y (e.g. 30d)")
    days = int(text[:-1]) * _UNIT_DAYS[text[-1]]
    if not 0 < days <= _MAX_ALERT_BEFORE_DAYS:
        raise ValueError(f"alert_before must be between 1d and {_MAX_ALERT_BEFORE_DAYS}d")
    return timedelta(days=days)


def retry_delay(base_s: float, attempts: int, jitter: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base, 2·base, 4·base …
    capped, times `jitter` (a random factor in [0.5, 1.5) chosen by the caller, so that
    deliveries failing together do not come back together)."""
    exponent = min(max(attempts - 1, 0), 30)
    return float(min(base_s * (2**exponent), MAX_RETRY_DELAY_S) * jitter)


def threshold_mark(alert_before: str) -> str:
    """The expiry notice of the first crossing of an alert's threshold."""
    return f"threshold:{alert_before}"


def day_mark(day: date) -> str:
    """The daily reminder of one (UTC) day."""
    return f"day:{day.isoformat()}"


def _values(facts: CertificateFacts, name: FilterField) -> list[str]:
    if name is FilterField.COMMON_NAME:
        return [facts.common_name or ""]
    if name is FilterField.PROFILE:
        return [facts.profile]
    # A SAN matches by its value ("example.com"), and by its typed form ("dns:example.com").
    return [v for san in facts.sans for v in (san.partition(":")[2] or san, san)]


RegexMatch = Callable[[str, str], bool]


def filter_matches(flt: AlertFilter, facts: CertificateFacts, regex: RegexMatch) -> bool:
    """Whether one filter holds. Comparisons ignore case (names are case-insensitive);
    `matches` is delegated to `regex(pattern, value)`, which bounds its time."""
    for value in _values(facts, flt.field):
        if flt.operator is FilterOperator.MATCHES:
            if regex(flt.value, value):
                return True
            continue
        left, right = value.lower(), flt.value.lower()
        if flt.operator is FilterOperator.EQUALS and left == right:
            return True
        if flt.operator is FilterOperator.CONTAINS and right in left:
            return True
        if flt.operator is FilterOperator.STARTS_WITH and left.startswith(right):
            return True
        if flt.operator is FilterOperator.ENDS_WITH and left.endswith(right):
            return True
    return False


def alert_matches(alert: Alert, facts: CertificateFacts, regex: RegexMatch) -> bool:
    """Every filter must hold (none: every certificate matches)."""
    return all(filter_matches(f, facts, regex) for f in alert.filters)


def event_for(action: str) -> AlertEvent | None:
    """The alert event of an audit action, None for actions no alert listens to."""
    return {
        "certificate.issued": AlertEvent.ISSUANCE,
        "certificate.renewed": AlertEvent.RENEWAL,
        "certificate.revoked": AlertEvent.REVOCATION,
    }.get(action)


def payload(
    delivery_id: uuid.UUID,
    event: AlertEvent,
    at: datetime,
    facts: CertificateFacts,
    *,
    alert_name: str,
    test: bool = False,
) -> dict[str, Any]:
    """The webhook body (DESIGN.md Contract), kept in the delivery row: every channel
    renders its own message from it, and every attempt sends the same bytes."""
    certificate: dict[str, Any] = {
        "id": str(facts.id),
        "serial": facts.serial,
        "common_name": facts.common_name,
        "sans": list(facts.sans),
        "not_after": facts.not_after.isoformat().replace("+00:00", "Z"),
        "profile": facts.profile,
    }
    if facts.revocation_reason is not None:
        certificate["revocation_reason"] = facts.revocation_reason
    data: dict[str, Any] = {
        "application": facts.application,
        "certificate": certificate,
        "alert": alert_name,
        "project_id": str(facts.project_id),
        **facts.extra,
    }
    if test:
        data["test"] = True
    return {
        "type": event.type,
        "id": str(delivery_id),
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def deliveries_for(
    alert: Alert,
    event: AlertEvent,
    facts: CertificateFacts,
    now: datetime,
    new_id: Callable[[], uuid.UUID],
    *,
    test: bool = False,
) -> list[Delivery]:
    """One pending delivery per channel, due now."""
    made = []
    for index, _channel in enumerate(alert.channels):
        delivery_id = new_id()
        made.append(
            Delivery(
                id=delivery_id,
                alert_id=alert.id,
                channel_index=index,
                event_type=event.type,
                payload=payload(delivery_id, event, now, facts, alert_name=alert.name, test=test),
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                last_error=None,
                created_at=now,
                updated_at=now,
            )
        )
    return made


def in_scope(alert: Alert, project_id: uuid.UUID, application_id: uuid.UUID | None) -> bool:
    """An application's alert hears its certificates; a legacy alert its project's
    certificates issued through legacy endpoints (no application)."""
    if alert.application_id is not None:
        return alert.application_id == application_id
    return application_id is None and alert.project_id == project_id


def channel_types() -> Sequence[str]:
    return [c.value for c in ChannelType]
