"""PolicyRules <-> JSON-able dict, used by the store (JSON column) and the REST API.

`rules_from_dict` is the one place that validates operator-written policy documents, so
a bad document is refused with every problem listed and nothing is stored.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from gateway.core.errors import InvalidInput
from gateway.core.model import NameRule, PolicyRules, SubjectRule

_NAME_RULE_FIELDS = ("dns", "ip", "email", "uri")
_KEY_ALGORITHMS = {"rsa", "ec", "ed25519", "ed448"}
_CURVES = {"P-256", "P-384", "P-521"}


def rules_to_dict(rules: PolicyRules) -> dict[str, Any]:
    return dataclasses.asdict(rules)


def _str_tuple(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where} must be a list of strings")
        return ()
    return tuple(value)


def _name_rule(value: Any, where: str, problems: list[str]) -> NameRule:
    if not isinstance(value, dict):
        problems.append(f"{where} must be an object with 'allow' and 'deny' lists")
        return NameRule()
    unknown = set(value) - {"allow", "deny"}
    if unknown:
        problems.append(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    rule = NameRule(
        allow=_str_tuple(value.get("allow", []), f"{where}.allow", problems),
        deny=_str_tuple(value.get("deny", []), f"{where}.deny", problems),
    )
    if where == "ip":
        for entry in rule.allow + rule.deny:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                problems.append(f"ip rule {entry!r} is not an IP address or CIDR")
    return rule


def _subject_rule(value: Any, index: int, problems: list[str]) -> SubjectRule | None:
    where = f"subject[{index}]"
    if not isinstance(value, dict) or not isinstance(value.get("attribute"), str):
        problems.append(f"{where} must be an object with an 'attribute' name")
        return None
    unknown = set(value) - {"attribute", "allow", "deny", "required"}
    if unknown:
        problems.append(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    required = value.get("required", False)
    if not isinstance(required, bool):
        problems.append(f"{where}.required must be true or false")
        required = False
    return SubjectRule(
        attribute=value["attribute"],
        allow=_str_tuple(value.get("allow", ["*"]), f"{where}.allow", problems),
        deny=_str_tuple(value.get("deny", []), f"{where}.deny", problems),
        required=required,
    )


def rules_from_dict(data: Any) -> PolicyRules:
    """Build rules from a document; fields left out keep their defaults."""
    if not isinstance(data, dict):
        raise InvalidInput("policy rules must be a JSON object")
    problems: list[str] = []
    known = {f.name for f in dataclasses.fields(PolicyRules)}
    unknown = set(data) - known
    if unknown:
        problems.append(f"unknown policy fields: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    if "subject" in data:
        if not isinstance(data["subject"], list):
            problems.append("subject must be a list of attribute rules")
        else:
            parsed = [_subject_rule(v, i, problems) for i, v in enumerate(data["subject"])]
            kwargs["subject"] = tuple(r for r in parsed if r is not None)
    for name in _NAME_RULE_FIELDS:
        if name in data:
            kwargs[name] = _name_rule(data[name], name, problems)
    for name in ("allow_other_subject_attributes", "require_san"):
        if name in data:
            if not isinstance(data[name], bool):
                problems.append(f"{name} must be true or false")
            else:
                kwargs[name] = data[name]
    for name in ("min_rsa_bits", "max_validity_days"):
        if name in data:
            value = data[name]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{name} must be a positive integer")
            else:
                kwargs[name] = value
    for name in (
        "key_algorithms",
        "ec_curves",
        "allowed_key_usages",
        "required_key_usages",
        "allowed_extended_key_usages",
        "required_extended_key_usages",
    ):
        if name in data:
            kwargs[name] = _str_tuple(data[name], name, problems)
    for algorithm in kwargs.get("key_algorithms", ()):
        if algorithm not in _KEY_ALGORITHMS:
            problems.append(f"unknown key algorithm {algorithm!r}")
    for curve in kwargs.get("ec_curves", ()):
        if curve not in _CURVES:
            problems.append(f"unknown curve {curve!r}")
    if problems:
        raise InvalidInput("invalid policy: " + "; ".join(problems))
    return PolicyRules(**kwargs)
