"""ACME through a legacy profile directory held by a legacy project's approval policy
(issue 12, item 5): finalize leaves the order `processing` with Retry-After (RFC 8555
§7.4, §7.1.6) until a Product Admin named in the policy decides at
/api/v1/projects/{id}/requests; approval makes it `valid` with a certificate that has no
application, rejection makes it `invalid`."""

from __future__ import annotations

from typing import Any

from tests.helpers.acmeclient import AcmeClient, b64, csr_der
from tests.helpers.acmeharness import AcmeGateway, check_chain
from tests.integration.api.legacy_helpers import add_legacy_policy


async def _held(gateway: AcmeGateway, names: list[str]) -> tuple[AcmeClient, str, dict[str, Any]]:
    """A legacy policy naming the admin, and an order finalized under it: (client, order
    URL, the open legacy request)."""
    admin = str((await gateway.rest("GET", "/api/v1/me", status=200))["principal"]["id"])
    await add_legacy_policy(gateway.services, gateway.bootstrap["legacy_profile_id"], [admin])
    client = await gateway.account(legacy=True)
    ready = await gateway.ready_order(client, names)
    assert ready.body["status"] == "ready", ready.body
    der, _key = csr_der(names)
    final = await client.post(ready.body["finalize"], {"csr": b64(der)})
    assert final.status == 200, final.body
    assert final.body["status"] == "processing" and int(final.headers["Retry-After"]) >= 1
    project = (await gateway.rest("GET", "/api/v1/projects", status=200))["items"][0]["id"]
    listed = await gateway.rest("GET", f"/api/v1/projects/{project}/requests?state=open")
    (request,) = listed["items"]
    assert request["application_id"] is None and request["method"] == "acme"
    return client, ready.headers["Location"], {**request, "project": project}


async def test_ok_legacy_pending_then_approved(acme_gateway: AcmeGateway) -> None:
    names = ["legacy-approve.example.com"]
    client, order_url, request = await _held(acme_gateway, names)
    assert (await client.post(order_url, None)).body["status"] == "processing"
    approved = await acme_gateway.rest(
        "POST",
        f"/api/v1/projects/{request['project']}/requests/{request['id']}/approve",
        {},
        status=200,
    )
    assert approved["state"] == "issued"
    done = await client.post(order_url, None)
    assert done.body["status"] == "valid", done.body
    chain = await client.post(done.body["certificate"], None)
    check_chain(chain.text, names, acme_gateway.root_pem)
    listed = await acme_gateway.rest("GET", f"/api/v1/certificates?q={names[0]}", status=200)
    assert [(i["id"], i["application"]) for i in listed["items"]] == [
        (approved["certificate_id"], None)
    ]


async def test_fail_legacy_pending_then_rejected(acme_gateway: AcmeGateway) -> None:
    client, order_url, request = await _held(acme_gateway, ["legacy-reject.example.com"])
    await acme_gateway.rest(
        "POST",
        f"/api/v1/projects/{request['project']}/requests/{request['id']}/reject",
        {"comment": "not ours"},
        status=200,
    )
    done = await client.post(order_url, None)
    assert done.body["status"] == "invalid", done.body
    assert "not ours" in done.body["error"]["detail"]
