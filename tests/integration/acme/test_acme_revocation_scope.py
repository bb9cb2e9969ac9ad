"""Revocation stays inside the directory that issued the certificate (RFC 8555 §7.6;
issue 15, finding 4): two applications attach the same profile, and an account of the
second one, holding valid authorizations for the same name, cannot revoke (nor look up
through ARI) the first one's certificate. Neither can the legacy directory."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from protocols.acme.ari import cert_id
from tests.helpers.acmeclient import AcmeClient, b64
from tests.helpers.acmeharness import AcmeGateway

ERROR = "urn:ietf:params:acme:error:"


async def _second_application(gw: AcmeGateway) -> AcmeClient:
    await gw.rest("POST", "/api/v1/applications", {"slug": "other", "name": "Other"}, status=201)
    await gw.rest(
        "POST",
        "/api/v1/applications/other/profiles",
        {"profile": "tls-server", "methods": {"acme": {"enabled": True}}},
        status=201,
    )
    path = "/api/v1/applications/other/profiles/tls-server/acme"
    await gw.rest("PATCH", path, {"validation_networks": ["127.0.0.0/8", "::1/128"]}, status=200)
    eab = await gw.rest("POST", path + "/eab", {}, status=201)
    client = await AcmeClient(gw.client, path.removeprefix("/api/v1") + "/directory").start()
    reply = await client.register(eab["eab_kid"], eab["eab_hmac_key"])
    assert reply.status == 201, reply.body
    return client


async def test_fail_other_application_cannot_revoke(acme_gateway: AcmeGateway) -> None:
    owner = await acme_gateway.account()
    order, _ = await acme_gateway.issue(owner, ["shared.example.com"])
    pem = (await owner.post(order.body["certificate"], None)).text
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    cert_b64 = b64(leaf.public_bytes(Encoding.DER))

    other = await _second_application(acme_gateway)
    # The other application's account validates the very same name …
    ready = await acme_gateway.ready_order(other, ["shared.example.com"])
    assert ready.body["status"] == "ready", ready.body
    # … yet the certificate is not one of its directory's.
    denied = await other.post(other.directory["revokeCert"], {"certificate": cert_b64})
    assert denied.status == 404 and denied.problem == "malformed", denied.body
    info = await acme_gateway.client.get(
        other.path(other.directory["renewalInfo"]) + "/" + cert_id(leaf)
    )
    assert info.status == 404

    legacy = await acme_gateway.account(legacy=True)
    await acme_gateway.ready_order(legacy, ["shared.example.com"])
    denied = await legacy.post(legacy.directory["revokeCert"], {"certificate": cert_b64})
    assert denied.status == 404, denied.body

    listed = await acme_gateway.rest("GET", "/api/v1/applications/demo/certificates")
    mine = next(c for c in listed["items"] if c["serial"] == format(leaf.serial_number, "x"))
    assert mine["status"] == "active"
    done = await owner.post(owner.directory["revokeCert"], {"certificate": cert_b64})
    assert done.status == 200, done.body
