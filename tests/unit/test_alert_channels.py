"""Alert channel formats, checked against outside references: webhook signatures by the
`standardwebhooks` package; Slack and PagerDuty bodies by their documented shapes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.core.alerts import (
    Alert,
    AlertEvent,
    CertificateFacts,
    Channel,
    ChannelType,
    deliveries_for,
)
from gateway.events.channels import chat, email, webhook
from gateway.events.filters import UnsafePattern, check_pattern, regex_search
from gateway.events.outbound_http import DeliveryError, check_url

NOW = datetime.now(UTC)


def _delivery(event: AlertEvent = AlertEvent.EXPIRATION) -> object:
    facts = CertificateFacts(
        uuid.uuid4(),
        "0abc",
        "www.example.com",
        ("dns:www.example.com",),
        NOW + timedelta(days=9),
        "tls-server",
        "demo",
        uuid.uuid4(),
        extra={"days_left": 9},
    )
    channel = Channel(ChannelType.WEBHOOK, uuid.uuid4(), url="https://h.example.com")
    alert = Alert(uuid.uuid4(), uuid.uuid4(), None, "ops", event, "30d", (), (channel,), NOW, NOW)
    return deliveries_for(alert, event, facts, NOW, uuid.uuid4)[0]


def test_signature_verifies_with_the_reference_library() -> None:
    secret = webhook.new_secret()
    delivery = _delivery()
    body = webhook.body_bytes(delivery.payload)  # type: ignore[attr-defined]
    # The time of sending, not the module's NOW: the reference library refuses a timestamp
    # more than 5 minutes old, and a long run imports this module well before the test runs.
    sent = int(datetime.now(UTC).timestamp())
    headers = webhook.headers(secret, str(delivery.id), sent, body)  # type: ignore[attr-defined]
    assert Webhook(secret).verify(body, headers)["type"] == "certificate.expiration"
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)


@pytest.mark.parametrize("secret", ["whsec_short", "sk_" + "A" * 44, "whsec_!!!!"])
def test_bad_secrets(secret: str) -> None:
    with pytest.raises(ValueError):
        webhook.secret_key(secret)


def test_slack_and_pagerduty_bodies() -> None:
    delivery = _delivery(AlertEvent.REVOCATION)
    slack = chat.slack_message(delivery)  # type: ignore[arg-type]
    assert "www.example.com" in slack["text"] and "was revoked" in slack["text"]
    assert slack["blocks"][1]["text"]["type"] == "mrkdwn"
    event = chat.pagerduty_event("R0UTING", delivery)  # type: ignore[arg-type]
    assert event["routing_key"] == "R0UTING" and event["event_action"] == "trigger"
    assert event["dedup_key"] == str(delivery.id)  # type: ignore[attr-defined]
    assert event["payload"]["severity"] == "warning" and event["payload"]["source"] == "certgate"


def test_email_has_text_and_html_with_the_facts() -> None:
    msg = email.message("certgate@example.com", ("ops@example.com",), _delivery())  # type: ignore[arg-type]
    assert "expires in 9 days" in str(msg["Subject"])
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for fact in ("www.example.com", "0abc", "demo", "tls-server"):
        assert fact in text and fact in html


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x.example.com/",
        "http:///nohost",
        "http://127.0.0.1/",
        "http://localhost:8/",
        "http://[::1]/",
        "http://169.254.169.254/latest",
    ],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(DeliveryError) as info:
        check_url(url, allow_private=False)
    assert info.value.permanent


def test_private_urls_pass_when_allowed() -> None:
    assert check_url("http://127.0.0.1:9/x", allow_private=True).port == 9


def test_patterns() -> None:
    check_pattern(r"^api\d+\.example\.com$")
    for bad in ("(a+)+$", "(x|xy)*", r"(\d*)*", r"(a)\1", "(", "a" * 300):
        with pytest.raises(UnsafePattern):
            check_pattern(bad)
    assert regex_search("^API", "api.example.com")
    # Whatever passes the static check still runs under a time bound.
    assert regex_search("(a|aa)+$", "a" * 5)
