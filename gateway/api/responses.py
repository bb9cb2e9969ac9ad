"""The model of each operation's success body, by route name (status -> model). Kept beside
the route table so a route without one is visible here; routing.register() attaches them
and the OpenAPI document publishes them."""

from __future__ import annotations

from pydantic import BaseModel

from gateway.api import outputs as m

_ISSUED: dict[int, type[BaseModel]] = {201: m.IssuedOut, 202: m.PendingOut}

RESPONSES: dict[str, dict[int, type[BaseModel]]] = {
    "projects.list": {200: m.items_of(m.ProjectOut)},
    "projects.create": {201: m.ProjectOut},
    "projects.activate": {200: m.ProjectOut},
    "cas.list": {200: m.items_of(m.CAOut)},
    "cas.create": {201: m.CAOut},
    "cas.import_ca": {201: m.CAOut},
    "cas.get": {200: m.CAOut},
    "cas.disable": {200: m.CAOut},
    "cas.enable": {200: m.CAOut},
    "policies.list": {200: m.items_of(m.PolicyOut)},
    "policies.create": {201: m.PolicyOut},
    "policies.get": {200: m.PolicyOut},
    "policies.update": {200: m.PolicyOut},
    "profiles.list": {200: m.items_of(m.ProfileOut)},
    "profiles.create": {201: m.ProfileOut},
    "profiles.get": {200: m.ProfileOut},
    "profiles.update": {200: m.ProfileOut},
    "applications.list": {200: m.items_of(m.ApplicationListed)},
    "applications.create": {201: m.ApplicationOut},
    "applications.get": {200: m.ApplicationOut},
    "attachments.list": {200: m.items_of(m.AttachmentOut)},
    "attachments.create": {201: m.AttachmentOut},
    "attachments.update": {200: m.AttachmentOut},
    "certificates.issue": _ISSUED,
    "certificates.list": {200: m.page_of(m.CertificateOut)},
    "certificates.get": {200: m.CertificateOut},
    "certificates.revoke": {200: m.CertificateOut},
    "certificates.renew": _ISSUED,
    "principals.list": {200: m.items_of(m.PrincipalOut)},
    "principals.create": {201: m.PrincipalOut},
    "principals.get": {200: m.PrincipalDetail},
    "principals.update": {200: m.PrincipalOut},
    "tokens.list": {200: m.items_of(m.TokenOut)},
    "tokens.create": {201: m.CreatedTokenOut},
    "tokens.revoke": {200: m.TokenOut},
    "members.list": {200: m.items_of(m.MemberOut)},
    "members.add": {201: m.MemberOut},
    "members.update": {200: m.MemberOut},
    "me.get": {200: m.WhoAmI},
    "me.tokens.list": {200: m.items_of(m.TokenOut)},
    "me.tokens.create": {201: m.CreatedTokenOut},
    "me.tokens.revoke": {200: m.TokenOut},
    "approval_policies.get": {200: m.ApprovalPolicyOut},
    "approval_policies.put": {200: m.ApprovalPolicyOut, 201: m.ApprovalPolicyOut},
    "approval_policies.delete": {200: m.DeletedOut},
    "requests.list": {200: m.page_of(m.RequestOut)},
    "requests.get": {200: m.RequestOut},
    "requests.approve": {200: m.RequestOut},
    "requests.reject": {200: m.RequestOut},
    "requests.cancel": {200: m.RequestOut},
    "audit.list": {200: m.page_of(m.AuditEventOut)},
    "audit.application": {200: m.page_of(m.AuditEventOut)},
    "acme_settings.get": {200: m.AcmeSettingsOut},
    "acme_settings.update": {200: m.AcmeSettingsOut},
    "acme_settings.eab": {201: m.EabOut},
}
for _prefix in ("est", "scep", "scep.profile"):
    for _name in (
        "settings.get",
        "settings.update",
        "password.set",
        "profile_settings.get",
        "profile_settings.update",
        "profile_password.set",
        "challenge.set",
        "ra.rotate",
        "challenges.create",
    ):
        RESPONSES.setdefault(f"{_prefix}.{_name}", {200: m.SettingsOut, 201: m.SettingsOut})
RESPONSES["certificates.inventory"] = {200: m.page_of(m.InventoryCertificateOut)}
RESPONSES["legacy_approval_policies.list"] = {200: m.items_of(m.LegacyApprovalPolicyOut)}
RESPONSES["legacy_approval_policies.get"] = {200: m.LegacyApprovalPolicyOut}
RESPONSES["legacy_approval_policies.put"] = {200: m.LegacyApprovalPolicyOut}
RESPONSES["legacy_approval_policies.delete"] = {200: m.DeletedOut}
RESPONSES["legacy_requests.list"] = {200: m.page_of(m.RequestOut)}
for _name in ("get", "approve", "reject"):
    RESPONSES[f"legacy_requests.{_name}"] = {200: m.RequestOut}
