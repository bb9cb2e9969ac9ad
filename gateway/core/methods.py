"""Typed settings of the four enrollment methods of one enrollment target.

They are stored as JSON (an attached profile's `methods[...]`, a legacy profile's
`enrollment[...]`). Every way of changing them (the generic methods endpoint, a profile's
`enrollment`, each protocol's own settings route) parses through `parse_method`, so a value
one route refuses cannot be written by another; a stored value that no longer parses (an
older release wrote it) reads as "off" instead of breaking the protocol's endpoint.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from gateway.core.acme import DEFAULT_VALIDATION_NETWORKS, ChallengeType
from gateway.core.errors import InvalidInput
from gateway.core.est import EstSettings
from gateway.core.model import EnrollmentMethod

log = logging.getLogger(__name__)

_MAX_NETWORKS = 64
_MAX_URL = 2048


def _object(raw: Any, method: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"settings of method '{method}' must be an object")
    return raw


def _known(raw: Mapping[str, Any], allowed: frozenset[str], method: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown {method} settings: {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _flag(raw: Mapping[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be a boolean")
    return value


@dataclass(frozen=True)
class _OnOff:
    """A method whose only setting is whether it is on (its secrets are managed apart)."""

    enabled: bool = False

    FIELDS = frozenset({"enabled"})
    LABEL = ""

    @classmethod
    def from_dict(cls, raw: Any) -> Self:
        data = _object(raw, cls.LABEL.lower())
        _known(data, cls.FIELDS, cls.LABEL)
        return cls(enabled=_flag(data, "enabled", False))

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled}


@dataclass(frozen=True)
class ApiSettings(_OnOff):
    """The REST issuance method of an attached profile."""

    LABEL = "API"


@dataclass(frozen=True)
class AcmeSettings:
    """RFC 8555 directory settings. `validation_networks` bounds where the validators may
    connect (RFC 8555 §10.2 asks servers to guard against being used to reach internal
    hosts); `challenges` which of §8.3, §8.4 and RFC 8737 are offered."""

    enabled: bool = False
    eab_required: bool = True  # RFC 8555 §7.3.4
    # One EAB key binds one account unless this is set: a key handed to one client must
    # not let whoever else learns it register accounts too (RFC 8555 §7.3.4 leaves it to
    # the server; the demo sets it, so every client may use the bootstrap.json key).
    eab_reuse: bool = False
    validation_networks: tuple[str, ...] | None = None
    challenges: tuple[ChallengeType, ...] | None = None
    terms_of_service: str | None = None

    FIELDS = frozenset(
        {
            "enabled",
            "eab_required",
            "eab_reuse",
            "validation_networks",
            "challenges",
            "terms_of_service",
        }
    )

    @classmethod
    def from_dict(cls, raw: Any) -> AcmeSettings:
        data = _object(raw, "acme")
        _known(data, cls.FIELDS, "ACME")
        networks = data.get("validation_networks")
        if networks is not None:
            if not isinstance(networks, list) or len(networks) > _MAX_NETWORKS:
                raise InvalidInput(
                    f"validation_networks must be a list of at most {_MAX_NETWORKS} CIDRs"
                )
            for cidr in networks:
                if not isinstance(cidr, str):
                    raise InvalidInput(f"validation_networks: {cidr!r} is not a network")
                try:
                    ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    raise InvalidInput(f"validation_networks: {cidr!r} is not a network") from None
        challenges = data.get("challenges")
        valid = [c.value for c in ChallengeType]
        if challenges is not None and (
            not isinstance(challenges, list)
            or not all(isinstance(c, str) and c in valid for c in challenges)
        ):
            raise InvalidInput(f"challenges must be a list of {', '.join(sorted(valid))}")
        tos = data.get("terms_of_service")
        if tos is not None and (not isinstance(tos, str) or len(tos) > _MAX_URL):
            raise InvalidInput("terms_of_service must be a URL string")
        return cls(
            enabled=_flag(data, "enabled", False),
            eab_required=_flag(data, "eab_required", True),
            eab_reuse=_flag(data, "eab_reuse", False),
            validation_networks=tuple(networks) if networks is not None else None,
            challenges=tuple(ChallengeType(c) for c in challenges)
            if challenges is not None
            else None,
            terms_of_service=tos,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "eab_required": self.eab_required,
            "eab_reuse": self.eab_reuse,
            "validation_networks": list(self.validation_networks)
            if self.validation_networks is not None
            else None,
            "challenges": [c.value for c in self.challenges]
            if self.challenges is not None
            else None,
            "terms_of_service": self.terms_of_service,
        }

    @property
    def effective_networks(self) -> tuple[str, ...]:
        return self.validation_networks or DEFAULT_VALIDATION_NETWORKS

    @property
    def effective_challenges(self) -> tuple[ChallengeType, ...]:
        return self.challenges or tuple(ChallengeType)


@dataclass(frozen=True)
class ScepSettings:
    """RFC 8894 enrollment; the RA and challenges are secrets, managed apart.

    `allow_des`: accept single-DES envelopes. RFC 8894 §3.5.2 names only AES and 3DES, and
    DES's 56-bit key is broken; only old devices (and micromdm's scepclient) still send it,
    so it is off unless set for them, and each DES request is logged as a warning."""

    enabled: bool = False
    allow_des: bool = False

    FIELDS = frozenset({"enabled", "allow_des"})

    @classmethod
    def from_dict(cls, raw: Any) -> ScepSettings:
        data = _object(raw, "scep")
        _known(data, cls.FIELDS, "SCEP")
        return cls(enabled=_flag(data, "enabled", False), allow_des=_flag(data, "allow_des", False))

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "allow_des": self.allow_des}


@dataclass(frozen=True)
class MethodSettings:
    """The four methods of one enrollment target, each parsed and typed."""

    api: ApiSettings
    acme: AcmeSettings
    est: EstSettings
    scep: ScepSettings

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any], where: str) -> MethodSettings:
        """Read stored settings; one that does not parse is off (and logged), so a bad row
        cannot turn a protocol endpoint into a 500."""
        return cls(
            api=_stored(ApiSettings, stored, EnrollmentMethod.API, where),
            acme=_stored(AcmeSettings, stored, EnrollmentMethod.ACME, where),
            est=_stored(EstSettings, stored, EnrollmentMethod.EST, where),
            scep=_stored(ScepSettings, stored, EnrollmentMethod.SCEP, where),
        )


_PARSERS: dict[str, Any] = {
    EnrollmentMethod.API.value: ApiSettings.from_dict,
    EnrollmentMethod.ACME.value: AcmeSettings.from_dict,
    EnrollmentMethod.EST.value: EstSettings.from_dict,
    EnrollmentMethod.SCEP.value: ScepSettings.from_dict,
}


def _stored(kind: Any, stored: Mapping[str, Any], method: EnrollmentMethod, where: str) -> Any:
    raw = stored.get(method.value)
    try:
        return kind.from_dict(raw)
    except InvalidInput as err:
        log.warning("%s settings of %s are invalid (%s); it is off", method.value, where, err)
        return kind()


def parse_method(method: str, raw: Any) -> None:
    """Validate one method's settings as submitted; InvalidInput names the bad field."""
    parser = _PARSERS.get(method)
    if parser is None:
        raise InvalidInput(
            f"unknown enrollment method '{method}' (allowed: {', '.join(sorted(_PARSERS))})"
        )
    parser(raw)


def check_methods(methods: Any) -> dict[str, dict[str, Any]]:
    """A `methods` (or a profile's `enrollment`) object: every key a method, every value
    settings that parse. Returned unchanged: stored as submitted, read back typed."""
    if not isinstance(methods, dict):
        raise InvalidInput("methods must be an object keyed by method name")
    for name, settings in methods.items():
        parse_method(name, settings)
        if not isinstance(settings, dict):
            raise InvalidInput(f"settings of method '{name}' must be an object")
    return methods
