"""tls-alpn-01 (RFC 8737) through the in-process gateway: the validator connects to a
loopback TLS responder (acme.tlsalpn01_port), offers ALPN acme-tls/1 with the identifier as
SNI (the reverse name for IPs, RFC 8738 §6), and checks the self-signed certificate."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from tests.helpers.acmeclient import AcmeClient, b64, csr_der
from tests.helpers.acmeharness import (
    AcmeGateway,
    AlpnResponder,
    acme_identifier,
    alpn_certificate,
    alpn_sni,
    check_chain,
    poll,
)

ERROR = "urn:ietf:params:acme:error:"


async def _order(client: AcmeClient, names: list[str]) -> Any:
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [acme_identifier(n) for n in names]}
    )
    assert order.status == 201, order.body
    return order


async def _alpn_challenge(client: AcmeClient, authz_url: str) -> tuple[str, dict[str, Any]]:
    authz = await client.post(authz_url, None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "tls-alpn-01")
    return authz.body["identifier"]["value"], chall


async def _settled(client: AcmeClient, authz_url: str, seconds: float = 30) -> dict[str, Any]:
    """The authorization once its validation has a verdict."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        authz = await client.post(authz_url, None)
        if authz.body["status"] != "pending" or asyncio.get_running_loop().time() > deadline:
            return dict(authz.body)
        await asyncio.sleep(0.1)


async def test_ok_tlsalpn01_dns_and_ip_issue(acme_gateway: AcmeGateway) -> None:
    alpn = acme_gateway.alpn
    assert alpn is not None
    client = await acme_gateway.account()
    names = ["alpn.example.com", "127.0.0.1"]
    order = await _order(client, names)
    for authz_url in order.body["authorizations"]:
        name, chall = await _alpn_challenge(client, authz_url)
        key_auth = f"{chall['token']}.{client.key.thumbprint()}"
        alpn.serve(alpn_sni(name), *alpn_certificate(name, key_auth))
        reply = await client.post(chall["url"], {})
        assert reply.status == 200 and reply.body["status"] in ("processing", "valid"), reply.body
    ready = await poll(client, order.headers["Location"], {"ready", "invalid"})
    assert ready.body["status"] == "ready", ready.body
    # The validator sent the name, and for the IP its in-addr.arpa name, as SNI.
    assert {"alpn.example.com", "1.0.0.127.in-addr.arpa"} <= set(alpn.snis)
    for authz_url in order.body["authorizations"]:
        authz = await client.post(authz_url, None)
        chall = next(c for c in authz.body["challenges"] if c["type"] == "tls-alpn-01")
        assert authz.body["status"] == "valid" and chall["status"] == "valid"
        assert chall["validated"].endswith("Z")
    der, _key = csr_der(names)
    final = await client.post(ready.body["finalize"], {"csr": b64(der)})
    assert final.status == 200, final.body
    done = await poll(client, order.headers["Location"], {"valid", "invalid"})
    assert done.body["status"] == "valid", done.body
    chain = await client.post(done.body["certificate"], None)
    root = (acme_gateway.config.home / "root-ca.pem").read_text()
    check_chain(chain.text, names, root)


def _serve_broken(alpn: AlpnResponder, name: str, key_auth: str, how: str) -> None:
    sni = alpn_sni(name)
    if how == "wrong-digest":
        alpn.serve(sni, *alpn_certificate(name, key_auth, digest=hashlib.sha256(b"x").digest()))
    elif how == "no-alpn":
        alpn.serve(sni, *alpn_certificate(name, key_auth), alpn=False)
    elif how == "no-extension":
        alpn.serve(sni, *alpn_certificate(name, key_auth, with_extension=False))
    elif how == "non-critical":
        alpn.serve(sni, *alpn_certificate(name, key_auth, critical=False))
    elif how == "other-san":
        alpn.serve(sni, *alpn_certificate(name, key_auth, sans=[name, "other.example.com"]))
    elif how == "no-listener":
        pass  # nothing registered: the handshake is refused (unrecognized_name)
    else:
        raise AssertionError(how)


# (identifier, how the responder misbehaves, problem type, words in the detail)
_BROKEN = [
    ("digest.example.com", "wrong-digest", "incorrectResponse", "acmeIdentifier"),
    ("noalpn.example.com", "no-alpn", "tls", "acme-tls/1"),
    ("noext.example.com", "no-extension", "unauthorized", "1.3.6.1.5.5.7.1.31"),
    ("noncritical.example.com", "non-critical", "unauthorized", "critical"),
    ("twosans.example.com", "other-san", "unauthorized", "not exactly"),
    ("nobody.example.com", "no-listener", "tls", "nobody.example.com"),
]


async def test_fail_tlsalpn01_each_broken_response(acme_gateway: AcmeGateway) -> None:
    """One order, one identifier per way to get RFC 8737 §3 wrong; validations run
    concurrently, so all the retries (§8.2) take the time of one."""
    alpn = acme_gateway.alpn
    assert alpn is not None
    client = await acme_gateway.account()
    order = await _order(client, [name for name, *_ in _BROKEN])
    by_name = {}
    for authz_url in order.body["authorizations"]:
        name, chall = await _alpn_challenge(client, authz_url)
        how = next(h for n, h, *_ in _BROKEN if n == name)
        _serve_broken(alpn, name, f"{chall['token']}.{client.key.thumbprint()}", how)
        by_name[name] = authz_url
        assert (await client.post(chall["url"], {})).status == 200
    for name, _how, problem, words in _BROKEN:
        authz = await _settled(client, by_name[name])
        assert authz["status"] == "invalid", (name, authz)
        chall = next(c for c in authz["challenges"] if c["type"] == "tls-alpn-01")
        assert chall["status"] == "invalid"
        assert chall["error"]["type"] == ERROR + problem, (name, chall["error"])
        assert words in chall["error"]["detail"], (name, chall["error"])
        assert chall["error"]["identifier"] == {"type": "dns", "value": name}
    final = await client.post(order.headers["Location"], None)
    assert final.body["status"] == "invalid"
