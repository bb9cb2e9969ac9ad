"""The validators connect only where the outbound policy allows (gateway.core.outbound):
a name whose AAAA record is an IPv4-mapped loopback address is not reached under the
default validation networks (issue 15, finding 1)."""

from __future__ import annotations

from tests.helpers.acmeharness import AcmeGateway, poll

SETTINGS = "/api/v1/applications/demo/profiles/tls-server/acme"
ERROR = "urn:ietf:params:acme:error:"


async def test_fail_mapped_loopback_aaaa_is_not_reached(acme_gateway: AcmeGateway) -> None:
    await acme_gateway.rest("PATCH", SETTINGS, {"validation_networks": ["0.0.0.0/0", "::/0"]})
    name = "mapped.example.com"
    acme_gateway.dns.aaaa[name] = "::ffff:127.0.0.1"
    client = await acme_gateway.account()
    order = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
    )
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    key_auth = f"{chall['token']}.{client.key.thumbprint()}"
    hits: list[str] = []

    class Counting(dict[str, str]):
        def get(self, key: str, default: object = None) -> object:
            hits.append(key)
            return super().get(key, default)

    acme_gateway.responder.tokens = Counting({chall["token"]: key_auth})
    assert (await client.post(chall["url"], {})).status == 200
    final = await poll(client, order.headers["Location"], {"ready", "invalid"}, seconds=30)
    assert final.body["status"] == "invalid", final.body
    assert hits == []  # the validator never connected to 127.0.0.1
    authz = await client.post(order.body["authorizations"][0], None)
    chall = next(c for c in authz.body["challenges"] if c["type"] == "http-01")
    assert chall["error"]["type"] == ERROR + "rejectedIdentifier", chall
    assert "::ffff:127.0.0.1" in chall["error"]["detail"]
