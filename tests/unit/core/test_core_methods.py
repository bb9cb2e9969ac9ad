"""gateway.core.methods: the typed settings every route that changes an enrollment method
parses through (the generic methods endpoint, a profile's `enrollment`, each protocol's
own settings route)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.acme import DEFAULT_VALIDATION_NETWORKS, ChallengeType
from gateway.core.errors import InvalidInput
from gateway.core.methods import AcmeSettings, MethodSettings, check_methods


@pytest.mark.parametrize(
    "methods",
    [
        pytest.param({"api": {"enabled": True}}, id="ok/api"),
        pytest.param({"acme": {"enabled": True, "challenges": ["http-01"]}}, id="ok/acme"),
        pytest.param(
            {"acme": {"enabled": True, "validation_networks": ["127.0.0.0/8", "::1"]}},
            id="ok/acme-networks",
        ),
        pytest.param({"est": {"enabled": True, "accepted_auth": ["basic"]}}, id="ok/est"),
        pytest.param({"scep": {"enabled": False}}, id="ok/scep"),
        pytest.param({}, id="ok/none"),
    ],
)
def test_check_methods_ok(methods: dict[str, Any]) -> None:
    assert check_methods(methods) == methods


@pytest.mark.parametrize(
    ("methods", "needle"),
    [
        pytest.param([], "object keyed by method", id="fail/not-object"),
        pytest.param({"ftp": {"enabled": True}}, "unknown enrollment method", id="fail/method"),
        pytest.param({"api": "yes"}, "must be an object", id="fail/settings-not-object"),
        pytest.param({"api": {"enabled": "yes"}}, "enabled must be a boolean", id="fail/flag"),
        pytest.param(
            {"acme": {"validation_networks": "x"}}, "validation_networks", id="fail/networks-str"
        ),
        pytest.param(
            {"acme": {"validation_networks": ["not-a-net"]}}, "not a network", id="fail/cidr"
        ),
        pytest.param(
            {"acme": {"validation_networks": [{"a": 1}]}}, "not a network", id="fail/cidr-object"
        ),
        pytest.param({"acme": {"challenges": ["bogus"]}}, "challenges", id="fail/challenge"),
        pytest.param({"acme": {"challenges": "http-01"}}, "challenges", id="fail/challenge-str"),
        pytest.param({"acme": {"terms_of_service": 5}}, "terms_of_service", id="fail/tos"),
        pytest.param({"acme": {"colour": "red"}}, "unknown ACME settings", id="fail/acme-unknown"),
        pytest.param({"est": {"accepted_auth": ["magic"]}}, "unknown method", id="fail/est-auth"),
        pytest.param({"est": {"username": "a:b"}}, "username", id="fail/est-username"),
        pytest.param({"scep": {"enabled": 1}}, "enabled must be a boolean", id="fail/scep-flag"),
        pytest.param({"scep": {"ra": "x"}}, "unknown SCEP settings", id="fail/scep-unknown"),
    ],
)
def test_check_methods_fail(methods: Any, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        check_methods(methods)
    assert needle in err.value.message


def test_acme_defaults_and_effective_values() -> None:
    settings = AcmeSettings.from_dict({"enabled": True})
    assert settings.eab_required is True
    assert settings.effective_networks == DEFAULT_VALIDATION_NETWORKS
    assert settings.effective_challenges == tuple(ChallengeType)
    narrowed = AcmeSettings.from_dict({"enabled": True, "challenges": ["dns-01"]})
    assert narrowed.effective_challenges == (ChallengeType.DNS_01,)
    assert AcmeSettings.from_dict(narrowed.to_dict()) == narrowed


def test_stored_settings_that_do_not_parse_read_as_off(caplog: pytest.LogCaptureFixture) -> None:
    """A bad stored value (written by an older release) must not break an endpoint: the
    method is off there, and the log says why."""
    stored = {
        "api": {"enabled": True},
        "acme": {"enabled": True, "validation_networks": "x"},
        "scep": {"enabled": True},
    }
    settings = MethodSettings.from_stored(stored, "demo/tls-server")
    assert settings.api.enabled is True
    assert settings.acme.enabled is False
    assert settings.scep.enabled is True
    assert settings.est.enabled is False
    assert "acme settings of demo/tls-server are invalid" in caplog.text
