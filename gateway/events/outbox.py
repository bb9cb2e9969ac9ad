"""The alerts' outbox writer: the enrollment core's in-transaction port
(gateway.core.ports.EventOutbox) and the expiry scan both end here, inserting one pending
delivery per matching alert and channel in the caller's transaction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from gateway.core.alerts import (
    Alert,
    AlertEvent,
    CertificateFacts,
    Delivery,
    alert_matches,
    deliveries_for,
    event_for,
)
from gateway.core.model import AuditEvent, Certificate, new_id
from gateway.core.ports import Clock
from gateway.events.filters import regex_search
from store.db import Tx


def certificate_facts(
    certificate: Certificate,
    profile: str,
    application: str | None,
    *,
    now: datetime | None = None,
) -> CertificateFacts:
    extra = {}
    if now is not None:
        # Whole days left, rounded up: "expires in 10 days" for 9 days and 23 hours.
        extra["days_left"] = max(
            0, math.ceil((certificate.not_after - now).total_seconds() / 86400)
        )
    reason = certificate.revocation_reason
    return CertificateFacts(
        id=certificate.id,
        serial=certificate.serial,
        common_name=certificate.common_name,
        sans=certificate.sans,
        not_after=certificate.not_after,
        profile=profile,
        application=application,
        project_id=certificate.project_id,
        revocation_reason=reason.value if reason is not None else None,
        extra=extra,
    )


def matching_deliveries(
    alerts: Sequence[Alert], event: AlertEvent, facts: CertificateFacts, now: datetime
) -> list[Delivery]:
    return [
        delivery
        for alert in alerts
        if alert_matches(alert, facts, regex_search)
        for delivery in deliveries_for(alert, event, facts, now, new_id)
    ]


class AlertOutbox:
    """Implements gateway.core.ports.EventOutbox[Tx]."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def record(self, uow: Tx, event: AuditEvent, certificate: Certificate) -> None:
        alert_event = event_for(event.action)
        if alert_event is None:
            return
        alerts = await uow.alerts.listening(
            alert_event, certificate.project_id, certificate.application_id
        )
        if not alerts:  # the usual case: one indexed query, nothing else
            return
        profile = await uow.profiles.get(certificate.profile_id)
        app = (
            await uow.applications.get(certificate.application_id)
            if certificate.application_id is not None
            else None
        )
        facts = certificate_facts(
            certificate, profile.slug if profile else "", app.slug if app else None
        )
        await uow.deliveries.add_many(
            matching_deliveries(alerts, alert_event, facts, self._clock.now())
        )
