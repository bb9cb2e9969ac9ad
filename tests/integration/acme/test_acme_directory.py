"""Directory `meta` (RFC 8555 §7.1.1), terms-of-service agreement (§7.3), the `profile`
field of draft-aaron-acme-profiles, the Link headers of a certificate download
(§7.4.2), newNonce by GET and HEAD (§7.2), and no directory where ACME is disabled."""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.helpers.acmeharness import AcmeGateway, check_chain

SETTINGS = "/api/v1/applications/demo/profiles/tls-server/acme"
TOS = "https://pki.example.com/terms-v2.pdf"


def _links(headers: object) -> dict[str, list[str]]:
    """rel → targets of every Link header."""
    out: dict[str, list[str]] = {}
    for value in headers.getall("Link", []):  # type: ignore[attr-defined]
        match = re.fullmatch(r'<([^>]*)>;\s*rel="([^"]+)"', value.strip())
        assert match, value
        out.setdefault(match.group(2), []).append(match.group(1))
    return out


async def test_ok_default_meta(acme_gateway: AcmeGateway) -> None:
    for legacy in (False, True):
        client = await acme_gateway.acme(legacy=legacy)
        meta = client.directory["meta"]
        # No terms configured; EAB required by default; one profile per directory, so no
        # `profiles` (draft-aaron-acme-profiles); no CAA checking, so no caaIdentities.
        assert meta == {"externalAccountRequired": True}, meta
        assert client.directory["renewalInfo"].endswith("/acme/renewal-info")


async def test_ok_terms_of_service_and_optional_eab(acme_gateway: AcmeGateway) -> None:
    view = await acme_gateway.rest(
        "PATCH", SETTINGS, {"terms_of_service": TOS, "eab_required": False}, status=200
    )
    assert view["terms_of_service"] == TOS and view["eab_required"] is False
    client = await acme_gateway.acme()
    assert client.directory["meta"] == {"externalAccountRequired": False, "termsOfService": TOS}

    # §7.3: with terms configured, an account needs termsOfServiceAgreed: true.
    refused = await client.register(None, None, termsOfServiceAgreed=False)
    assert refused.problem == "malformed" and TOS in refused.body["detail"]
    assert _links(refused.headers)["terms-of-service"] == [TOS]
    created = await client.register(None, None)  # agrees; no EAB needed now
    assert created.status == 201, created.body
    assert created.body["status"] == "valid"


async def test_fail_profile_field_in_new_order(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    for profile in ("tls-server", "shortlived"):
        reply = await client.post(
            client.directory["newOrder"],
            {"identifiers": [{"type": "dns", "value": "p.example.com"}], "profile": profile},
        )
        assert (reply.status, reply.problem) == (400, "invalidProfile"), reply.body
    account = await client.post(client.kid or "", None)
    listed = await client.post(account.body["orders"], None)
    assert listed.body["orders"] == []  # nothing was half-written


async def test_ok_certificate_links_up_no_alternate(acme_gateway: AcmeGateway) -> None:
    client = await acme_gateway.account()
    order, _key = await acme_gateway.issue(client, ["links.example.com"])
    assert order.body["status"] == "valid", order.body
    chain = await client.post(order.body["certificate"], None)
    certs = x509.load_pem_x509_certificates(chain.text.encode())
    check_chain(chain.text, ["links.example.com"], acme_gateway.root_pem)
    links = _links(chain.headers)
    # §7.4.2: one chain per CA, so no alternates; rel="up" is the issuer certificate.
    assert "alternate" not in links, links
    assert links["index"] == [client.directory["newNonce"].replace("new-nonce", "directory")]
    (up,) = links["up"]
    assert re.fullmatch(r"http://127\.0\.0\.1:8080/pki/ca/[0-9a-f-]{36}\.crt", up), up
    issuer = await acme_gateway.client.get(acme_gateway.path(up))
    assert issuer.status == 200
    assert await issuer.read() == certs[1].public_bytes(Encoding.DER)
    assert certs[0].issuer == certs[1].subject


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
