"""Webhooks signed per the Standard Webhooks specification (DESIGN.md Contract):

    webhook-id: <delivery id>            the same on every attempt: receivers drop duplicates
    webhook-timestamp: <unix seconds>    of this attempt: receivers refuse stale replays
    webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">

keyed by the base64-decoded part of the secret after `whsec_`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from gateway.core.alerts import Channel, Delivery
from gateway.events.channels.context import ChannelContext
from gateway.events.outbound_http import DeliveryError, post_json

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret; ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError(f"a webhook secret is {SECRET_PREFIX} and base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return key


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }


async def send(ctx: ChannelContext, channel: Channel, delivery: Delivery) -> str:
    if channel.url is None:
        raise DeliveryError("webhook channel without a url", permanent=True)
    try:
        secret = await ctx.webhook_secret(ctx.project_id, channel.id)
    except LookupError as err:
        # Retried, not failed: the alert read may be a moment old (the Dispatcher's cache)
        # and the channel just replaced; the next attempt reads it afresh.
        raise DeliveryError(str(err)) from None
    body = body_bytes(delivery.payload)
    sent = headers(secret, str(delivery.id), int(time.time()), body)
    status = await post_json(
        ctx.http,
        channel.url,
        body,
        sent,
        allow_private=ctx.allow_private,
        timeout_s=ctx.timeout_s,
    )
    return f"webhook answered {status}"
