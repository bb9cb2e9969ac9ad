"""The RFC 8737 §3 certificate check of the tls-alpn-01 validator, and the pure rules for
approval outcomes (RFC 8555 §7.1.6) and stuck validations."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from gateway.core.acme import (
    ApprovalOutcome,
    Challenge,
    ChallengeStatus,
    ChallengeType,
    Identifier,
    IdentifierType,
    OrderStatus,
    challenge_stuck,
    order_after_approval,
)
from gateway.core.model import RequestState
from protocols.acme.validators import ValidationFailed, _check_alpn_certificate
from tests.helpers.acmeharness import alpn_certificate

KEY_AUTH = "token.thumbprint"
DNS = Identifier(IdentifierType.DNS, "a.example.com")
IP = Identifier(IdentifierType.IP, "192.0.2.7")


def _cert(name: str, **kwargs: object) -> x509.Certificate:
    pem, _key = alpn_certificate(name, KEY_AUTH, **kwargs)  # type: ignore[arg-type]
    return x509.load_pem_x509_certificate(pem)


@pytest.mark.parametrize(
    ("identifier", "kwargs", "failure"),
    [
        pytest.param(DNS, {}, None, id="ok/dns"),
        pytest.param(IP, {}, None, id="ok/ip"),
        pytest.param(DNS, {"sans": ["A.Example.COM"]}, None, id="ok/dns-case-insensitive"),
        pytest.param(
            DNS,
            {"digest": hashlib.sha256(b"other").digest()},
            "incorrectResponse",
            id="fail/wrong-digest",
        ),
        pytest.param(DNS, {"digest": b"short"}, "incorrectResponse", id="fail/short-digest"),
        pytest.param(DNS, {"with_extension": False}, "unauthorized", id="fail/no-extension"),
        pytest.param(DNS, {"critical": False}, "unauthorized", id="fail/non-critical"),
        pytest.param(DNS, {"sans": []}, "unauthorized", id="fail/no-san"),
        pytest.param(
            DNS, {"sans": ["a.example.com", "b.example.com"]}, "unauthorized", id="fail/two-sans"
        ),
        pytest.param(DNS, {"sans": ["b.example.com"]}, "unauthorized", id="fail/other-name"),
        pytest.param(IP, {"sans": ["192.0.2.8"]}, "unauthorized", id="fail/other-ip"),
    ],
)
def test_alpn_certificate(
    identifier: Identifier, kwargs: dict[str, object], failure: str | None
) -> None:
    cert = _cert(identifier.value, **kwargs)
    if failure is None:
        _check_alpn_certificate(cert, identifier, KEY_AUTH)
        return
    with pytest.raises(ValidationFailed) as err:
        _check_alpn_certificate(cert, identifier, KEY_AUTH)
    assert err.value.kind == failure


def test_fail_alpn_ip_spelled_as_dns_name() -> None:
    """RFC 8738 §6: an IP identifier needs an iPAddress SAN, not a dNSName spelling it."""
    cert = _cert(IP.value, general_names=[x509.DNSName(IP.value)])
    with pytest.raises(ValidationFailed) as err:
        _check_alpn_certificate(cert, IP, KEY_AUTH)
    assert err.value.kind == "unauthorized"


CERT = uuid.uuid4()


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [
        pytest.param(
            ApprovalOutcome(RequestState.OPEN), OrderStatus.PROCESSING, None, id="ok/open"
        ),
        pytest.param(
            ApprovalOutcome(RequestState.APPROVED),
            OrderStatus.PROCESSING,
            None,
            id="ok/approved-not-yet-issued",
        ),
        pytest.param(
            ApprovalOutcome(RequestState.ISSUED, CERT), OrderStatus.VALID, None, id="ok/issued"
        ),
        pytest.param(
            ApprovalOutcome(RequestState.ISSUED),
            OrderStatus.PROCESSING,
            None,
            id="ok/issued-without-certificate-waits",
        ),
        pytest.param(
            ApprovalOutcome(RequestState.REJECTED, comment="not ours"),
            OrderStatus.INVALID,
            "the certificate request was rejected: not ours",
            id="fail/rejected",
        ),
        pytest.param(
            ApprovalOutcome(RequestState.EXPIRED),
            OrderStatus.INVALID,
            "the certificate request was expired",
            id="fail/expired",
        ),
        pytest.param(
            ApprovalOutcome(RequestState.CANCELLED),
            OrderStatus.INVALID,
            "the certificate request was cancelled",
            id="fail/cancelled",
        ),
        pytest.param(
            ApprovalOutcome(None),
            OrderStatus.INVALID,
            "the certificate request was withdrawn",
            id="fail/missing",
        ),
    ],
)
def test_order_after_approval(
    outcome: ApprovalOutcome, status: OrderStatus, error: str | None
) -> None:
    got_status, got_error = order_after_approval(outcome)
    assert got_status is status
    assert (got_error.detail if got_error else None) == error
    if got_error is not None:
        assert got_error.type == "unauthorized"


NOW = datetime(2026, 1, 1, tzinfo=UTC)
BOUND = timedelta(minutes=5)


def _challenge(status: ChallengeStatus, started: datetime | None) -> Challenge:
    return Challenge(
        uuid.uuid4(), uuid.uuid4(), ChallengeType.HTTP_01, "t", status, None, None, started
    )


@pytest.mark.parametrize(
    ("challenge", "stuck"),
    [
        pytest.param(
            _challenge(ChallengeStatus.PROCESSING, NOW - BOUND), True, id="ok/at-the-bound"
        ),
        pytest.param(
            _challenge(ChallengeStatus.PROCESSING, None), True, id="ok/no-start-time-pre-0006"
        ),
        pytest.param(
            _challenge(ChallengeStatus.PROCESSING, NOW - BOUND + timedelta(seconds=1)),
            False,
            id="fail/still-running",
        ),
        pytest.param(
            _challenge(ChallengeStatus.VALID, NOW - timedelta(days=1)), False, id="fail/valid"
        ),
        pytest.param(_challenge(ChallengeStatus.PENDING, None), False, id="fail/pending"),
    ],
)
def test_challenge_stuck(challenge: Challenge, stuck: bool) -> None:
    assert challenge_stuck(challenge, NOW, BOUND) is stuck
