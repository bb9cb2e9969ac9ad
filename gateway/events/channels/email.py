"""Email alerts over SMTP (CERTGATE_SMTP__*): STARTTLS (RFC 3207) before AUTH, the
server's certificate verified; a plain-text and an HTML part with the same facts."""

from __future__ import annotations

import asyncio
import html
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from gateway.core.alerts import Channel, Delivery
from gateway.events.channels import render
from gateway.events.channels.context import ChannelContext
from gateway.events.outbound_http import DeliveryError


def message(sender: str, to: tuple[str, ...], delivery: Delivery) -> EmailMessage:
    payload = delivery.payload
    rows = render.facts(payload)
    msg = EmailMessage()
    msg["Subject"] = "[certgate] " + render.summary(payload)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    # Stable per delivery: a retried message is recognizably the same one.
    msg["Message-ID"] = make_msgid(idstring=delivery.id.hex, domain="certgate")
    msg["X-Certgate-Delivery-Id"] = str(delivery.id)
    width = max(len(label) for label, _ in rows)
    text = [render.summary(payload), ""]
    text += [f"{label + ':':<{width + 1}} {value}" for label, value in rows]
    msg.set_content("\n".join(text) + "\n")
    cells = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    msg.add_alternative(
        f"<html><body><p>{html.escape(render.summary(payload))}</p>"
        f"<table>{cells}</table></body></html>",
        subtype="html",
    )
    return msg


def _tls_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file or None)


async def send(ctx: ChannelContext, channel: Channel, delivery: Delivery) -> str:
    smtp = ctx.smtp
    if not smtp.host:
        raise DeliveryError("SMTP is not configured (CERTGATE_SMTP__HOST)")
    if not channel.to:
        raise DeliveryError("email channel without recipients", permanent=True)
    msg = message(smtp.from_, channel.to, delivery)
    try:
        # aiosmtplib times each command; the whole exchange must stay inside the
        # Dispatcher's claim on the delivery too.
        async with asyncio.timeout(2 * ctx.timeout_s):
            await aiosmtplib.send(
                msg,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username or None,
                password=smtp.password or None,
                # STARTTLS required when configured (never silently sent in the clear),
                # off otherwise: aiosmtplib's default would upgrade opportunistically.
                start_tls=smtp.starttls,
                tls_context=_tls_context(smtp.ca_file) if smtp.starttls else None,
                timeout=smtp.timeout_s,
            )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
        raise DeliveryError(f"SMTP {smtp.host}:{smtp.port}: {err}") from None
    return f"mailed {len(channel.to)} recipient(s)"
