"""Bad input gets the right RFC 8555 §6.7 problem document, never a 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.helpers.acmeclient import Key, b64, csr_der, eab, jws
from tests.helpers.acmeharness import AcmeGateway

PROBLEM = "application/problem+json"
ERROR = "urn:ietf:params:acme:error:"


async def test_fail_replayed_nonce_bad_nonce_with_fresh_one(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    nonce = await client.new_nonce()
    first = await client.post(client.kid or "", None, nonce=nonce)
    assert first.status == 200
    replay = await client.post(client.kid or "", None, nonce=nonce)
    assert (replay.status, replay.problem) == (400, "badNonce")
    assert replay.headers["Content-Type"].startswith(PROBLEM)
    assert replay.headers["Replay-Nonce"] and replay.headers["Replay-Nonce"] != nonce


async def test_fail_missing_nonce(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.acme()
    body = jws(client.key, client.directory["newAccount"], {}, nonce=None)
    reply = await client.raw(client.directory["newAccount"], json.dumps(body))
    assert reply.problem == "badNonce"


async def test_fail_two_signatures_malformed(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.acme()
    one = jws(client.key, client.directory["newAccount"], {}, nonce=await client.new_nonce())
    general = {"payload": one["payload"], "signatures": [one, one]}
    reply = await client.raw(client.directory["newAccount"], json.dumps(general))
    assert (reply.status, reply.problem) == (400, "malformed")


async def test_fail_garbage_and_wrong_content_type(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.acme()
    reply = await client.raw(client.directory["newAccount"], b"{not json")
    assert reply.problem == "malformed"
    reply = await client.raw(client.directory["newAccount"], b"{}", "application/json")
    assert (reply.status, reply.problem) == (415, "malformed")


async def test_fail_oversized_body(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.acme()
    reply = await client.raw(client.directory["newAccount"], b"x" * (300 * 1024))
    assert reply.status == 413 and reply.problem == "malformed"


async def test_fail_wrong_url_unauthorized(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    reply = await client.post(
        client.directory["newOrder"], {"identifiers": []}, sign_url="http://evil/new-order"
    )
    assert (reply.status, reply.problem) == (403, "unauthorized")


async def test_fail_bad_algorithm(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.acme()
    url = client.directory["newAccount"]
    body = jws(client.key, url, {}, nonce=await client.new_nonce(), alg="HS256")
    reply = await client.raw(url, json.dumps(body))
    assert reply.problem == "badSignatureAlgorithm"
    assert "ES256" in reply.body["algorithms"]


async def test_fail_unknown_kid(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.acme()
    client.kid = client.directory["newAccount"].replace(
        "new-account", "account/00000000-0000-0000-0000-000000000000"
    )
    reply = await client.post(client.directory["newOrder"], {"identifiers": []})
    assert reply.problem == "accountDoesNotExist"


async def test_fail_eab_required_and_bad_mac(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.acme()
    reply = await client.register(None, None)
    assert reply.problem == "externalAccountRequired"
    reply = await client.register(acme_gateway.bootstrap["acme_eab_kid"], b64(b"wrong-key" * 4))
    assert (reply.status, reply.problem) == (403, "unauthorized")
    reply = await client.register("kid-unknown", acme_gateway.bootstrap["acme_eab_hmac_key"])
    assert reply.problem == "unauthorized"
    # The legacy directory's key does not open the application's directory.
    reply = await client.register(
        acme_gateway.bootstrap["legacy_acme_eab_kid"],
        acme_gateway.bootstrap["legacy_acme_eab_hmac_key"],
    )
    assert reply.problem == "unauthorized"


async def test_ok_eab_hs512_and_only_return_existing(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.acme()
    reply = await client.post(
        client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True
    )
    assert reply.problem == "accountDoesNotExist"
    url = client.directory["newAccount"]
    binding = eab(
        acme_gateway.bootstrap["acme_eab_kid"],
        acme_gateway.bootstrap["acme_eab_hmac_key"],
        client.key.jwk(),
        url,
        alg="HS512",
    )
    created = await client.post(url, {"externalAccountBinding": binding}, use_jwk=True)
    assert created.status == 201
    again = await client.post(url, {"onlyReturnExisting": True}, use_jwk=True)
    assert again.status == 200 and again.headers["Location"] == created.headers["Location"]


async def test_fail_rejected_identifier_with_subproblems(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    reply = await client.post(
        client.directory["newOrder"],
        {
            "identifiers": [
                {"type": "dns", "value": "ok.example.com"},
                {"type": "dns", "value": "bad_name!.example.com"},
                {"type": "ip", "value": "not-an-ip"},
            ]
        },
    )
    assert reply.problem == "rejectedIdentifier"
    assert [s["identifier"]["value"] for s in reply.body["subproblems"]] == [
        "bad_name!.example.com",
        "not-an-ip",
    ]


async def test_fail_finalize_before_ready_and_csr_mismatch(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "a.example.com"}]}
    )
    der, _ = csr_der(["a.example.com"])
    early = await client.post(order.body["finalize"], {"csr": b64(der)})
    assert (early.status, early.problem) == (403, "orderNotReady")
    ready = await acme_gateway.ready_order(client, ["b.example.com"])
    assert ready.body["status"] == "ready"
    other, _ = csr_der(["b.example.com", "c.example.com"])
    bad = await client.post(ready.body["finalize"], {"csr": b64(other)})
    assert bad.problem == "badCSR"
    garbage = await client.post(ready.body["finalize"], {"csr": b64(b"\x30\x03junk")})
    assert garbage.problem == "badCSR"
    # Nothing half-written: the order is still ready and can be finalized properly.
    good, _ = csr_der(["b.example.com"])
    final = await client.post(ready.body["finalize"], {"csr": b64(good)})
    assert final.status == 200 and final.body["status"] == "valid", final.body


async def test_fail_deactivated_account(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    reply = await client.post(client.kid or "", {"status": "deactivated"})
    assert reply.body["status"] == "deactivated"
    after = await client.post(client.directory["newOrder"], {"identifiers": []})
    assert (after.status, after.problem) == (403, "unauthorized")


async def test_fail_other_accounts_resources(acme_gateway: AcmeGateway) -> None:
    alice = await acme_gateway.account()
    bob = await acme_gateway.account(key=Key.ec())
    order = await alice.post(
        alice.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "a.example.com"}]}
    )
    peek = await bob.post(order.headers["Location"], None)
    assert peek.status == 404
    peek = await bob.post(order.body["authorizations"][0], None)
    assert peek.status == 404


async def test_fail_nonce_of_failed_request_stays_spent(acme_gateway: AcmeGateway) -> None:
    """RFC 8555 §6.5: a nonce is accepted once, even when the request that carried it then
    failed (its work is rolled back, its nonce's use is not)."""
    client = await acme_gateway.account()
    nonce = await client.new_nonce()
    assert client.kid is not None
    missing = client.kid.rsplit("/account/", 1)[0] + f"/order/{uuid.uuid4()}"
    failed = await client.post(missing, None, nonce=nonce)
    assert failed.status == 404, failed.body
    replay = await client.post(client.kid or "", None, nonce=nonce)
    assert (replay.status, replay.problem) == (400, "badNonce")


async def test_fail_forged_nonce(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    forged = b64(b"\x01" + bytes(40))
    reply = await client.post(client.kid or "", None, nonce=forged)
    assert (reply.status, reply.problem) == (400, "badNonce")
    assert reply.headers["Replay-Nonce"]


async def test_ok_deactivation_cancels_pending_orders(acme_gateway: AcmeGateway) -> None:
    """RFC 8555 §7.3.6: deactivating an account cancels its pending orders and
    authorizations; an order already issued stays valid."""
    client = await acme_gateway.account()
    issued, _ = await acme_gateway.issue(client, ["kept.example.com"])
    pending = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": "cancelled.example.com"}]},
    )
    assert pending.status == 201, pending.body
    reply = await client.post(client.kid or "", {"status": "deactivated"})
    assert reply.body["status"] == "deactivated"
    async with acme_gateway.services.db.transaction(read_only=True) as tx:
        orders = {o.identifiers[0].value: o for o in await tx.acme.list_orders(
            uuid.UUID(str(client.kid).rsplit("/", 1)[1]), 10
        )}  # fmt: skip
        authzs = await tx.acme.authorizations_of(orders["cancelled.example.com"].id)
    assert orders["cancelled.example.com"].status.value == "invalid"
    assert orders["cancelled.example.com"].error is not None
    assert orders["cancelled.example.com"].error.type == "unauthorized"
    assert [a.status.value for a in authzs] == ["deactivated"]
    assert orders["kept.example.com"].status.value == "valid"
    assert issued.body["status"] == "valid"


async def test_fail_jwk_and_kid_both_or_neither(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    url = client.directory["newOrder"]
    payload = {"identifiers": [{"type": "dns", "value": "x.example.com"}]}
    both = jws(client.key, url, payload, nonce=await client.new_nonce(), extra={"kid": client.kid})
    assert "jwk" in json.loads(_unb64(both["protected"]))
    reply = await client.raw(url, json.dumps(both))
    assert (reply.status, reply.problem) == (400, "malformed"), reply.body
    neither = _signed_without_key(client.key, url, payload, await client.new_nonce())
    reply = await client.raw(url, json.dumps(neither))
    assert (reply.status, reply.problem) == (400, "malformed"), reply.body
    # Nothing was written by either request.
    account = await client.post(client.kid or "", None)
    assert (await client.post(account.body["orders"], None)).body["orders"] == []
    # Where a jwk is allowed (newAccount, revokeCert), a kid beside it is refused too.
    fresh = await acme_gateway.acme()
    new_account = fresh.directory["newAccount"]
    binding = eab(
        acme_gateway.bootstrap["acme_eab_kid"],
        acme_gateway.bootstrap["acme_eab_hmac_key"],
        fresh.key.jwk(),
        new_account,
    )
    requests: list[tuple[str, dict[str, Any]]] = [
        (new_account, {"termsOfServiceAgreed": True, "externalAccountBinding": binding}),
        (fresh.directory["revokeCert"], {"certificate": ""}),
    ]
    for url, signed in requests:
        both = jws(fresh.key, url, signed, nonce=await fresh.new_nonce(), extra={"kid": client.kid})
        reply = await fresh.raw(url, json.dumps(both))
        assert (reply.status, reply.problem) == (400, "malformed"), (url, reply.body)
    probe = await fresh.post(new_account, {"onlyReturnExisting": True}, use_jwk=True)
    assert probe.problem == "accountDoesNotExist", probe.body


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signed_without_key(key: Key, url: str, payload: Any, nonce: str) -> dict[str, str]:
    protected = b64(json.dumps({"alg": key.alg, "url": url, "nonce": nonce}).encode())
    body = b64(json.dumps(payload).encode())
    return {
        "protected": protected,
        "payload": body,
        "signature": b64(key.sign(f"{protected}.{body}".encode())),
    }


async def test_fail_policy_denial_one_subproblem_per_identifier(
    acme_gateway: AcmeGateway,
) -> None:
    """RFC 8555 §7.4/§6.7.1: newOrder names each identifier the policy refuses."""
    client = await acme_gateway.account()
    names = ["ok-policy.example.com", "a.deep.example.com", "b.deep.example.com"]
    denied = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": n} for n in names]},
    )
    assert denied.problem == "rejectedIdentifier", denied.body
    refused = sorted(s["identifier"]["value"] for s in denied.body["subproblems"])
    assert refused == ["a.deep.example.com", "b.deep.example.com"], denied.body
    for sub in denied.body["subproblems"]:
        assert sub["type"] == ERROR + "rejectedIdentifier"
        assert "not allowed by the policy" in sub["detail"]


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
