"""Checking the identifiers of a newOrder: RFC 8555 §7.1.3/§7.4 (dns), RFC 8738 (ip)."""

from __future__ import annotations

import ipaddress
import re

from gateway.core.acme import Identifier, IdentifierType
from protocols.acme.problems import Problem, Subproblem

MAX_IDENTIFIERS = 100
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def check_identifiers(identifiers: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
    """Normalized, de-duplicated identifiers; rejectedIdentifier/unsupportedIdentifier with
    one subproblem per bad identifier otherwise (§6.7.1)."""
    if not identifiers:
        raise Problem("malformed", "an order needs at least one identifier")
    if len(identifiers) > MAX_IDENTIFIERS:
        raise Problem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers per order")
    out: list[Identifier] = []
    bad: list[Subproblem] = []
    for identifier in identifiers:
        try:
            normalized = _check(identifier)
        except ValueError as err:
            bad.append(Subproblem("rejectedIdentifier", str(err), identifier))
            continue
        if normalized not in out:
            out.append(normalized)
    if bad:
        detail = "; ".join(f"{s.identifier.value}: {s.detail}" for s in bad)
        raise Problem("rejectedIdentifier", detail, subproblems=bad)
    return tuple(out)


def _check(identifier: Identifier) -> Identifier:
    value = identifier.value
    if identifier.type is IdentifierType.IP:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("not an IP address") from None
        # RFC 8738 §3: the text form of RFC 1123/RFC 5952; we store the canonical one.
        return Identifier(IdentifierType.IP, str(address))
    name = value.lower()
    if name.endswith("."):
        raise ValueError("DNS names must not end with a dot")
    if len(name) > 253:
        raise ValueError("DNS name too long")
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if not labels:
            raise ValueError("a wildcard needs a name after '*.'")
    if len(labels) < 1 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("not a valid DNS name (RFC 1123 labels; '*' only as '*.' prefix)")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return Identifier(IdentifierType.DNS, name)
    raise ValueError("an IP address must use the ip identifier type (RFC 8738)")
