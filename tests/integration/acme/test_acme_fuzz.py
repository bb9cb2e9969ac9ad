"""Property tests (hypothesis): whatever is POSTed to an ACME endpoint, the answer is an
RFC 8555 §6.7 problem document with a 4xx status, never a 5xx. Five shapes of input, from
noise to correctly signed requests with random payloads, at every POST endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.acmeclient import AcmeClient, Key, Reply, b64, jws
from tests.helpers.acmeharness import AcmeGateway

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROBLEM = "application/problem+json"
ACME_ERROR = "urn:ietf:params:acme:error:"

# Endpoint name → how a correct request is signed: "jwk" (newAccount), "kid", or "either"
# (revokeCert: account key or the certificate's key, §7.6).
ENDPOINTS = {
    "newAccount": "jwk",
    "account": "kid",
    "orders": "kid",
    "keyChange": "kid",
    "newOrder": "kid",
    "order": "kid",
    "authz": "kid",
    "chall": "kid",
    "finalize": "kid",
    "cert": "kid",
    "revokeCert": "either",
}


@dataclass
class Targets:
    client: AcmeClient
    urls: dict[str, str]


_TARGETS: dict[int, Targets] = {}


async def _targets(gateway: AcmeGateway) -> Targets:
    """One account with an issued certificate and a pending order, made once per gateway
    (hypothesis runs many examples inside one test function and its fixtures)."""
    found = _TARGETS.get(id(gateway))
    if found is not None and found.client.http is gateway.client:
        return found
    client = await gateway.account()
    issued, _key = await gateway.issue(client, ["fuzz.example.com"])
    assert issued.body["status"] == "valid", issued.body
    pending = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": "fuzz-pending.example.com"}]},
    )
    authz_url = pending.body["authorizations"][0]
    authz = await client.post(authz_url, None)
    account = await client.post(client.kid or "", None)
    urls = {
        "newAccount": client.directory["newAccount"],
        "account": client.kid or "",
        "orders": account.body["orders"],
        "keyChange": client.directory["keyChange"],
        "newOrder": client.directory["newOrder"],
        "order": pending.headers["Location"],
        "authz": authz_url,
        "chall": authz.body["challenges"][0]["url"],
        "finalize": pending.body["finalize"],
        "cert": issued.body["certificate"],
        "revokeCert": client.directory["revokeCert"],
    }
    _TARGETS.clear()
    _TARGETS[id(gateway)] = Targets(client, urls)
    return _TARGETS[id(gateway)]


def _assert_problem(reply: Reply, *, allow_success: bool = False) -> None:
    assert reply.status < 500, (reply.status, reply.text)
    if allow_success and reply.status < 400:
        return
    assert 400 <= reply.status < 500, (reply.status, reply.text)
    assert reply.headers["Content-Type"].startswith(PROBLEM), reply.headers
    assert str(reply.body.get("type", "")).startswith(ACME_ERROR), reply.body
    assert reply.body.get("status") == reply.status, reply.body
    assert isinstance(reply.body.get("detail"), str)
    assert "Traceback" not in reply.text


# --- strategies -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
b64ish = st.text(alphabet=B64URL, max_size=120) | st.text(max_size=40)
endpoints = st.sampled_from(sorted(ENDPOINTS))

# Members an RFC 8555 payload may have, with values both plausible and absurd, so that a
# correctly signed request gets past the JWS pipeline into each handler's decoding.
FIELDS = [
    "identifiers", "csr", "status", "contact", "certificate", "reason", "onlyReturnExisting",
    "termsOfServiceAgreed", "externalAccountBinding", "account", "oldKey", "replaces",
    "profile", "notBefore", "notAfter", "protected", "payload", "signature",
]  # fmt: skip
plausible = (
    st.sampled_from(["deactivated", "valid", "mailto:a@example.com", "x.example.com", "AAAA"])
    | st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["dns", "ip", "email"]), "value": st.text(max_size=30)}
        ),
        max_size=3,
    )
    | st.integers(min_value=-2, max_value=12)
    | b64ish
    | json_values
)
payloads = (
    st.dictionaries(st.sampled_from(FIELDS), plausible, max_size=5)
    | json_values
    | st.just({})
    | st.none()  # POST-as-GET
)
header_keys = st.sampled_from(["alg", "nonce", "url", "jwk", "kid", "crit", "b64", "typ"])
headers = st.dictionaries(header_keys | st.text(max_size=6), json_values, max_size=6)


# --- properties ---------------------------------------------------------------------------


@FUZZ
@given(endpoint=endpoints, body=st.binary(max_size=300) | json_values.map(json.dumps))
async def test_fuzz_raw_bodies(acme_gateway: AcmeGateway, endpoint: str, body: Any) -> None:
    targets = await _targets(acme_gateway)
    _assert_problem(await targets.client.raw(targets.urls[endpoint], body))


@FUZZ
@given(
    endpoint=endpoints,
    protected=headers,
    use_nonce=st.booleans(),
    use_url=st.booleans(),
    payload=b64ish,
    signature=b64ish,
)
async def test_fuzz_random_protected_headers(
    acme_gateway: AcmeGateway,
    endpoint: str,
    protected: dict[str, Any],
    use_nonce: bool,
    use_url: bool,
    payload: str,
    signature: str,
) -> None:
    targets = await _targets(acme_gateway)
    client, url = targets.client, targets.urls[endpoint]
    header = dict(protected)
    if use_nonce:
        header["nonce"] = await client.new_nonce()
    if use_url:
        header["url"] = url
    body = {"protected": b64(json.dumps(header).encode()), "payload": payload}
    body["signature"] = signature
    _assert_problem(await client.raw(url, json.dumps(body)))


@FUZZ
@given(
    endpoint=endpoints,
    members=st.dictionaries(
        st.sampled_from(["protected", "payload", "signature", "header", "signatures"])
        | st.text(max_size=5),
        b64ish | json_values,
        max_size=5,
    ),
)
async def test_fuzz_random_b64_members(
    acme_gateway: AcmeGateway, endpoint: str, members: dict[str, Any]
) -> None:
    targets = await _targets(acme_gateway)
    _assert_problem(await targets.client.raw(targets.urls[endpoint], json.dumps(members)))


@FUZZ
@given(
    endpoint=endpoints,
    payload=payloads,
    signature=st.binary(min_size=0, max_size=132),
    by_jwk=st.booleans(),
)
async def test_fuzz_wrong_signatures(
    acme_gateway: AcmeGateway, endpoint: str, payload: Any, signature: bytes, by_jwk: bool
) -> None:
    """Valid-shaped JWS (fresh nonce, right url, jwk or kid) whose signature is noise."""
    targets = await _targets(acme_gateway)
    client, url = targets.client, targets.urls[endpoint]
    mode = ENDPOINTS[endpoint]
    use_jwk = mode == "jwk" or (mode == "either" and by_jwk)
    body = jws(
        client.key,
        url,
        payload,
        nonce=await client.new_nonce(),
        kid=None if use_jwk else client.kid,
    )
    body["signature"] = b64(signature)
    _assert_problem(await client.raw(url, json.dumps(body)))


@FUZZ
@given(endpoint=endpoints, payload=payloads, by_jwk=st.booleans())
async def test_fuzz_signed_random_payloads(
    acme_gateway: AcmeGateway, endpoint: str, payload: Any, by_jwk: bool
) -> None:
    """Correctly signed requests (fresh nonce, right url and kid) with random payloads: a
    payload may happen to be acceptable (e.g. POST-as-GET of the order), so a 2xx is
    allowed; an error is still a 4xx problem document."""
    targets = await _targets(acme_gateway)
    client, url = targets.client, targets.urls[endpoint]
    mode = ENDPOINTS[endpoint]
    use_jwk = mode == "jwk" or (mode == "either" and by_jwk)
    key = client.key if not (use_jwk and endpoint == "newAccount") else Key.ec()
    body = jws(
        key, url, payload, nonce=await client.new_nonce(), kid=None if use_jwk else client.kid
    )
    reply = await client.raw(url, json.dumps(body))
    _assert_problem(reply, allow_success=True)
    if reply.status < 400 and endpoint == "account" and reply.body.get("status") != "valid":
        _TARGETS.clear()  # the payload deactivated the account: start over with a new one


@FUZZ
# aiohttp's router never matches "{" or "}" in a path segment: such a URL is no ACME route.
@given(cert_id=b64ish.filter(lambda s: s and not set(s) & set("{}")))
async def test_fuzz_renewal_info_ids(acme_gateway: AcmeGateway, cert_id: str) -> None:
    """The one GET with a client-chosen path segment (RFC 9773 §4.1)."""
    targets = await _targets(acme_gateway)
    base = targets.client.path(targets.client.directory["renewalInfo"])
    resp = await acme_gateway.client.get(base + "/" + quote(cert_id, safe=""))
    text = await resp.text()
    if resp.status == 200:  # only the issued certificate's id may be found
        return
    assert 400 <= resp.status < 500 or resp.status == 405, (resp.status, text)
    if resp.status != 405:
        assert resp.headers["Content-Type"].startswith(PROBLEM), text
