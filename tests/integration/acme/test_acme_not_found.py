"""Every answer under an ACME directory's prefix is a problem document (RFC 8555 §6.7):
unknown resources, empty ids and wrong methods too, on both URL forms."""

from __future__ import annotations

import pytest

from tests.helpers.acmeharness import AcmeGateway

PROBLEM = "application/problem+json"


def _prefixes(gw: AcmeGateway) -> list[str]:
    return [
        gw.path(gw.bootstrap["acme_directory"]).removesuffix("/directory"),
        gw.path(gw.bootstrap["legacy_acme_directory"]).removesuffix("/directory"),
    ]


@pytest.mark.parametrize(
    "tail",
    ["/nosuch", "/renewal-info/", "/order/", "/order/x/finalize/extra", "/", ""],
)
async def test_fail_unknown_resource_is_a_problem(acme_gateway: AcmeGateway, tail: str) -> None:
    for prefix in _prefixes(acme_gateway):
        for method in ("GET", "POST"):
            resp = await acme_gateway.client.request(method, prefix + tail)
            body = await resp.json(content_type=None)
            assert resp.status == 404, (prefix + tail, resp.status, body)
            assert resp.headers["Content-Type"].startswith(PROBLEM)
            assert body["type"] == "urn:ietf:params:acme:error:malformed"
            assert body["status"] == 404


@pytest.mark.parametrize(
    ("method", "tail", "allowed"),
    [
        ("POST", "/directory", "GET"),
        ("GET", "/new-account", "POST"),
        ("PUT", "/new-nonce", "GET, HEAD"),
        ("GET", "/order/abc/finalize", "POST"),
    ],
)
async def test_fail_wrong_method_is_a_problem_with_allow(
    acme_gateway: AcmeGateway, method: str, tail: str, allowed: str
) -> None:
    for prefix in _prefixes(acme_gateway):
        resp = await acme_gateway.client.request(method, prefix + tail)
        body = await resp.json(content_type=None)
        assert resp.status == 405, (prefix + tail, resp.status, body)
        assert resp.headers["Content-Type"].startswith(PROBLEM)
        assert resp.headers["Allow"] == allowed
        assert body["type"] == "urn:ietf:params:acme:error:malformed"


async def test_fail_unknown_application_is_a_problem(acme_gateway: AcmeGateway) -> None:
    resp = await acme_gateway.client.get("/applications/nosuch/profiles/nosuch/acme/nosuch")
    assert resp.status == 404
    assert resp.headers["Content-Type"].startswith(PROBLEM)
