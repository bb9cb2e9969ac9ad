"""Slack (incoming-webhook message) and PagerDuty (Events API v2) channels."""

from __future__ import annotations

import json
from typing import Any

from gateway.core.alerts import Channel, Delivery
from gateway.events.channels import render
from gateway.events.channels.context import ChannelContext
from gateway.events.outbound_http import DeliveryError, post_json

# PagerDuty's Events API v2 endpoint, what a channel's `url` usually is.
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
# PagerDuty severities by event: an expiring or revoked certificate wants attention.
_SEVERITY = {
    "certificate.expiration": "warning",
    "certificate.revocation": "warning",
    "certificate.issuance": "info",
    "certificate.renewal": "info",
}


def slack_message(delivery: Delivery) -> dict[str, Any]:
    """https://api.slack.com/messaging/webhooks: `text` (the notification's fallback)
    plus a section block listing the facts."""
    payload = delivery.payload
    lines = "\n".join(f"*{label}:* {value}" for label, value in render.facts(payload))
    return {
        "text": render.summary(payload),
        "blocks": [
            {"type": "section", "text": {"type": "plain_text", "text": render.summary(payload)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": lines}},
        ],
    }


def pagerduty_event(routing_key: str, delivery: Delivery) -> dict[str, Any]:
    """Events API v2 trigger. dedup_key is the delivery id, so a retried attempt is the
    same incident, not a new one."""
    payload = delivery.payload
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": str(delivery.id),
        "payload": {
            "summary": render.summary(payload)[:1024],
            "source": "certgate",
            "severity": _SEVERITY.get(delivery.event_type, "info"),
            "timestamp": payload.get("timestamp"),
            "component": (payload.get("data", {}).get("certificate") or {}).get("common_name"),
            "group": payload.get("data", {}).get("application"),
            "class": delivery.event_type,
            "custom_details": dict(render.facts(payload)),
        },
    }


async def send_slack(ctx: ChannelContext, channel: Channel, delivery: Delivery) -> str:
    if channel.url is None:
        raise DeliveryError("slack channel without a url", permanent=True)
    body = json.dumps(slack_message(delivery)).encode()
    status = await post_json(
        ctx.http, channel.url, body, {}, allow_private=ctx.allow_private, timeout_s=ctx.timeout_s
    )
    return f"slack answered {status}"


async def send_pagerduty(ctx: ChannelContext, channel: Channel, delivery: Delivery) -> str:
    if not channel.routing_key or not channel.url:
        raise DeliveryError("pagerduty channel without a routing_key or url", permanent=True)
    body = json.dumps(pagerduty_event(channel.routing_key, delivery)).encode()
    status = await post_json(
        ctx.http,
        channel.url,
        body,
        {},
        allow_private=ctx.allow_private,
        timeout_s=ctx.timeout_s,
    )
    return f"pagerduty answered {status}"
