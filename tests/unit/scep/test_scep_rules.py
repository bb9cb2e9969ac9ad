"""Pure SCEP rules (gateway.core.scep)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.methods import MethodSettings
from gateway.core.model import (
    Application,
    KeyType,
    Profile,
    ProfileAttachment,
    Project,
    ProjectStatus,
)
from gateway.core.scep import (
    FailInfo,
    MessageType,
    ScepFailure,
    challenge_password,
    challenge_ttl,
    check_signing_time,
    request_key,
    requester,
    scep_scope,
)
from gateway.core.target import AttachedTarget, EnrollmentTarget
from tests.helpers import scepclient as sc

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [pytest.param("s3cret-challenge", id="ok/ascii"), pytest.param("pässwört-1", id="ok/utf8")],
)
def test_challenge_password_read_from_csr(value: str) -> None:
    key = sc.rsa_key()
    assert challenge_password(sc.make_csr(key, "a.test", value)) == value
    assert challenge_password(sc.make_csr(key, "a.test")) is None


@pytest.mark.parametrize(
    ("skew", "ok"),
    [
        pytest.param(timedelta(0), True, id="ok/now"),
        pytest.param(timedelta(hours=23), True, id="ok/within-a-day"),
        pytest.param(-timedelta(hours=23), True, id="ok/within-a-day-ahead"),
        pytest.param(timedelta(days=2), False, id="fail/two-days-late"),
        pytest.param(-timedelta(days=2), False, id="fail/two-days-ahead"),
    ],
)
def test_signing_time_bad_time(skew: timedelta, ok: bool) -> None:
    if ok:
        check_signing_time(NOW - skew, NOW)
        return
    with pytest.raises(ScepFailure) as failure:
        check_signing_time(NOW - skew, NOW)
    assert failure.value.fail_info is FailInfo.BAD_TIME


def test_signing_time_absent_is_fine() -> None:
    check_signing_time(None, NOW)


def test_request_key_tells_renewals_apart() -> None:
    a, b = sc.Requester.new("a"), sc.Requester.new("b")
    assert request_key(MessageType.PKCS_REQ, a.cert) == request_key(MessageType.PKCS_REQ, b.cert)
    assert request_key(MessageType.RENEWAL_REQ, a.cert) != request_key(
        MessageType.RENEWAL_REQ, b.cert
    )
    assert request_key(MessageType.RENEWAL_REQ, a.cert) != request_key(MessageType.PKCS_REQ, a.cert)
    assert requester("abc") == "scep:abc"


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        pytest.param(None, timedelta(minutes=60), id="ok/default"),
        pytest.param(5, timedelta(minutes=5), id="ok/five"),
        pytest.param(0, None, id="fail/zero"),
        pytest.param(True, None, id="fail/bool"),
        pytest.param(60 * 24 * 8, None, id="fail/too-long"),
    ],
)
def test_challenge_ttl(minutes: object, expected: timedelta | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            challenge_ttl(minutes)
    else:
        assert challenge_ttl(minutes) == expected


def _targets() -> tuple[AttachedTarget, EnrollmentTarget]:
    ids = [uuid.UUID(int=n) for n in range(1, 6)]
    project = Project(ids[0], ids[0], "p", ProjectStatus.ACTIVE, b"", NOW)
    profile = Profile(
        ids[1], ids[0], "tls", "TLS", ids[2], ids[2], 90, (), (), 30, KeyType.EC_P256, {}, NOW
    )
    app = Application(ids[3], ids[0], "demo", "Demo", "", NOW)
    attachment = ProfileAttachment(ids[4], app.id, profile.id, {}, NOW)
    methods = MethodSettings.from_stored({}, "test")
    return (
        AttachedTarget(project, app, profile, attachment, None, None, methods),
        EnrollmentTarget(project, None, profile, None, None, None, methods),
    )


def test_scep_scope_is_the_stored_form() -> None:
    """Rows (RA, challenges, transactions) are keyed by these exact strings."""
    attached, legacy = _targets()
    assert scep_scope(attached) == "attachment:00000000-0000-0000-0000-000000000005:scep"
    assert scep_scope(legacy) == "profile:00000000-0000-0000-0000-000000000002:scep"
