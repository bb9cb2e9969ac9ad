"""Account and certificate lifecycle: keyChange (§7.3.5), orders list (§7.1.2.1),
authorization deactivation (§7.5.2), dns-01 (§8.4), revokeCert by account and by
certificate key (§7.6), ARI (RFC 9773) with `replaces`."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.core.acme import dns01_txt_value
from protocols.acme.ari import cert_id
from tests.helpers.acmeclient import Key, b64, csr_der, jws
from tests.helpers.acmeharness import AcmeGateway, poll


async def test_ok_key_change_then_old_key_is_gone(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    new = Key.ec()
    url = client.directory["keyChange"]
    inner = jws(new, url, {"account": client.kid, "oldKey": client.key.jwk()}, nonce=None, kid=None)
    reply = await client.post(url, inner)
    assert reply.status == 200, reply.body
    old_key = client.key
    client.key = new
    assert (await client.post(client.kid or "", None)).status == 200
    client.key = old_key
    assert (await client.post(client.kid or "", None)).problem == "malformed"


async def test_ok_orders_list_and_authz_deactivation(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "d.example.com"}]}
    )
    account = await client.post(client.kid or "", None)
    listed = await client.post(account.body["orders"], None)
    assert order.headers["Location"] in listed.body["orders"]
    gone = await client.post(order.body["authorizations"][0], {"status": "deactivated"})
    assert gone.body["status"] == "deactivated"
    after = await client.post(order.headers["Location"], None)
    assert after.body["status"] == "invalid"


async def _dns01_ready(acme_gateway: AcmeGateway, client, name: str):  # type: ignore[no-untyped-def]
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
    )
    authz = await client.post(order.body["authorizations"][0], None)
    chall = authz.body["challenges"][0]
    key_auth = f"{chall['token']}.{client.key.thumbprint()}"
    record = "_acme-challenge." + name.removeprefix("*.")
    acme_gateway.dns.txt[record] = [dns01_txt_value(key_auth)]
    await client.post(chall["url"], {})
    return await poll(client, order.headers["Location"], {"ready", "invalid"})


async def test_ok_dns01_wildcard(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    ready = await _dns01_ready(acme_gateway, client, "*.example.com")
    assert ready.body["status"] == "ready", ready.body
    der, _ = csr_der(["*.example.com"])
    final = await client.post(ready.body["finalize"], {"csr": b64(der)})
    assert final.body["status"] == "valid", final.body


async def test_fail_policy_denial_has_subproblems(acme_gateway: AcmeGateway) -> None:
    """RFC 8555 §7.4: newOrder refuses what the profile's policy forbids, per identifier,
    before any authorization exists (so no validator connects out for it)."""
    client = await acme_gateway.account()
    queries = len(acme_gateway.dns.queries)
    denied = await client.post(
        client.directory["newOrder"],
        {
            "identifiers": [
                {"type": "dns", "value": "*.deep.example.com"},
                {"type": "dns", "value": "evil.com"},
                {"type": "ip", "value": "10.0.0.1"},
                {"type": "ip", "value": "::ffff:127.0.0.1"},
                {"type": "dns", "value": "fine.example.com"},
            ]
        },
    )
    assert denied.problem == "rejectedIdentifier", denied.body
    refused = {s["identifier"]["value"] for s in denied.body["subproblems"]}
    # Identifiers come back normalized (RFC 5952 text for IPv6).
    assert refused == {"*.deep.example.com", "evil.com", "10.0.0.1", "::ffff:7f00:1"}
    assert "Location" not in denied.headers
    assert len(acme_gateway.dns.queries) == queries  # nothing was looked up
    orders = await client.post((await client.post(client.kid or "", None)).body["orders"], None)
    assert orders.body["orders"] == []


async def test_ok_ari_replaces_and_revocation(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    order, key = await acme_gateway.issue(client, ["r.example.com"])
    pem = (await client.post(order.body["certificate"], None)).text
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    ident = cert_id(leaf)
    info = await acme_gateway.client.get(client.path(client.directory["renewalInfo"]) + "/" + ident)
    window = (await info.json())["suggestedWindow"]
    assert info.status == 200 and window["start"] < window["end"]
    renewal = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": "r.example.com"}], "replaces": ident},
    )
    assert renewal.status == 201 and renewal.body["replaces"] == ident
    stranger = await acme_gateway.account(key=Key.ec())
    cert_b64 = b64(leaf.public_bytes(Encoding.DER))
    denied = await stranger.post(client.directory["revokeCert"], {"certificate": cert_b64})
    assert denied.problem == "unauthorized"
    bad = await client.post(client.directory["revokeCert"], {"certificate": cert_b64, "reason": 6})
    assert bad.problem == "badRevocationReason"
    # Signed by the certificate's own key (jwk), not by an account.
    cert_key = Key(key, "ES256")
    done = await client.post(
        client.directory["revokeCert"],
        {"certificate": cert_b64, "reason": 1},
        key=cert_key,
        use_jwk=True,
    )
    assert done.status == 200, done.body
    again = await client.post(client.directory["revokeCert"], {"certificate": cert_b64})
    assert again.problem == "alreadyRevoked"
