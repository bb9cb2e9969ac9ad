"""The whole RFC 8555 flow through the in-process gateway, on SQLite and PostgreSQL: http-01,
dns-01 (§8.4) and IP identifiers, the orders list (§7.1.2.1), authorization deactivation
(§7.5.2), and how a challenge answer reports its validation."""

from __future__ import annotations

import time

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.core.acme import dns01_txt_value
from protocols.acme import authorizations
from tests.helpers.acmeclient import b64, csr_der
from tests.helpers.acmeharness import AcmeGateway, poll


async def test_ok_directory_and_nonce(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.acme()
    d = client.directory
    assert d["meta"]["externalAccountRequired"] is True
    assert d["newNonce"].startswith(
        "http://127.0.0.1:8080/applications/demo/profiles/tls-server/acme/"
    )
    head = await acme_gateway.client.head(client.path(d["newNonce"]))
    assert head.status == 200 and head.headers["Cache-Control"] == "no-store"
    get = await acme_gateway.client.get(client.path(d["newNonce"]))
    assert get.status == 204 and get.headers["Replay-Nonce"] != head.headers["Replay-Nonce"]
    assert 'rel="index"' in get.headers["Link"]


async def test_ok_issue_http01_dns_and_ip(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    names = ["www.example.com", "api.example.com", "127.0.0.1"]
    order, _key = await acme_gateway.issue(client, names)
    assert order.body["status"] == "valid", order.body
    chain = await client.post(order.body["certificate"], None)
    assert chain.status == 200
    assert chain.headers["Content-Type"] == "application/pem-certificate-chain"
    certs = x509.load_pem_x509_certificates(chain.text.encode())
    assert len(certs) >= 2
    leaf = certs[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(map(str, san.get_values_for_type(x509.DNSName))) == names[:2][::-1]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert leaf.issuer == certs[1].subject
    leaf.verify_directly_issued_by(certs[1])


async def test_ok_legacy_directory_issues(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account(legacy=True)
    assert (
        "/profiles/" in client.directory["newOrder"]
        and "/applications/" not in client.directory["newOrder"]
    )
    order, _ = await acme_gateway.issue(client, ["legacy.example.com"])
    assert order.body["status"] == "valid", order.body


async def test_fail_http01_wrong_answer_invalidates(acme_gateway: AcmeGateway) -> None:
    acme_gateway.services  # noqa: B018
    client = await acme_gateway.account()
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "x.example.com"}]}
    )
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    acme_gateway.responder.tokens[chall["token"]] = "wrong"
    await client.post(chall["url"], {})
    final = await poll(client, order.headers["Location"], {"invalid"}, seconds=30)
    assert final.body["status"] == "invalid"
    authz = await client.post(order.body["authorizations"][0], None)
    assert authz.body["status"] == "invalid"
    failed = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    assert failed["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"


async def test_ok_challenge_answer_shows_a_quick_validation_ended(
    acme_gateway: AcmeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validation that ends within ANSWER_WAIT is shown ended in the challenge response,
    and the authorization and order are already settled for the client's first poll."""
    monkeypatch.setattr(authorizations, "ANSWER_WAIT", 10.0)  # loopback: far more than enough
    client = await acme_gateway.account()
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "q.example.com"}]}
    )
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    acme_gateway.responder.tokens[chall["token"]] = f"{chall['token']}.{client.key.thumbprint()}"
    reply = await client.post(chall["url"], {})
    assert reply.body["status"] == "valid" and reply.body["validated"].endswith("Z"), reply.body
    first = await client.post(order.headers["Location"], None)
    assert first.body["status"] == "ready", first.body


async def test_ok_challenge_answer_does_not_wait_for_a_slow_validation(
    acme_gateway: AcmeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validation still retrying after ANSWER_WAIT answers `processing` at once and ends
    in the background."""
    monkeypatch.setattr(authorizations, "ANSWER_WAIT", 0.05)
    client = await acme_gateway.account()
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "s.example.com"}]}
    )
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    acme_gateway.responder.tokens[chall["token"]] = "wrong"  # retried after retry_delay (1 s)
    started = time.monotonic()
    reply = await client.post(chall["url"], {})
    assert time.monotonic() - started < 0.9  # answered before the first retry
    assert reply.body["status"] == "processing", reply.body
    final = await poll(client, order.headers["Location"], {"invalid"}, seconds=30)
    assert final.body["status"] == "invalid"


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
