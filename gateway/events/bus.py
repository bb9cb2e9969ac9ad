"""After-commit event fan-out (DESIGN.md: events run after the store commits).

Subscribers are best-effort: a failing subscriber is logged and never fails the request
whose transaction has already committed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from gateway.core.model import AuditEvent

log = logging.getLogger(__name__)

Subscriber = Callable[[AuditEvent], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, event: AuditEvent) -> None:
        for subscriber in self._subscribers:
            try:
                await subscriber(event)
            except Exception:
                log.exception("event subscriber failed for %s %s", event.action, event.target_id)
