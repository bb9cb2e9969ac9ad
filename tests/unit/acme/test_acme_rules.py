"""Pure RFC 8555 state rules of gateway.core.acme."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.core.acme import (
    AuthzStatus,
    ChallengeType,
    Identifier,
    IdentifierType,
    Order,
    OrderStatus,
    challenge_types_for,
    csr_mismatch,
    dns01_record_name,
    dns01_txt_value,
    order_status,
)
from gateway.core.outbound import address_allowed

NOW = datetime(2026, 1, 1, tzinfo=UTC)
D = IdentifierType.DNS
P, V, BAD = AuthzStatus.PENDING, AuthzStatus.VALID, AuthzStatus.INVALID


def _order(status: OrderStatus = OrderStatus.PENDING, expires: datetime | None = None) -> Order:
    return Order(
        id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        status=status,
        identifiers=(Identifier(D, "a.test"),),
        authorization_ids=(),
        expires=expires or NOW + timedelta(days=1),
        not_before=None,
        not_after=None,
        error=None,
        certificate_id=None,
        request_id=None,
        replaces=None,
        created_at=NOW,
    )


@pytest.mark.parametrize(
    ("statuses", "current", "expires", "expected"),
    [
        pytest.param([P, V], OrderStatus.PENDING, None, OrderStatus.PENDING, id="ok/some-pending"),
        pytest.param([V, V], OrderStatus.PENDING, None, OrderStatus.READY, id="ok/all-valid-ready"),
        pytest.param([V, BAD], OrderStatus.PENDING, None, OrderStatus.INVALID, id="fail/bad"),
        pytest.param(
            [V, AuthzStatus.DEACTIVATED],
            OrderStatus.READY,
            None,
            OrderStatus.INVALID,
            id="fail/deactivated",
        ),
        pytest.param([P], OrderStatus.PENDING, NOW, OrderStatus.INVALID, id="fail/expired"),
        pytest.param([V], OrderStatus.PROCESSING, None, OrderStatus.PROCESSING, id="ok/sticky"),
        pytest.param([BAD], OrderStatus.VALID, None, OrderStatus.VALID, id="ok/valid-stays"),
    ],
)
def test_order_status(statuses, current, expires, expected) -> None:  # type: ignore[no-untyped-def]
    assert order_status(_order(current, expires), statuses, NOW) is expected


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        pytest.param(Identifier(D, "a.test"), list(ChallengeType), id="ok/dns-all"),
        pytest.param(Identifier(D, "*.a.test"), [ChallengeType.DNS_01], id="ok/wildcard-dns01"),
        pytest.param(
            Identifier(IdentifierType.IP, "127.0.0.1"),
            [ChallengeType.HTTP_01, ChallengeType.TLS_ALPN_01],
            id="ok/ip-no-dns01",
        ),
    ],
)
def test_challenge_types(identifier: Identifier, expected: list[ChallengeType]) -> None:
    assert challenge_types_for(identifier, list(ChallengeType)) == expected


@pytest.mark.parametrize(
    ("address", "networks", "allowed"),
    [
        pytest.param("10.1.2.3", ["0.0.0.0/0"], True, id="ok/private-by-default-route"),
        pytest.param("127.0.0.1", ["0.0.0.0/0"], False, id="fail/loopback-needs-explicit"),
        pytest.param("127.0.0.1", ["127.0.0.0/8"], True, id="ok/loopback-explicit"),
        pytest.param("::1", ["::/0"], False, id="fail/v6-loopback"),
        pytest.param("192.0.2.1", ["10.0.0.0/8"], False, id="fail/outside"),
    ],
)
def test_address_allowed(address: str, networks: list[str], allowed: bool) -> None:
    assert address_allowed(address, networks) is allowed


def _csr(names: list[str], cn: str | None = None) -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
    )
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("names", "cn", "order", "ok"),
    [
        pytest.param(["a.test"], None, ["a.test"], True, id="ok/exact"),
        pytest.param(["A.test"], "a.test", ["a.test"], True, id="ok/case-and-cn"),
        pytest.param(["a.test", "b.test"], None, ["a.test"], False, id="fail/extra"),
        pytest.param(["a.test"], None, ["a.test", "b.test"], False, id="fail/missing"),
        pytest.param(["a.test"], "c.test", ["a.test"], False, id="fail/cn-not-in-order"),
    ],
)
def test_csr_must_match_order(names: list[str], cn: str | None, order: list[str], ok: bool) -> None:
    mismatch = csr_mismatch(_csr(names, cn), [Identifier(D, n) for n in order])
    assert (mismatch == "") is ok


def test_dns01_values() -> None:
    # RFC 8555 §8.4 example shape: 43 base64url characters, record at the base name.
    assert len(dns01_txt_value("token.thumb")) == 43
    assert dns01_record_name(Identifier(D, "*.a.test")) == "_acme-challenge.a.test"
