"""The human-readable form of a delivery's payload, shared by email, Slack and PagerDuty."""

from __future__ import annotations

from typing import Any

_WHAT = {
    "certificate.expiration": "expires soon",
    "certificate.issuance": "was issued",
    "certificate.renewal": "was renewed",
    "certificate.revocation": "was revoked",
}


def facts(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs: the certificate's names, serial, expiry, application, profile."""
    data = payload.get("data", {})
    cert = data.get("certificate", {})
    sans = ", ".join(s.partition(":")[2] or s for s in cert.get("sans", [])) or "-"
    rows = [
        ("Common name", cert.get("common_name") or "-"),
        ("Names", sans),
        ("Serial", cert.get("serial") or "-"),
        ("Expires", cert.get("not_after") or "-"),
        ("Application", data.get("application") or "(legacy project)"),
        ("Profile", cert.get("profile") or "-"),
        ("Alert", data.get("alert") or "-"),
    ]
    if cert.get("revocation_reason"):
        rows.append(("Revocation reason", cert["revocation_reason"]))
    if data.get("days_left") is not None:
        rows.append(("Days left", str(data["days_left"])))
    return rows


def summary(payload: dict[str, Any]) -> str:
    """One line: "[test] Certificate www.example.com (demo/tls-server) expires soon"."""
    data = payload.get("data", {})
    cert = data.get("certificate", {})
    name = cert.get("common_name") or cert.get("serial") or "certificate"
    where = "/".join(x for x in (data.get("application"), cert.get("profile")) if x)
    what = _WHAT.get(str(payload.get("type")), str(payload.get("type")))
    days = data.get("days_left")
    if payload.get("type") == "certificate.expiration" and days is not None:
        what = f"expires in {days} day{'s' if days != 1 else ''}"
    prefix = "[test] " if data.get("test") else ""
    return f"{prefix}Certificate {name} ({where}) {what}"
