"""gateway.core.alerts: alert_before, retry delays, filters, payloads, scope; and the
outbound policy's rule for alert targets (gateway.core.outbound.target_allowed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.alerts import (
    MAX_RETRY_DELAY_S,
    Alert,
    AlertEvent,
    AlertFilter,
    CertificateFacts,
    Channel,
    ChannelType,
    FilterField,
    FilterOperator,
    alert_matches,
    deliveries_for,
    event_for,
    in_scope,
    parse_alert_before,
    retry_delay,
)
from gateway.core.outbound import target_allowed

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PROJECT, APP = uuid.uuid4(), uuid.uuid4()


@pytest.mark.parametrize(
    ("text", "days"),
    [
        pytest.param("30d", 30, id="ok/days"),
        pytest.param("2w", 14, id="ok/weeks"),
        pytest.param("3m", 90, id="ok/months"),
        pytest.param("1y", 365, id="ok/year"),
    ],
)
def test_alert_before(text: str, days: int) -> None:
    assert parse_alert_before(text) == timedelta(days=days)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("30", id="fail/no-unit"),
        pytest.param("30h", id="fail/hours"),
        pytest.param("d", id="fail/no-number"),
        pytest.param("-1d", id="fail/negative"),
        pytest.param("0d", id="fail/zero"),
        pytest.param("11y", id="fail/too-long"),
        pytest.param(" 30d", id="fail/space"),
    ],
)
def test_bad_alert_before(text: str) -> None:
    with pytest.raises(ValueError):
        parse_alert_before(text)


def test_retry_delay_doubles_with_jitter_and_is_capped() -> None:
    assert [retry_delay(30, n, 1.0) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(30, 2, 0.5) == 30 and retry_delay(30, 2, 1.5) == 90
    assert retry_delay(30, 50, 1.0) == MAX_RETRY_DELAY_S


def _facts(**kw: object) -> CertificateFacts:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "serial": "0a",
        "common_name": "API.example.com",
        "sans": ("dns:api.example.com", "ip:10.0.0.1"),
        "not_after": NOW + timedelta(days=10),
        "profile": "tls-server",
        "application": "demo",
        "project_id": PROJECT,
    }
    return CertificateFacts(**(values | kw))  # type: ignore[arg-type]


def _alert(*filters: AlertFilter, app: uuid.UUID | None = APP) -> Alert:
    channel = Channel(ChannelType.WEBHOOK, uuid.uuid4(), url="https://h.example.com")
    return Alert(
        uuid.uuid4(),
        PROJECT,
        app,
        "a",
        AlertEvent.ISSUANCE,
        None,
        filters,
        (channel, channel),
        NOW,
        NOW,
    )


def _never(pattern: str, value: str) -> bool:
    raise AssertionError("no regex here")


F, Op = FilterField, FilterOperator


@pytest.mark.parametrize(
    ("flt", "matches"),
    [
        pytest.param(
            AlertFilter(F.COMMON_NAME, Op.EQUALS, "api.example.com"), True, id="ok/eq-case"
        ),
        pytest.param(AlertFilter(F.COMMON_NAME, Op.CONTAINS, "EXAMPLE"), True, id="ok/contains"),
        pytest.param(AlertFilter(F.SAN, Op.STARTS_WITH, "api."), True, id="ok/san-value"),
        pytest.param(AlertFilter(F.SAN, Op.STARTS_WITH, "ip:"), True, id="ok/san-typed"),
        pytest.param(AlertFilter(F.SAN, Op.ENDS_WITH, ".0.1"), True, id="ok/san-ip"),
        pytest.param(AlertFilter(F.PROFILE, Op.EQUALS, "tls-server"), True, id="ok/profile"),
        pytest.param(AlertFilter(F.PROFILE, Op.EQUALS, "tls"), False, id="fail/profile"),
        pytest.param(AlertFilter(F.SAN, Op.ENDS_WITH, ".test"), False, id="fail/san"),
    ],
)
def test_filters(flt: AlertFilter, matches: bool) -> None:
    assert alert_matches(_alert(flt), _facts(), _never) is matches


def test_matches_is_delegated_and_all_filters_must_hold() -> None:
    seen: list[tuple[str, str]] = []

    def regex(pattern: str, value: str) -> bool:
        seen.append((pattern, value))
        return value == "api.example.com"

    flt = AlertFilter(F.SAN, Op.MATCHES, "^api")
    assert alert_matches(_alert(flt), _facts(), regex)
    assert seen[0] == ("^api", "api.example.com")
    other = AlertFilter(F.PROFILE, Op.EQUALS, "nope")
    assert not alert_matches(_alert(flt, other), _facts(), regex)
    assert alert_matches(_alert(), _facts(common_name=None), _never)  # no filter: all


def test_deliveries_one_per_channel_with_the_contract_body() -> None:
    ids = iter([uuid.UUID(int=1), uuid.UUID(int=2)])
    made = deliveries_for(_alert(), AlertEvent.REVOCATION, _facts(), NOW, lambda: next(ids))
    assert [d.channel_index for d in made] == [0, 1]
    body = made[0].payload
    assert body["type"] == "certificate.revocation" and body["id"] == str(uuid.UUID(int=1))
    assert body["timestamp"] == "2026-12-03T12:00:00Z"
    cert = body["data"]["certificate"]
    assert set(cert) == {"id", "serial", "common_name", "sans", "not_after", "profile"}
    assert body["data"]["application"] == "demo"


def test_scope_and_actions() -> None:
    assert in_scope(_alert(), PROJECT, APP) and not in_scope(_alert(), PROJECT, None)
    legacy = _alert(app=None)
    assert in_scope(legacy, PROJECT, None) and not in_scope(legacy, PROJECT, APP)
    assert not in_scope(legacy, uuid.uuid4(), None)
    assert event_for("certificate.renewed") is AlertEvent.RENEWAL
    assert event_for("certificate.issued") is AlertEvent.ISSUANCE
    assert event_for("member.added") is None


@pytest.mark.parametrize(
    ("address", "private", "allowed"),
    [
        pytest.param("93.184.216.34", False, True, id="ok/public-v4"),
        pytest.param("2606:4700::1111", False, True, id="ok/public-v6"),
        pytest.param("127.0.0.1", False, False, id="fail/loopback"),
        pytest.param("10.1.2.3", False, False, id="fail/private"),
        pytest.param("169.254.169.254", False, False, id="fail/metadata"),
        pytest.param("100.64.0.1", False, False, id="fail/shared"),
        pytest.param("::ffff:127.0.0.1", False, False, id="fail/mapped-loopback"),
        pytest.param("64:ff9b::a01:203", False, False, id="fail/nat64-private"),
        pytest.param("127.0.0.1", True, True, id="ok/loopback-allowed"),
        pytest.param("10.1.2.3", True, True, id="ok/private-allowed"),
        pytest.param("0.0.0.0", True, False, id="fail/unspecified-always"),
        pytest.param("224.0.0.1", True, False, id="fail/multicast-always"),
    ],
)
def test_target_allowed(address: str, private: bool, allowed: bool) -> None:
    assert target_allowed(address, private) is allowed
