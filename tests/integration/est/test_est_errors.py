"""Requests EST refuses, each answered with text/plain a device developer can act on
(issue 5): unknown or hostile URLs, wrong method, content type or size, malformed CSRs,
policy denials, and nothing stored by a refused request."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from est_helpers import NEW, SETTINGS, EstGateway, assert_plain, b64, csr_der
from sqlalchemy import text

from gateway.appkeys import SERVICES


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        pytest.param(
            "/.well-known/est/applications/nope/profiles/tls-server/cacerts",
            b"no EST enrollment",
            id="fail/unknown-app",
        ),
        pytest.param(
            "/.well-known/est/applications/demo/profiles/nope/cacerts",
            b"no EST enrollment",
            id="fail/unknown-profile",
        ),
        pytest.param("/.well-known/est/demo.nope/cacerts", b"no EST enrollment", id="fail/label"),
        pytest.param("/.well-known/est/nodot/cacerts", b"unknown EST label", id="fail/bad-label"),
        pytest.param(
            "/.well-known/est/00000000-0000-4000-8000-000000000000/cacerts",
            b"no EST enrollment for profile",
            id="fail/unknown-legacy-profile",
        ),
        pytest.param(f"{NEW}/fullcmc", b"unknown EST operation", id="fail/unknown-op"),
    ],
)
async def test_fail_404(est_gw, path: str, fragment: bytes) -> None:
    resp = await est_gw.client.get(path)
    assert resp.status == 404
    assert_plain(dict(resp.headers))
    assert fragment in await resp.read()


async def test_fail_404_when_est_disabled(est_gw) -> None:
    await est_gw.api("PATCH", SETTINGS, {"enabled": False})
    resp = await est_gw.client.get(f"{NEW}/cacerts")
    assert resp.status == 404
    assert b"EST not enabled" in await resp.read()


async def test_fail_405_wrong_method(est_gw) -> None:
    resp = await est_gw.client.get(f"{NEW}/simpleenroll")
    assert resp.status == 405 and resp.headers["Allow"] == "POST"
    resp = await est_gw.client.post(f"{NEW}/cacerts")
    assert resp.status == 405 and resp.headers["Allow"] == "GET"


async def test_fail_415_wrong_content_type(est_gw) -> None:
    der, _ = csr_der()
    status, headers, body = await est_gw.post(
        "simpleenroll", b64(der), auth=est_gw.basic, content_type="application/json"
    )
    assert status == 415
    assert_plain(headers)
    assert b"application/pkcs10" in body


async def test_fail_413_oversized(est_gw) -> None:
    status, headers, body = await est_gw.post("simpleenroll", b"A" * (70 * 1024), auth=est_gw.basic)
    assert status == 413
    assert_plain(headers)
    assert b"larger than" in body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"%%% not base64 %%%", b"neither PEM, DER nor base64", id="fail/base64"),
        pytest.param(base64.b64encode(b"hello world"), b"does not parse", id="fail/not-pkcs10"),
        pytest.param(b"", b"CSR is empty", id="fail/empty"),
    ],
)
async def test_fail_400_malformed_csr(est_gw, body: bytes, fragment: bytes) -> None:
    status, headers, out = await est_gw.post("simpleenroll", body, auth=est_gw.basic)
    assert status == 400, out
    assert_plain(headers)
    assert fragment in out


async def test_fail_400_bad_csr_signature(est_gw) -> None:
    der, _ = csr_der()
    tampered = der[:-3] + bytes([der[-3] ^ 0xFF]) + der[-2:]
    status, headers, body = await est_gw.post("simpleenroll", b64(tampered), auth=est_gw.basic)
    assert status == 400
    assert_plain(headers)
    assert b"signature" in body


async def test_fail_403_policy_denial_lists_rules(est_gw) -> None:
    der, _ = csr_der("evil.org", sans=["evil.org", "also.evil.net"])
    status, headers, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 403
    assert_plain(headers)
    text = body.decode()
    assert "violates the profile's policy" in text
    assert "evil.org" in text and "also.evil.net" in text
    assert text.count("\n- ") >= 2


async def _count(gw: EstGateway, sql: str) -> int:
    services = gw.client.server.app[SERVICES]
    async with services.db.transaction(read_only=True) as tx:
        return int((await tx.session.execute(text(sql))).scalar_one())


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/.well-known/est/applications/%00/profiles/tls-server/cacerts", id="nul"),
        pytest.param("/.well-known/est/demo%00.tls-server/cacerts", id="label-nul"),
        pytest.param(f"/.well-known/est/applications/demo/profiles/{'x' * 400}/cacerts", id="long"),
        pytest.param(
            "/.well-known/est/applications/d%C3%A9mo/profiles/tls-server/cacerts", id="utf8"
        ),
        pytest.param("/.well-known/est/applications/DEMO/profiles/tls-server/cacerts", id="case"),
    ],
)  # fmt: skip
async def test_fail_404_not_500_for_hostile_segments(est_gw: EstGateway, path: str) -> None:
    """A NUL byte is an error on PostgreSQL, not a miss: such segments never reach it."""
    resp = await est_gw.client.get(path)
    assert resp.status == 404, await resp.text()
    assert_plain(dict(resp.headers))


async def test_fail_413_streamed_body_without_length(est_gw: EstGateway) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"A" * 1024

    resp = await est_gw.client.post(
        f"{NEW}/simpleenroll",
        data=chunks(),
        headers={"Content-Type": "application/pkcs10", **est_gw.basic},
    )
    assert resp.status == 413 and "Content-Length" not in resp.request_info.headers
    assert_plain(dict(resp.headers))
    assert "larger than" in await resp.text()


async def test_fail_refused_enrollments_store_nothing(est_gw: EstGateway) -> None:
    before = await _count(est_gw, "SELECT count(*) FROM certificates")
    requests = await _count(est_gw, "SELECT count(*) FROM certificate_requests")
    der, _ = csr_der("evil.org", sans=["evil.org"])
    for op in ("simpleenroll", "serverkeygen"):
        status, _, _ = await est_gw.post(op, b64(der), auth=est_gw.basic)
        assert status == 403
        status, _, _ = await est_gw.post(op, b64(der[:-4]), auth=est_gw.basic)
        assert status == 400
    assert await _count(est_gw, "SELECT count(*) FROM certificates") == before
    assert await _count(est_gw, "SELECT count(*) FROM certificate_requests") == requests
