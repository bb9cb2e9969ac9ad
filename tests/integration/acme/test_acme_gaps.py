"""Requirements of the ACME issue that the other ACME tests leave unchecked: jwk xor kid
(RFC 8555 §6.2), every account-key algorithm through the whole pipeline, EAB HS384 and
its failure modes (§7.3.4), EAB rotation through the REST API, account contact update
(§7.3.2), keyChange refusals (§7.3.5), revocation by the account key with a reason
(§7.6), `replaces` of another account's certificate (RFC 9773 §5), bounded validation
retries (§8.2), per-profile validation networks, per-target timeouts, the `challenges`
setting with wildcards (§7.1.3) and IP identifiers (RFC 8738 §7), and policy denials with
one subproblem per refused identifier (§6.7.1)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.core.acme import ChallengeType, Identifier, IdentifierType
from protocols.acme import validators
from protocols.acme.ari import cert_id
from protocols.acme.server import ValidationSettings
from tests.helpers.acmeclient import AcmeClient, Key, b64, csr_der, eab, jws
from tests.helpers.acmeharness import AcmeGateway, poll

SETTINGS = "/api/v1/applications/demo/profiles/tls-server/acme"
CERTS = "/api/v1/applications/demo/certificates"
ERROR = "urn:ietf:params:acme:error:"


async def _order(client: AcmeClient, *values: str, kind: str = "dns") -> Any:
    reply = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": kind, "value": v} for v in values]},
    )
    return reply


async def _account_id(client: AcmeClient) -> str:
    return (client.kid or "").rstrip("/").rsplit("/", 1)[-1]


# --- JWS: jwk xor kid, every algorithm -----------------------------------------------------


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


# --- External Account Binding --------------------------------------------------------------


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


# --- accounts ------------------------------------------------------------------------------


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


# --- revocation, ARI -----------------------------------------------------------------------


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


# --- validation: retries, networks, timeouts, challenge selection --------------------------


class _Answers(dict[str, str]):
    """Responder tokens that answer wrong for the first `wrong` requests, counting them."""

    def __init__(self, token: str, value: str, wrong: int) -> None:
        super().__init__({token: value})
        self.hits = 0
        self.wrong = wrong

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self:
            return default
        self.hits += 1
        return "wrong" if self.hits <= self.wrong else self[key]


async def _http01(acme_gateway: AcmeGateway, client: AcmeClient, name: str, wrong: int) -> Any:
    order = await _order(client, name)
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    answers = _Answers(chall["token"], f"{chall['token']}.{client.key.thumbprint()}", wrong)
    acme_gateway.responder.tokens = answers
    assert (await client.post(chall["url"], {})).status == 200
    final = await poll(client, order.headers["Location"], {"ready", "invalid"}, seconds=30)
    return final, answers, order


async def test_ok_validation_retried_until_right(acme_gateway: AcmeGateway) -> None:
    """§8.2: a failed attempt is retried; the second attempt's right answer validates."""
    client = await acme_gateway.account()
    final, answers, _ = await _http01(acme_gateway, client, "retry.example.com", wrong=1)
    assert final.body["status"] == "ready", final.body
    assert answers.hits == 2


async def test_fail_validation_retries_are_bounded(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    final, answers, order = await _http01(acme_gateway, client, "bounded.example.com", wrong=99)
    assert final.body["status"] == "invalid", final.body
    attempts = ValidationSettings().attempts
    assert answers.hits == attempts
    await asyncio.sleep(1.5)  # no further attempt comes later
    assert answers.hits == attempts
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    assert chall["error"]["type"] == ERROR + "incorrectResponse"


async def test_fail_validation_networks_per_profile(acme_gateway: AcmeGateway) -> None:
    """A profile whose validators may reach only 10.0.0.0/8 does not connect to a name that
    resolves to 127.0.0.1; the legacy profile keeps its own (loopback) networks."""
    view = await acme_gateway.rest(
        "PATCH", SETTINGS, {"validation_networks": ["10.0.0.0/8"]}, status=200
    )
    assert view["validation_networks"] == ["10.0.0.0/8"]
    client = await acme_gateway.account()
    final, answers, order = await _http01(acme_gateway, client, "netpolicy.example.com", wrong=0)
    assert final.body["status"] == "invalid", final.body
    assert answers.hits == 0  # the validator never connected
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    assert chall["error"]["type"] == ERROR + "rejectedIdentifier", chall
    assert "outside" in chall["error"]["detail"], chall
    legacy = await acme_gateway.account(legacy=True)
    ready = await acme_gateway.ready_order(legacy, ["netpolicy-legacy.example.com"])
    assert ready.body["status"] == "ready", ready.body


@pytest.fixture
async def silent_tcp() -> AsyncIterator[int]:
    """A TCP listener that accepts and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()


@pytest.fixture
def silent_udp() -> Any:
    """A UDP socket that swallows DNS queries."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(ChallengeType.HTTP_01, id="fail/http-01"),
        pytest.param(ChallengeType.TLS_ALPN_01, id="fail/tls-alpn-01"),
    ],
)
async def test_fail_per_target_timeout(silent_tcp: int, kind: ChallengeType) -> None:
    """A target that accepts and never answers costs one timeout, then a connection error."""
    settings = ValidationSettings(http01_port=silent_tcp, tlsalpn01_port=silent_tcp, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(validators.ValidationFailed) as err:
        await validators.validate(
            kind, Identifier(IdentifierType.IP, "127.0.0.1"), "tok", "tok.x", settings,
            ["127.0.0.0/8"],
        )  # fmt: skip
    assert time.monotonic() - started < 2.5
    assert err.value.kind == "connection", err.value.detail


async def test_fail_dns01_resolver_timeout(silent_udp: str) -> None:
    settings = ValidationSettings(resolvers=(silent_udp,), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(validators.ValidationFailed) as err:
        await validators.validate(
            ChallengeType.DNS_01, Identifier(IdentifierType.DNS, "t.example.com"), "tok",
            "tok.x", settings, ["0.0.0.0/0"],
        )  # fmt: skip
    assert time.monotonic() - started < 2.5
    assert err.value.kind == "dns", err.value.detail


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


async def test_fail_policy_denial_one_subproblem_per_identifier(
    acme_gateway: AcmeGateway,
) -> None:
    client = await acme_gateway.account()
    names = ["ok-policy.example.com", "a.deep.example.com", "b.deep.example.com"]
    ready = await acme_gateway.ready_order(client, names)
    assert ready.body["status"] == "ready", ready.body
    der, _ = csr_der(names)
    final = await client.post(ready.body["finalize"], {"csr": b64(der)})
    assert final.problem == "rejectedIdentifier", final.body
    refused = sorted(s["identifier"]["value"] for s in final.body["subproblems"])
    assert refused == ["a.deep.example.com", "b.deep.example.com"], final.body
    for sub in final.body["subproblems"]:
        assert sub["type"] == ERROR + "rejectedIdentifier"
    after = await client.post(ready.headers["Location"], None)
    assert after.body["status"] == "invalid" and after.body["error"]["type"].startswith(ERROR)


async def test_ok_new_nonce_get_and_head_headers(acme_gateway: AcmeGateway) -> None:
    for legacy in (False, True):
        client = await acme_gateway.acme(legacy=legacy)
        path = client.path(client.directory["newNonce"])
        for method, status in (("HEAD", 200), ("GET", 204)):
            resp = await acme_gateway.client.request(method, path)
            assert resp.status == status
            assert resp.headers["Cache-Control"] == "no-store"
            assert resp.headers["Replay-Nonce"]


async def test_fail_directory_of_disabled_acme(acme_gateway: AcmeGateway) -> None:
    """Only a profile whose ACME method is enabled has a directory."""
    path = acme_gateway.path(acme_gateway.bootstrap["acme_directory"])
    assert (await acme_gateway.client.get(path)).status == 200
    await acme_gateway.rest("PATCH", SETTINGS, {"enabled": False}, status=200)
    resp = await acme_gateway.client.get(path)
    assert resp.status == 404, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    await acme_gateway.rest("PATCH", SETTINGS, {"enabled": True}, status=200)
    assert (await acme_gateway.client.get(path)).status == 200


async def test_fail_kid_of_other_directory(acme_gateway: AcmeGateway) -> None:
    """Accounts live in one directory: a legacy account's kid (and key) is unknown to the
    application-scoped directory."""
    legacy = await acme_gateway.account(legacy=True)
    app = await acme_gateway.acme(key=legacy.key)
    app.kid = legacy.kid
    reply = await _order(app, "other-dir.example.com")
    assert reply.problem == "accountDoesNotExist", reply.body
