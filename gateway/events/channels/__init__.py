"""Alert channels: each renders a delivery's payload (gateway.core.alerts.payload) in its
own format and sends it. `send` picks the channel's sender; every sender raises
gateway.events.outbound_http.DeliveryError for a failed attempt."""

from __future__ import annotations

from gateway.core.alerts import Channel, ChannelType, Delivery
from gateway.events.channels import chat, email, webhook
from gateway.events.channels.context import ChannelContext

__all__ = ["ChannelContext", "send"]


async def send(ctx: ChannelContext, channel: Channel, delivery: Delivery) -> str:
    """One attempt; a short description of the outcome (kept nowhere, logged)."""
    if channel.type is ChannelType.WEBHOOK:
        return await webhook.send(ctx, channel, delivery)
    if channel.type is ChannelType.EMAIL:
        return await email.send(ctx, channel, delivery)
    if channel.type is ChannelType.SLACK:
        return await chat.send_slack(ctx, channel, delivery)
    return await chat.send_pagerduty(ctx, channel, delivery)
