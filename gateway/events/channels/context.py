"""What every channel needs to send: the HTTP session, the SMTP settings, the policy."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from gateway.config import SmtpConfig


@dataclass(frozen=True)
class ChannelContext:
    http: aiohttp.ClientSession
    smtp: SmtpConfig
    allow_private: bool
    timeout_s: float
    # A webhook channel's signing secret ("whsec_…"), decrypted: (project id, channel id).
    webhook_secret: Callable[[uuid.UUID, uuid.UUID], Awaitable[str]]
    project_id: uuid.UUID
