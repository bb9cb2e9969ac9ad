"""SCEP on the issuers a legacy project can hold (issue 12, item 2). SCEP needs a CA that
signs here: GetCACert serves an RA certificate issued under it (RFC 8894 §4.2.1.2) and a
device encrypts its request to that RA. A self-signed profile (no CA; a device's CSR key is
not held here) and an external CA's profile (its key is elsewhere) have no RA, so every
operation that needs one answers a text/plain 400 naming the reason, never a 5xx; enabling
SCEP on them through the API is refused in the REST form."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import scepclient as sc
from tests.helpers.external_ca import ca_certificate_pem
from tests.integration.scep.conftest import Scep


async def _profile(scep: Scep, slug: str, body: dict[str, Any]) -> dict[str, Any]:
    demo = await scep.api("GET", f"/api/v1/profiles/{scep.bootstrap['profile_id']}")
    return dict(
        await scep.api(
            "POST",
            "/api/v1/profiles",
            {"slug": slug, "policy_id": demo["policy_id"], **body},
            status=201,
        )
    )


async def _external(scep: Scep) -> dict[str, Any]:
    body = {"kind": "external", "name": "partner", "certificate_pem": ca_certificate_pem()}
    return dict(await scep.api("POST", "/api/v1/cas", body, status=201))


@pytest.mark.parametrize("issuer", ["self-signed", "external"], ids=["fail/self", "fail/ext"])
async def test_fail_get_ca_cert_without_a_signing_ca(scep: Scep, issuer: str) -> None:
    if issuer == "self-signed":
        body: dict[str, Any] = {"issuer_type": "self-signed"}
        needle = "is self-signed"
    else:
        body = {"ca_id": (await _external(scep))["id"]}
        needle = "is external"
    # Enabled around the SCEP settings API (the attachment's methods), so the RA is made
    # on first use, where the refusal shows.
    await _profile(scep, "p", body)
    await scep.api(
        "POST",
        "/api/v1/applications/demo/profiles",
        {"profile": "p", "methods": {"scep": {"enabled": True}}},
        status=201,
    )
    path = "/applications/demo/profiles/p/scep"
    resp = await scep.client.get(path, params={"operation": "GetCACert"})
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "text/plain" and needle in await resp.text()
    # A well-formed request (encrypted to another profile's RA, the only kind a device could
    # have) gets the same answer: there is no RA here to decrypt or sign a CertRep.
    device = sc.Requester.new("dev.example.com")
    message = sc.pki_message(
        device, await scep.ra(), 19, sc.csr_der(sc.make_csr(device.key, "dev.example.com"))
    )
    resp = await scep.client.post(
        path + "?operation=PKIOperation",
        data=message,
        headers={"Content-Type": "application/x-pki-message"},
    )
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "text/plain" and needle in await resp.text()
    caps = await scep.client.get(path, params={"operation": "GetCACaps"})
    assert caps.status == 200


async def test_fail_enabling_scep_is_refused_in_the_rest_form(scep: Scep) -> None:
    await _profile(scep, "self", {"issuer_type": "self-signed"})
    await scep.api("POST", "/api/v1/applications/demo/profiles", {"profile": "self"}, status=201)
    data = await scep.api(
        "PATCH", "/api/v1/applications/demo/profiles/self/scep", {"enabled": True}, status=400
    )
    assert data["error"]["code"] == "self_signed_needs_key"
    ca = await _external(scep)
    await _profile(scep, "ext", {"ca_id": ca["id"]})
    await scep.api("POST", "/api/v1/applications/demo/profiles", {"profile": "ext"}, status=201)
    data = await scep.api(
        "PATCH", "/api/v1/applications/demo/profiles/ext/scep", {"enabled": True}, status=409
    )
    assert data["error"]["code"] == "ca_external"
