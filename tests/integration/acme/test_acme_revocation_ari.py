"""revokeCert (RFC 8555 §7.6) by the account, by an account holding authorizations and by
the certificate's own key, its reason and its type; renewalInfo and the `replaces` rules
of RFC 9773."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from protocols.acme.ari import cert_id
from tests.helpers.acmeclient import AcmeClient, Key, b64
from tests.helpers.acmeharness import AcmeGateway

CERTS = "/api/v1/applications/demo/certificates"


async def _leaf(client: AcmeClient, order_body: dict[str, object]) -> x509.Certificate:
    pem = (await client.post(str(order_body["certificate"]), None)).text
    return x509.load_pem_x509_certificates(pem.encode())[0]


async def test_ok_revoke_by_account_holding_authorizations(acme_gateway: AcmeGateway) -> None:
    """§7.6: the server MUST also accept an account that holds authorizations for all of
    the identifiers in the certificate, not only the one that ordered it."""
    alice = await acme_gateway.account()
    order, _ = await acme_gateway.issue(alice, ["shared.example.com"])
    der = b64((await _leaf(alice, order.body)).public_bytes(Encoding.DER))
    bob = await acme_gateway.account(key=Key.ec())
    # Before bob holds an authorization for the name, he may not revoke.
    refused = await bob.post(bob.directory["revokeCert"], {"certificate": der, "reason": 4})
    assert (refused.status, refused.problem) == (403, "unauthorized"), refused.body
    ready = await acme_gateway.ready_order(bob, ["shared.example.com"])
    assert ready.body["status"] == "ready", ready.body
    reply = await bob.post(bob.directory["revokeCert"], {"certificate": der, "reason": 4})
    assert reply.status == 200, reply.body
    again = await alice.post(alice.directory["revokeCert"], {"certificate": der})
    assert again.problem == "alreadyRevoked", again.body


async def test_fail_revocation_reason_must_be_an_integer(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    order, _ = await acme_gateway.issue(client, ["boolreason.example.com"])
    der = b64((await _leaf(client, order.body)).public_bytes(Encoding.DER))
    for reason in (True, "4", 4.0):
        reply = await client.post(
            client.directory["revokeCert"], {"certificate": der, "reason": reason}
        )
        assert reply.problem in ("malformed", "badRevocationReason"), (reason, reply.body)
    # Nothing was revoked by the refused attempts.
    reply = await client.post(client.directory["revokeCert"], {"certificate": der, "reason": 4})
    assert reply.status == 200, reply.body


async def test_fail_replaces_disjoint_or_already_replaced(acme_gateway: AcmeGateway) -> None:
    """RFC 9773 §5: a `replaces` sharing no identifier with the order is refused, and a
    second order replacing the same certificate gets 409 alreadyReplaced."""
    client = await acme_gateway.account()
    order, _ = await acme_gateway.issue(client, ["rep.example.com"])
    ident = cert_id(await _leaf(client, order.body))
    disjoint = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": "unrelated.example.com"}], "replaces": ident},
    )
    assert (disjoint.status, disjoint.problem) == (400, "malformed"), disjoint.body
    body = {"identifiers": [{"type": "dns", "value": "rep.example.com"}], "replaces": ident}
    first = await client.post(client.directory["newOrder"], body)
    assert first.status == 201, first.body
    assert first.body["replaces"] == ident
    second = await client.post(client.directory["newOrder"], body)
    assert (second.status, second.problem) == (409, "alreadyReplaced"), second.body


async def test_ok_revoke_by_account_key_with_reason(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    order, _key = await acme_gateway.issue(client, ["rev-account.example.com"])
    pem = (await client.post(order.body["certificate"], None)).text
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    der = b64(leaf.public_bytes(Encoding.DER))
    bad = await client.post(client.directory["revokeCert"], {"certificate": der, "reason": 7})
    assert bad.problem == "badRevocationReason", bad.body
    done = await client.post(client.directory["revokeCert"], {"certificate": der, "reason": 4})
    assert done.status == 200, done.body
    certificate_id = order.body["certificate"].rstrip("/").rsplit("/", 1)[-1]
    stored = await acme_gateway.rest("GET", f"{CERTS}/{certificate_id}", status=200)
    assert stored["status"] == "revoked" and stored["revocation_reason"] == "superseded", stored
    again = await client.post(client.directory["revokeCert"], {"certificate": der, "reason": 4})
    assert again.problem == "alreadyRevoked"


async def test_fail_replaces_other_accounts_certificate(acme_gateway: AcmeGateway) -> None:
    alice = await acme_gateway.account()
    order, _key = await acme_gateway.issue(alice, ["ari-alice.example.com"])
    pem = (await alice.post(order.body["certificate"], None)).text
    ident = cert_id(x509.load_pem_x509_certificates(pem.encode())[0])
    bob = await acme_gateway.account(key=Key.ec())
    reply = await bob.post(
        bob.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": "ari-alice.example.com"}], "replaces": ident},
    )
    assert reply.problem == "malformed", reply.body
    for value in ("garbage", "AAAA.AAAA", ident.split(".")[0] + ".AQ"):
        reply = await alice.post(
            alice.directory["newOrder"],
            {"identifiers": [{"type": "dns", "value": "ari-alice.example.com"}], "replaces": value},
        )
        assert reply.problem == "malformed", (value, reply.body)
    account = await bob.post(bob.kid or "", None)
    assert (await bob.post(account.body["orders"], None)).body["orders"] == []
    # renewalInfo for an unknown certificate: a 404 problem document.
    base = bob.path(bob.directory["renewalInfo"])
    missing = await acme_gateway.client.get(base + "/" + ident.split(".")[0] + ".AQ")
    assert missing.status == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")


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
