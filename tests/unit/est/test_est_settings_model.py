"""EST settings as the domain holds them (gateway.core.est): validation and round trip,
the bootstrap CA bundle and its chain check, the realm label and the secrets' owners."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from est_fakes import NOW, enrollment_target, make_cert, make_profile

from gateway.core.errors import InvalidInput
from gateway.core.est import EstSettings, chain_problem, est_label
from gateway.core.target import EnrollmentTarget
from protocols.est.settings import attachment_owner, profile_owner, target_owner


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param({}, None, id="ok/defaults"),
        pytest.param({"accepted_auth": ["basic"], "required_auth": ["basic"]}, None, id="ok/req"),
        pytest.param({"accepted_auth": []}, "at least one", id="fail/no-methods"),
        pytest.param({"accepted_auth": ["magic"]}, "unknown method", id="fail/unknown"),
        pytest.param(
            {"accepted_auth": ["basic"], "required_auth": ["client_cert"]},
            "also be in accepted_auth",
            id="fail/required-not-accepted",
        ),
        pytest.param({"username": "a:b"}, "without ':'", id="fail/username"),
        pytest.param({"enabled": "yes"}, "booleans", id="fail/enabled"),
        pytest.param({"bootstrap_ca_pem": "junk"}, "no valid PEM", id="fail/bundle"),
    ],
)
def test_settings_from_dict(data: dict[str, Any], error: str | None) -> None:
    if error is None:
        settings = EstSettings.from_dict(data)
        assert EstSettings.from_dict(settings.to_dict()) == settings
    else:
        with pytest.raises(InvalidInput, match=error):
            EstSettings.from_dict(data)


def test_fail_bundle_with_leaf_certificate() -> None:
    leaf, _ = make_cert("leaf")
    pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(InvalidInput, match="is not a CA certificate"):
        EstSettings.from_dict({"bootstrap_ca_pem": pem})


def test_chain_problem() -> None:
    root = make_cert("root", ca=True, days=100)
    other = make_cert("other", ca=True, days=100)
    leaf, _ = make_cert("device", issuer=root)
    expired, _ = make_cert("old", issuer=root, days=-1)
    assert chain_problem(leaf, [other[0], root[0]], NOW) is None
    assert "not issued by a configured bootstrap CA" in (chain_problem(leaf, [other[0]], NOW) or "")
    assert "expired" in (chain_problem(expired, [root[0]], NOW) or "")
    assert "no bootstrap CA" in (chain_problem(leaf, [], NOW) or "")


def test_est_label_and_owner_strings() -> None:
    """The realm label is the one-segment URL form; the secrets' owners stay the strings
    stored rows carry."""
    target = enrollment_target(make_profile(), EstSettings(enabled=True))
    assert est_label(target) == "a.p"
    assert target_owner(target) == attachment_owner(target.attachment.id)
    assert target_owner(target) == f"attachment:{target.attachment.id}:est"
    legacy = EnrollmentTarget(
        target.project, None, target.profile, None, None, None, target.methods
    )
    assert est_label(legacy) == str(target.profile.id)
    assert target_owner(legacy) == profile_owner(target.profile.id)
    assert target_owner(legacy) == f"profile:{target.profile.id}:est"
