"""External Account Binding (RFC 8555 §7.3.4): HS384 and the failure modes of a binding,
rotation of the credentials through the REST API, and eab_required switched off."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.helpers.acmeclient import AcmeClient, Key, b64, eab
from tests.helpers.acmeharness import AcmeGateway

SETTINGS = "/api/v1/applications/demo/profiles/tls-server/acme"


async def _order(client: AcmeClient, *values: str, kind: str = "dns") -> Any:
    reply = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": kind, "value": v} for v in values]},
    )
    return reply


def _unb64(text: str) -> bytes:

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_ok_eab_hs384_and_fail_bad_bindings(acme_gateway: AcmeGateway) -> None:
    kid = acme_gateway.bootstrap["acme_eab_kid"]
    hmac_key = acme_gateway.bootstrap["acme_eab_hmac_key"]
    client = await acme_gateway.acme()
    url = client.directory["newAccount"]

    async def register(binding: Any) -> Any:
        return await client.post(
            url, {"termsOfServiceAgreed": True, "externalAccountBinding": binding}, use_jwk=True
        )

    other = Key.ec().jwk()
    bad = {
        "payload-is-another-key": eab(kid, hmac_key, other, url),
        "url-is-not-new-account": eab(kid, hmac_key, client.key.jwk(), url + "x"),
        "not-an-object": "eab",
    }
    for what, binding in bad.items():
        reply = await register(binding)
        assert (reply.status, reply.problem) == (400, "malformed"), (what, reply.body)
    # The MAC algorithm must be HS256/384/512 (§7.3.4).
    rs = eab(kid, hmac_key, client.key.jwk(), url)
    header = json.loads(_unb64(rs["protected"]))
    rs["protected"] = b64(json.dumps({**header, "alg": "RS256"}).encode())
    reply = await register(rs)
    assert reply.problem == "malformed", reply.body
    # None of the refusals left an account behind.
    probe = await client.post(url, {"onlyReturnExisting": True}, use_jwk=True)
    assert probe.problem == "accountDoesNotExist", probe.body
    created = await register(eab(kid, hmac_key, client.key.jwk(), url, alg="HS384"))
    assert created.status == 201, created.body


async def test_ok_eab_rotation_through_rest(acme_gateway: AcmeGateway) -> None:
    """The Admin rotates the EAB credentials: the old kid stops opening accounts, the new
    one does, and accounts made with the old one keep working."""
    old_kid = acme_gateway.bootstrap["acme_eab_kid"]
    old_key = acme_gateway.bootstrap["acme_eab_hmac_key"]
    existing = await acme_gateway.account()
    rotated = await acme_gateway.rest("POST", SETTINGS + "/eab", {}, status=201)
    new_kid, new_key = rotated["eab_kid"], rotated["eab_hmac_key"]
    assert new_kid != old_kid and new_key != old_key
    view = await acme_gateway.rest("GET", SETTINGS, status=200)
    assert view["eab_kid"] == new_kid and "eab_hmac_key" not in view

    stale = await acme_gateway.acme()
    refused = await stale.register(old_kid, old_key)
    assert (refused.status, refused.problem) == (403, "unauthorized"), refused.body
    # The new kid with the old key, or the old kid with the new key: refused as well.
    assert (await stale.register(new_kid, old_key)).problem == "unauthorized"
    assert (await stale.register(old_kid, new_key)).problem == "unauthorized"
    fresh = await acme_gateway.acme()
    created = await fresh.register(new_kid, new_key)
    assert created.status == 201, created.body
    still = await existing.post(existing.kid or "", None)
    assert still.status == 200 and still.body["status"] == "valid", still.body
    order = await _order(existing, "after-rotation.example.com")
    assert order.status == 201, order.body


async def test_ok_eab_not_required_when_disabled(acme_gateway: AcmeGateway) -> None:
    await acme_gateway.rest("PATCH", SETTINGS, {"eab_required": False}, status=200)
    client = await acme_gateway.acme()
    assert client.directory["meta"]["externalAccountRequired"] is False
    created = await client.register(None, None)
    assert created.status == 201, created.body
