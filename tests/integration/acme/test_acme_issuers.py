"""ACME finalize on the issuers a legacy project can hold (issue 12, item 2), answered as
problem documents (RFC 8555 §6.7) and the order turned invalid with that error (§7.4):
a self-signed profile refuses every CSR as badCSR (the certificate must be signed by its own
key, which would be the client's); an external CA's profile answers serverInternal, as an
unusable CA does, with a detail naming the external CA. Nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.acmeclient import AcmeClient, b64, csr_der
from tests.helpers.acmeharness import AcmeGateway, poll
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
    ("issuer", "problem", "status", "needle"),
    [
        pytest.param("self-signed", "badCSR", 400, "is self-signed", id="fail/self-signed"),
        pytest.param("external", "serverInternal", 500, "is external", id="fail/external"),
    ],
)
async def test_fail_finalize(
    acme_gateway: AcmeGateway, issuer: str, problem: str, status: int, needle: str
) -> None:
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
    order = await gw.ready_order(client, ["x.example.com"])
    assert order.body["status"] == "ready", order.body
    der, _ = csr_der(["x.example.com"])
    final = await client.post(order.body["finalize"], {"csr": b64(der)})
    assert final.status == status, final.body
    assert final.problem == problem and needle in final.body["detail"]
    assert final.headers["Content-Type"].startswith("application/problem+json")
    invalid = await poll(client, order.headers["Location"], {"invalid"})
    assert invalid.body["status"] == "invalid"
    assert invalid.body["error"]["type"].endswith(problem)
    assert await _count(gw) == before
