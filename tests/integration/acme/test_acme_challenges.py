"""Which challenges an authorization offers: the `challenges` setting, a wildcard only
through dns-01 (RFC 8555 §7.1.3), never dns-01 for an IP identifier (RFC 8738 §7)."""

from __future__ import annotations

from typing import Any

from tests.helpers.acmeclient import AcmeClient
from tests.helpers.acmeharness import AcmeGateway

SETTINGS = "/api/v1/applications/demo/profiles/tls-server/acme"


async def _order(client: AcmeClient, *values: str, kind: str = "dns") -> Any:
    reply = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": kind, "value": v} for v in values]},
    )
    return reply


async def test_ok_challenge_selection(acme_gateway: AcmeGateway) -> None:
    """§7.1.3: a wildcard only through dns-01, so without dns-01 it is refused; RFC 8738
    §7: an IP identifier never gets dns-01."""
    client = await acme_gateway.account()
    ip = await _order(client, "127.0.0.1", kind="ip")
    authz = await client.post(ip.body["authorizations"][0], None)
    assert sorted(c["type"] for c in authz.body["challenges"]) == ["http-01", "tls-alpn-01"]
    assert authz.body["identifier"] == {"type": "ip", "value": "127.0.0.1"}
    await acme_gateway.rest("PATCH", SETTINGS, {"challenges": ["http-01"]}, status=200)
    plain = await _order(client, "only-http.example.com")
    authz = await client.post(plain.body["authorizations"][0], None)
    assert [c["type"] for c in authz.body["challenges"]] == ["http-01"]
    refused = await _order(client, "*.example.com", "plain.example.com")
    assert refused.problem == "rejectedIdentifier", refused.body
    assert [s["identifier"]["value"] for s in refused.body["subproblems"]] == ["*.example.com"]


async def test_ok_wildcard_gets_dns01_only(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "*.example.com"}]}
    )
    authz = await client.post(order.body["authorizations"][0], None)
    assert authz.body["wildcard"] is True
    assert authz.body["identifier"]["value"] == "example.com"
    assert [c["type"] for c in authz.body["challenges"]] == ["dns-01"]
