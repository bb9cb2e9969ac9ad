"""One enrollment target (gateway.targets): every route that changes an enrollment method
validates through the same typed settings, and a bad stored value cannot break a protocol
endpoint."""

from __future__ import annotations

from typing import Any

import pytest

ATTACHED = "/api/v1/applications/demo/profiles/tls-server"
DIRECTORY = "/applications/demo/profiles/tls-server/acme/directory"


async def _patch(gateway: Any, body: Any) -> tuple[int, Any]:
    resp = await gateway.client.patch(ATTACHED, json=body, headers=gateway.auth)
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    "methods",
    [
        pytest.param({"acme": {"enabled": True, "validation_networks": "x"}}, id="fail/networks"),
        pytest.param({"acme": {"enabled": True, "challenges": ["bogus"]}}, id="fail/challenges"),
        pytest.param({"est": {"enabled": True, "accepted_auth": ["x"]}}, id="fail/est-auth"),
        pytest.param({"scep": {"enabled": "yes"}}, id="fail/scep-flag"),
    ],
)
async def test_generic_methods_route_refuses_what_the_dedicated_routes_refuse(
    gateway: Any, methods: dict[str, Any]
) -> None:
    before = await gateway.get(ATTACHED + "/acme")
    status, body = await _patch(gateway, {"methods": methods})
    assert status in (400, 422), body
    assert body["error"]["code"] in ("invalid_input", "validation_failed"), body
    # Nothing changed, and the directory still answers.
    assert await gateway.get(ATTACHED + "/acme") == before
    assert (await gateway.client.get(DIRECTORY)).status == 200


async def test_bad_stored_settings_turn_the_method_off_not_a_500(gateway: Any) -> None:
    services = gateway.services
    target = await services.targets.scoped("demo", "tls-server")
    methods = {**target.attachment.methods, "acme": {"enabled": True, "challenges": "bogus"}}
    async with services.db.transaction() as tx:
        await tx.attachments.update_methods(target.attachment.id, methods)
    resp = await gateway.client.get(DIRECTORY)
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    # The rest of the attachment is unaffected: REST issuance still resolves it.
    again = await services.targets.scoped("demo", "tls-server")
    assert again.methods.api.enabled is True
    assert again.methods.acme.enabled is False


@pytest.mark.parametrize(
    ("app", "profile"),
    [
        pytest.param("nope", "tls-server", id="fail/unknown-app"),
        pytest.param("demo", "nope", id="fail/unknown-profile"),
        pytest.param("demo\x00", "tls-server", id="fail/nul-byte"),
        pytest.param("Demo", "tls-server", id="fail/not-a-slug"),
    ],
)
async def test_every_front_end_misses_the_same_way(gateway: Any, app: str, profile: str) -> None:
    from gateway.core.errors import NotFound

    with pytest.raises(NotFound):
        await gateway.services.targets.scoped(app, profile)


async def test_legacy_target_carries_project_ca_policy_and_settings(gateway: Any) -> None:
    boot = gateway.bootstrap
    import uuid

    target = await gateway.services.targets.legacy(uuid.UUID(boot["legacy_profile_id"]))
    assert target.legacy and target.application is None and target.attachment is None
    assert target.ca is not None and target.ca.id == target.profile.ca_id
    assert target.policy is not None and target.policy.id == target.profile.policy_id
    assert target.methods.acme.enabled and target.methods.est.enabled
    assert target.owner == f"profile:{target.profile.id}"
    scoped = await gateway.services.targets.scoped(boot["application"], boot["profile"])
    assert scoped.project.id == target.project.id
    assert scoped.owner == f"attachment:{scoped.attachment.id}"
