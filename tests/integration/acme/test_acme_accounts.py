"""ACME accounts (RFC 8555 §7.3): every account-key algorithm of §6.2 through the whole
pipeline, contact update (§7.3.2), keyChange and its refusals (§7.3.5), and a kid known
only to the directory that made it."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers.acmeclient import AcmeClient, Key, jws
from tests.helpers.acmeharness import AcmeGateway


async def _order(client: AcmeClient, *values: str, kind: str = "dns") -> Any:
    reply = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": kind, "value": v} for v in values]},
    )
    return reply


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Key.ec(ec.SECP384R1()), id="ok/ES384"),
        pytest.param(lambda: Key.ec(ec.SECP521R1()), id="ok/ES512"),
        pytest.param(lambda: Key.rsa(), id="ok/RS256"),
        pytest.param(lambda: Key.ed25519(), id="ok/EdDSA"),
    ],
)
async def test_ok_account_key_algorithms_end_to_end(acme_gateway: AcmeGateway, make: Any) -> None:
    """RFC 8555 §6.2 algorithms through newAccount (jwk + EAB), kid-signed requests and a
    whole issuance (the http-01 key authorization uses the key's RFC 7638 thumbprint)."""
    key: Key = make()
    client = await acme_gateway.account(key=key)
    account = await client.post(client.kid or "", None)
    assert account.status == 200 and account.body["status"] == "valid", account.body
    order, _ = await acme_gateway.issue(client, [f"{key.alg.lower()}.example.com"])
    assert order.body["status"] == "valid", order.body


async def test_ok_account_contact_update_and_bad_contacts(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    updated = await client.post(
        client.kid or "", {"contact": ["mailto:new@example.com", "mailto:ops@example.com"]}
    )
    assert updated.status == 200, updated.body
    assert updated.body["contact"] == ["mailto:new@example.com", "mailto:ops@example.com"]
    assert updated.body["status"] == "valid"
    fetched = await client.post(client.kid or "", None)
    assert fetched.body["contact"] == updated.body["contact"]
    for contact, problem in (
        ("tel:+1555", "unsupportedContact"),
        ("mailto:a@example.com?subject=x", "invalidContact"),
        ("mailto:nobody", "invalidContact"),
    ):
        reply = await client.post(client.kid or "", {"contact": [contact]})
        assert reply.problem == problem, (contact, reply.body)
    # Refused updates changed nothing.
    fetched = await client.post(client.kid or "", None)
    assert fetched.body["contact"] == updated.body["contact"]
    # A status other than deactivated is not something a client may set (§7.3.6).
    reply = await client.post(client.kid or "", {"status": "revoked"})
    assert reply.problem == "malformed"
    # Another account's URL is not this kid's to read or change.
    other = await acme_gateway.account(key=Key.ec())
    peek = await client.post(other.kid or "", None)
    assert peek.status in (403, 404) and peek.problem in ("unauthorized", "malformed")


async def test_fail_key_change_refusals(acme_gateway: AcmeGateway) -> None:
    """§7.3.5: each broken inner JWS is refused, and the account keeps its old key."""
    client = await acme_gateway.account()
    taken = await acme_gateway.account(key=Key.ec())
    url = client.directory["keyChange"]
    new = Key.ec()

    def inner(key: Key, **over: Any) -> dict[str, str]:
        payload = {"account": client.kid, "oldKey": client.key.jwk()}
        payload.update(over.pop("payload", {}))
        return jws(key, over.pop("url", url), payload, nonce=over.pop("nonce", None), **over)

    # The new key already belongs to another account: 409 with that account's Location.
    clash = await client.post(url, inner(taken.key))
    assert clash.status == 409, clash.body
    assert clash.headers["Location"] == taken.kid
    cases = {
        "wrong-old-key": (inner(new, payload={"oldKey": Key.ec().jwk()}), "unauthorized"),
        "other-account": (inner(new, payload={"account": taken.kid}), "unauthorized"),
        "inner-url-differs": (inner(new, url=url + "/x"), "unauthorized"),
        "inner-has-nonce": (inner(new, nonce=await client.new_nonce()), "malformed"),
        "inner-uses-kid": (inner(new, kid=client.kid), "malformed"),
    }
    for what, (body, problem) in cases.items():
        reply = await client.post(url, body)
        assert reply.problem == problem, (what, reply.status, reply.body)
    forged = inner(new)
    forged["signature"] = inner(Key.ec())["signature"]
    reply = await client.post(url, forged)
    assert reply.problem == "malformed", reply.body
    # Nothing changed: the old key still signs for the account, the new one does not.
    assert (await client.post(client.kid or "", None)).status == 200
    assert (await client.post(client.kid or "", None, key=new)).problem == "malformed"


async def test_fail_kid_of_other_directory(acme_gateway: AcmeGateway) -> None:
    """Accounts live in one directory: a legacy account's kid (and key) is unknown to the
    application-scoped directory."""
    legacy = await acme_gateway.account(legacy=True)
    app = await acme_gateway.acme(key=legacy.key)
    app.kid = legacy.kid
    reply = await _order(app, "other-dir.example.com")
    assert reply.problem == "accountDoesNotExist", reply.body


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
