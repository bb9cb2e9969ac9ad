"""SCEP through a legacy profile URL held by a legacy project's approval policy (issue 12,
item 5): PKCSReq answers PENDING, CertPoll keeps answering PENDING until a Product Admin
named in the policy approves the request at /api/v1/projects/{id}/requests, then SUCCESS
with the certificate; the request has no application."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.helpers import scepclient as sc
from tests.integration.api.legacy_helpers import add_legacy_policy
from tests.integration.scep.conftest import Scep

pytestmark = pytest.mark.asyncio


async def test_ok_legacy_certpoll_after_approval(scep: Scep) -> None:
    boot = scep.bootstrap
    path = urllib.parse.urlsplit(boot["legacy_scep_url"]).path.removesuffix("/pkiclient.exe")
    admin = str((await scep.api("GET", "/api/v1/me"))["principal"]["id"])
    await add_legacy_policy(scep.services, boot["legacy_profile_id"], [admin])
    project = (await scep.api("GET", "/api/v1/projects"))["items"][0]["id"]

    device = sc.Requester.new("legacy-wait.test")
    csr = sc.make_csr(device.key, "legacy-wait.test", boot["legacy_scep_challenge"])
    ra, issuing, *_ = await scep.ca_certs(path)
    reply = await scep.enroll(device, csr, transaction_id="legacy-wait", path=path)
    assert reply.status == 3, reply  # PENDING (RFC 8894 §3.3.2.2)
    poll = sc.issuer_and_subject(issuing.subject, csr.subject)
    message = sc.pki_message(device, ra, 20, poll, transaction_id="legacy-wait")
    assert sc.read_reply(await scep.send(message, path=path), device).status == 3

    held = (await scep.api("GET", f"/api/v1/projects/{project}/requests"))["items"]
    (request,) = [r for r in held if r["requester"] == "scep:legacy-wait"]
    assert request["application_id"] is None and request["method"] == "scep"
    await scep.api("POST", f"/api/v1/projects/{project}/requests/{request['id']}/approve", {})
    reply = sc.read_reply(await scep.send(message, path=path), device)
    assert reply.status == 0, reply
    assert reply.certificates[0].subject == csr.subject
