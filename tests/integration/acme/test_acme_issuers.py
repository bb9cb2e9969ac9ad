"""ACME on the issuers a legacy project can hold (issue 12, item 2): a directory whose
profile could never finalize refuses newOrder at once, as a problem document (RFC 8555
§6.7) — a self-signed profile (its certificates are signed by a key generated here, never
the client's) and an external CA's profile (its key is not held here). No order, no
validation, nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.acmeclient import AcmeClient
from tests.helpers.acmeharness import AcmeGateway
from tests.helpers.external_ca import ca_certificate_pem


async def _acme_profile(gw: AcmeGateway, slug: str, body: dict[str, Any]) -> AcmeClient:
    """A new profile attached to demo with ACME on, and a registered account on it."""
    demo = await gw.rest("GET", f"/api/v1/profiles/{gw.bootstrap['profile_id']}", status=200)
    await gw.rest(
        "POST",
        "/api/v1/profiles",
        {"slug": slug, "policy_id": demo["policy_id"], **body},
        status=201,
    )
    await gw.rest("POST", "/api/v1/applications/demo/profiles", {"profile": slug}, status=201)
    settings = f"/api/v1/applications/demo/profiles/{slug}/acme"
    # As the demo's (gateway.bootstrap.DEMO_ACME): the test's validation target is loopback.
    networks = ["127.0.0.0/8", "::1/128"]
    await gw.rest("PATCH", settings, {"enabled": True, "validation_networks": networks}, status=200)
    eab = await gw.rest("POST", settings + "/eab", {}, status=201)
    client = await AcmeClient(
        gw.client, f"/applications/demo/profiles/{slug}/acme/directory"
    ).start()
    reply = await client.register(eab["eab_kid"], eab["eab_hmac_key"])
    assert reply.status == 201, reply.body
    return client


async def _count(gw: AcmeGateway) -> int:
    page = await gw.rest("GET", "/api/v1/applications/demo/certificates?limit=1", status=200)
    return int(page["total"])


@pytest.mark.parametrize(
    ("issuer", "needle"),
    [
        pytest.param("self-signed", "is self-signed", id="fail/self-signed"),
        pytest.param("external", "ca_external", id="fail/external"),
    ],
)
async def test_fail_new_order(acme_gateway: AcmeGateway, issuer: str, needle: str) -> None:
    gw = acme_gateway
    if issuer == "self-signed":
        body: dict[str, Any] = {"issuer_type": "self-signed"}
    else:
        ca = await gw.rest(
            "POST",
            "/api/v1/cas",
            {"kind": "external", "name": "partner", "certificate_pem": ca_certificate_pem()},
            status=201,
        )
        body = {"ca_id": ca["id"]}
    client = await _acme_profile(gw, "p", body)
    before = await _count(gw)
    queries = len(gw.dns.queries)
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "x.example.com"}]}
    )
    assert order.status == 400, order.body
    assert order.problem == "rejectedIdentifier" and needle in order.body["detail"]
    assert order.headers["Content-Type"].startswith("application/problem+json")
    assert "Location" not in order.headers
    assert len(gw.dns.queries) == queries
    assert await _count(gw) == before
