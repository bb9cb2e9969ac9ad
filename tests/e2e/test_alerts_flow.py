"""Alerts against real `certgate serve` processes (issue 13), with a real webhook receiver
(signatures checked by `standardwebhooks`) and a real SMTP server (aiosmtpd, STARTTLS +
AUTH) in the test process on loopback:

* an ACME issuance by certbot and a REST revocation reach both the webhook and the email;
* a certificate with 10 days left triggers exactly one expiration alert across two
  gateway processes sharing PostgreSQL;
* a process killed (SIGKILL) after the issuance committed, while its send was unanswered,
  leaves the delivery to the next process, which delivers it once, same webhook-id.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Served, free_port, start_gateway, stop_gateway
from tests.e2e.test_acme_clients import _certbot, _need, _run
from tests.helpers.receivers import SmtpServer, WebhookReceiver

pytestmark = pytest.mark.e2e

EVENTS_ENV = {
    "CERTGATE_EVENTS__ALLOW_PRIVATE_TARGETS": "true",
    "CERTGATE_EVENTS__RETRY_BASE_S": "0.2",
    "CERTGATE_EVENTS__SEND_TIMEOUT_S": "1",
    "CERTGATE_EVENTS__SCAN_INTERVAL_S": "1",
}


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = await WebhookReceiver().start()
    yield server
    await server.stop()


class Api:
    def __init__(self, served: Served, session: aiohttp.ClientSession) -> None:
        self.base = served.base_url
        self.session = session
        self.headers = {"Authorization": f"Bearer {served.bootstrap['admin_token']}"}

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        async with self.session.request(
            method, self.base + path, json=body, headers=self.headers
        ) as resp:
            data = await resp.json()
            assert resp.status == status, data
            return data

    async def alert(self, receiver: WebhookReceiver, path: str, **kw: Any) -> dict[str, Any]:
        body = {
            "name": path,
            "channels": [{"type": "webhook", "url": f"{receiver.base}/{path}"}],
            **kw,
        }
        made = await self.call("POST", "/api/v1/applications/demo/alerts", body, 201)
        receiver.secrets[path] = made["channels"][0]["secret"]
        return made  # type: ignore[no-any-return]

    async def issue(self, name: str, **kw: Any) -> dict[str, Any]:
        path = "/api/v1/applications/demo/profiles/tls-server/certificates"
        return await self.call("POST", path, {"sans": [name], **kw}, 201)  # type: ignore[no-any-return]


def _gateway(tmp_path: Path, database_url: str, extra: dict[str, str]) -> Served:
    return start_gateway(tmp_path / "home", database_url, {**EVENTS_ENV, **extra})


def _clean_log(served: Served) -> None:
    assert "Traceback" not in served.log.read_text(), served.log.read_text()


async def test_acme_issuance_and_rest_revocation_reach_webhook_and_email(
    tmp_path: Path, database_url: str, receiver: WebhookReceiver, smtp_server: SmtpServer
) -> None:
    certbot = _need(_certbot(), "certbot")
    from tests.helpers.dnsserver import DnsServer

    dns = DnsServer().start()
    http01 = free_port()
    served = _gateway(
        tmp_path,
        database_url,
        {
            **smtp_server.environ(),
            "CERTGATE_ACME__HTTP01_PORT": str(http01),
            "CERTGATE_ACME__TLSALPN01_PORT": str(free_port()),
            "CERTGATE_ACME__RESOLVERS": dns.address,
        },
    )
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(served, session)
            email = {"type": "email", "to": ["ops@example.com"]}
            for event in ("issuance", "revocation"):
                hook = {"type": "webhook", "url": f"{receiver.base}/{event}"}
                made = await api.call(
                    "POST",
                    "/api/v1/applications/demo/alerts",
                    {"name": event, "event": event, "channels": [hook, email]},
                    201,
                )
                receiver.secrets[event] = made["channels"][0]["secret"]
            boot = served.bootstrap
            domain = "alerts-certbot.example.com"
            await asyncio.to_thread(
                _run,
                "acme_certbot.sh",
                boot["acme_directory"],
                http01,
                domain,
                {
                    "CERTBOT": certbot,
                    "EAB_KID": boot["acme_eab_kid"],
                    "EAB_HMAC": boot["acme_eab_hmac_key"],
                },
            )
            (issued,) = await receiver.wait_for("issuance")
            assert issued.verified and issued.body["type"] == "certificate.issuance"
            cert = issued.body["data"]["certificate"]
            assert cert["common_name"] == domain or f"dns:{domain}" in cert["sans"]
            (first_mail,) = await smtp_server.wait_for(1)
            assert domain in first_mail[2].get_body(("plain",)).get_content()

            await api.call(
                "POST",
                f"/api/v1/applications/demo/certificates/{cert['id']}/revoke",
                {"reason": "superseded"},
            )
            (revoked,) = await receiver.wait_for("revocation")
            assert revoked.verified and revoked.body["type"] == "certificate.revocation"
            assert revoked.body["data"]["certificate"]["id"] == cert["id"]
            mails = await smtp_server.wait_for(2)
            assert "was revoked" in str(mails[1][2]["Subject"])
    finally:
        stop_gateway(served)
        dns.stop()
    _clean_log(served)


@pytest.mark.postgresql_only
async def test_ten_days_left_one_expiration_alert_across_two_processes(
    tmp_path: Path, database_url: str, receiver: WebhookReceiver
) -> None:
    first = _gateway(tmp_path, database_url, {})
    second = start_gateway(tmp_path / "home", database_url, EVENTS_ENV)  # same DB, same key
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(first, session)
            await api.alert(receiver, "expiring", event="expiration", alert_before="30d")
            soon = await api.issue("ten-days.example.com", validity_days=10)
            await api.issue("sixty-days.example.com", validity_days=60)
            (got,) = await receiver.wait_for("expiring", timeout=30)
            # Several scan intervals in both processes: still one notification.
            await asyncio.sleep(4)
    finally:
        stop_gateway(second)
        stop_gateway(first)
    assert len(receiver.at("expiring")) == 1
    assert got.verified and got.body["data"]["certificate"]["id"] == soon["id"]
    assert got.body["data"]["days_left"] == 10
    _clean_log(first)
    _clean_log(second)


async def test_kill_9_after_commit_still_delivers_once_after_restart(
    tmp_path: Path, database_url: str, receiver: WebhookReceiver
) -> None:
    served = _gateway(tmp_path, database_url, {})
    async with aiohttp.ClientSession() as session:
        api = Api(served, session)
        await api.alert(receiver, "crash", event="issuance")
        receiver.hang.add("crash")  # the first attempt is never answered
        await api.issue("crash.example.com")  # committed, with its delivery
        async with asyncio.timeout(20):
            while not any(p == "crash" for p, _ in receiver.attempts):
                await asyncio.sleep(0.05)
    os.kill(served.process.pid, signal.SIGKILL)  # mid-send: no outcome recorded
    served.process.wait()
    receiver.hang.discard("crash")
    restarted = start_gateway(served.home, database_url, EVENTS_ENV)
    try:
        (got,) = await receiver.wait_for("crash", timeout=60)  # once its claim lapses
        await asyncio.sleep(2)
    finally:
        stop_gateway(restarted)
    assert got.verified and len(receiver.at("crash")) == 1
    ids = {i for p, i in receiver.attempts if p == "crash"}
    assert ids == {got.headers["webhook-id"]}  # the retry carried the same delivery id
    _clean_log(restarted)
