"""Certificate operations behind the REST API and the CLI: issue (CSR or server-side key),
list, get, renew, revoke. Issuance and revocation go through EnrollmentService."""

from __future__ import annotations

import dataclasses
import ipaddress
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.core.csr import parse_csr
from gateway.core.enrollment import EnrollmentRequest, Issued, Pending
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.model import (
    Application,
    ApprovalPolicy,
    Certificate,
    EnrollmentMethod,
    KeyType,
    Page,
    Profile,
    RevocationReason,
)
from gateway.pki.keys import PrivateKey, build_csr, generate_private_key, private_key_to_pem
from gateway.services.audit import Actor
from gateway.services.graph import Services
from gateway.services.key_custody import KeepKey, held_key
from gateway.targets import AttachedTarget
from store.db import Tx
from store.filters import CertificateFilter, CertificateListStatus

# Subject attributes accepted for server-side key generation, by short name.
_SUBJECT_OIDS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
}


KeySource = Literal["new", "reuse", "csr"]
KEY_SOURCES: tuple[KeySource, ...] = ("new", "reuse", "csr")


@dataclass(frozen=True)
class IssueResult:
    outcome: Issued | Pending
    private_key_pem: str | None = None


async def resolve(services: Services, app_slug: str, profile_slug: str) -> AttachedTarget:
    """The attached profile a REST route names (gateway.targets)."""
    return await services.targets.scoped(app_slug, profile_slug)


async def resolve_application(services: Services, app_slug: str) -> Application:
    return (await services.targets.application(app_slug))[1]


def parse_subject(subject: Any) -> x509.Name:
    """`{"CN": "x", "O": "y"}` or a plain string (taken as the CN)."""
    if isinstance(subject, str):
        subject = {"CN": subject}
    if not isinstance(subject, dict) or not subject:
        raise InvalidInput("subject must be a common name or an object of attributes (CN, O, …)")
    attributes = []
    for name, value in subject.items():
        oid = _SUBJECT_OIDS.get(name)
        if oid is None:
            raise InvalidInput(
                f"unknown subject attribute '{name}' (allowed: {', '.join(_SUBJECT_OIDS)})"
            )
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"subject attribute '{name}' must be a non-empty string")
        try:
            attributes.append(x509.NameAttribute(oid, value))
        except ValueError as err:
            raise InvalidInput(f"subject attribute '{name}': {err}") from None
    return x509.Name(attributes)


def parse_sans(sans: Any) -> list[x509.GeneralName]:
    """SANs as strings: "example.com", "dns:example.com", "ip:127.0.0.1", "email:…", "uri:…"."""
    if sans is None:
        return []
    if not isinstance(sans, list) or not all(isinstance(s, str) for s in sans):
        raise InvalidInput("sans must be a list of strings")
    names: list[x509.GeneralName] = []
    for raw in sans:
        kind, sep, value = raw.partition(":")
        if not sep or kind not in ("dns", "ip", "email", "uri"):
            kind, value = ("ip", raw) if _is_ip(raw) else ("dns", raw)
        try:
            if kind == "dns":
                names.append(x509.DNSName(value))
            elif kind == "ip":
                names.append(x509.IPAddress(ipaddress.ip_address(value)))
            elif kind == "email":
                names.append(x509.RFC822Name(value))
            else:
                names.append(x509.UniformResourceIdentifier(value))
        except ValueError as err:
            raise InvalidInput(f"invalid SAN '{raw}': {err}") from None
    return names


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _validity(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("validity_days must be an integer")
    return value


async def needs_approval(
    services: Services,
    app: Application | None,
    profile: Profile,
    principal_id: uuid.UUID | None,
) -> bool:
    """Whether enrollments by `principal_id` under app/profile (app None: the profile's
    legacy endpoints, gated by the legacy project's policy) wait for an approver: the same
    cached read as the core's approval gate (gateway.core.approval)."""
    app_id = app.id if app is not None else None

    async def load(tx: Tx) -> ApprovalPolicy | None:
        if app_id is None:
            return await tx.approval_policies.get_legacy(profile.id)
        return await tx.approval_policies.get_for(app_id, profile.id)

    policy = await services.db.cached(("approval_policy", app_id, profile.id), load)
    return policy is not None and principal_id not in policy.bypass


async def _refuse_keygen_under_approval(
    services: Services, target: AttachedTarget, actor: Actor
) -> None:
    """A server-generated key is returned once, in the answer; under an approval policy the
    answer is 202 and the key would be lost, so such requests must bring their own CSR."""
    if await needs_approval(services, target.application, target.profile, actor.principal_id):
        raise InvalidInput(
            f"'{target.application.slug}/{target.profile.slug}' needs approval: send a CSR "
            "(a server-generated key could not be handed over later)",
            code="keygen_needs_csr",
        )


async def issue(
    services: Services,
    target: AttachedTarget,
    actor: Actor,
    body: dict[str, Any],
    *,
    renewed_from: uuid.UUID | None = None,
    method: EnrollmentMethod = EnrollmentMethod.API,
    reuse_key: PrivateKey | None = None,
) -> IssueResult:
    """Body: {"csr": PEM} or {"key_type", "subject", "sans", "passphrase", "store_key"}
    (server-side key, kept in custody unless store_key is false: key_custody).
    `reuse_key`: a kept key to certify again instead of generating one (renewal with
    key_source "reuse")."""
    validity = _validity(body.get("validity_days"))
    store_key = body.get("store_key", True)
    if not isinstance(store_key, bool):
        raise InvalidInput("store_key must be a boolean")
    private_key_pem = None
    key: PrivateKey | None = None  # generated here: a self-signed profile signs with it
    if body.get("csr") is not None:
        if not isinstance(body["csr"], str):
            raise InvalidInput("csr must be a PEM string")
        csr = parse_csr(body["csr"])
    else:
        raw_type = body.get("key_type", target.profile.default_key_type.value)
        try:
            key_type = KeyType(raw_type)
        except ValueError:
            allowed = ", ".join(k.value for k in KeyType)
            raise InvalidInput(f"unknown key_type '{raw_type}' (allowed: {allowed})") from None
        passphrase = body.get("passphrase")
        if passphrase is not None and (not isinstance(passphrase, str) or len(passphrase) < 8):
            raise InvalidInput("passphrase must be a string of at least 8 characters")
        if body.get("subject") is None and not body.get("sans"):
            raise InvalidInput(
                "give either a csr, or a subject and/or sans for server-side key generation"
            )
        subject = (
            parse_subject(body["subject"]) if body.get("subject") is not None else x509.Name([])
        )
        await _refuse_keygen_under_approval(services, target, actor)
        key = reuse_key if reuse_key is not None else generate_private_key(key_type)
        csr = build_csr(key, subject, parse_sans(body.get("sans")))
        private_key_pem = private_key_to_pem(key, passphrase)
    outcome = await services.enrollment.enroll(
        EnrollmentRequest(
            profile=target.profile,
            application=target.application,
            csr=csr,
            requester=actor.name,
            requester_id=actor.principal_id,
            method=method,
            source_ip=actor.source_ip,
            requested_validity_days=validity,
            renewed_from=renewed_from,
            subject_key=key,
        ),
        # Kept in the transaction that stores the certificate, or not at all.
        also=KeepKey(services.kms, key) if key is not None and store_key else None,
    )
    if isinstance(outcome, Pending):
        private_key_pem = None  # not issued: the key would be useless and must not linger
    return IssueResult(outcome, private_key_pem)


async def get_certificate(services: Services, app: Application, cert_id: uuid.UUID) -> Certificate:
    async with services.db.transaction(read_only=True) as tx:
        cert = await tx.certificates.get(cert_id)
        if cert is None or cert.application_id != app.id:
            raise NotFound("certificate not found")
        return (await tx.certificates.with_renewed_by([cert]))[0]


async def list_certificates(
    services: Services,
    app: Application,
    *,
    profile: str | None = None,
    status: CertificateListStatus | None = None,
    expiring_before: datetime | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[Certificate]:
    """A page of the application's certificates; `profile` is a profile slug of the
    application's project (an unknown one is invalid input, not an empty page)."""
    async with services.db.transaction(read_only=True) as tx:
        profile_id = None
        if profile is not None:
            found = await tx.profiles.get_by_slug(app.project_id, profile)
            if found is None:
                raise InvalidInput(f"unknown profile '{profile}'")
            profile_id = found.id
        page = await tx.certificates.list(
            CertificateFilter(
                application_id=app.id,
                profile_id=profile_id,
                status=status,
                now=services.clock.now(),
                expiring_before=expiring_before,
                search=search,
            ),
            limit,
            offset,
        )
        items = await tx.certificates.with_renewed_by(page.items)
    return dataclasses.replace(page, items=tuple(items))


async def revoke(
    services: Services,
    app: Application,
    cert_id: uuid.UUID,
    reason: RevocationReason,
    actor: Actor,
) -> Certificate:
    """Revoke one of the application's certificates; the CA's CRL is rebuilt in the same
    transaction (EnrollmentService.revoke)."""
    return await services.enrollment.revoke(
        cert_id, reason, actor=actor.name, source_ip=actor.source_ip, application_id=app.id
    )


def _key_source(body: dict[str, Any]) -> KeySource:
    """`key_source` as asked, or implied: "csr" with a CSR, else "new"."""
    raw = body.get("key_source")
    has_csr = body.get("csr") is not None
    if raw is None:
        return "csr" if has_csr else "new"
    if raw not in KEY_SOURCES:
        raise InvalidInput(f"key_source must be one of {', '.join(KEY_SOURCES)}")
    if (raw == "csr") != has_csr:
        raise InvalidInput(
            'key_source "csr" needs a csr, and a csr goes with key_source "csr" only',
            code="key_source_mismatch",
        )
    return cast(KeySource, raw)


async def renew(
    services: Services, app: Application, cert_id: uuid.UUID, actor: Actor, body: dict[str, Any]
) -> IssueResult:
    """Renew under the same profile, with the same subject and SANs. `key_source`: "csr"
    (the caller's CSR, same or new key), "new" (default without a CSR: a new key of the
    old certificate's type, generated and kept here) or "reuse" (the old certificate's kept
    key, certified again)."""
    old = await get_certificate(services, app, cert_id)
    source = _key_source(body)
    async with services.db.transaction(read_only=True) as tx:
        profile = await tx.profiles.get(old.profile_id)
        reuse_key = await held_key(services, tx, old) if source == "reuse" else None
    if profile is None:
        raise NotFound("the certificate's profile no longer exists")
    if source == "reuse" and reuse_key is None:
        raise Conflict(
            "key_source reuse needs the certificate's key, and certgate holds none for it "
            '(issued from a CSR or with "store_key": false): renew with a CSR or a new key',
            code="private_key_not_held",
        )
    old_cert = x509.load_pem_x509_certificate(old.certificate_pem.encode())
    request = {k: v for k, v in body.items() if k != "key_source"}
    if source == "csr":
        csr = parse_csr(request["csr"]) if isinstance(request["csr"], str) else None
        if csr is None:
            raise InvalidInput("csr must be a PEM string")
        if csr.subject != old_cert.subject or sorted(_san_values(csr)) != sorted(
            _san_values(old_cert)
        ):
            raise InvalidInput(
                "a renewal CSR must carry the same subject and SANs as the certificate it renews",
                code="renewal_mismatch",
            )
    else:
        request.setdefault(
            "key_type",
            old.key_type
            if old.key_type in {k.value for k in KeyType}
            else profile.default_key_type.value,
        )
        request["subject"] = {_short_name(a.oid): str(a.value) for a in old_cert.subject} or None
        request["sans"] = [s for s in old.sans]
    # The profile must still be attached: renewal is an enrollment like any other.
    target = await services.targets.scoped(app.slug, profile.slug)
    return await issue(services, target, actor, request, renewed_from=old.id, reuse_key=reuse_key)


def _short_name(oid: x509.ObjectIdentifier) -> str:
    for name, known in _SUBJECT_OIDS.items():
        if known == oid:
            return name
    raise InvalidInput(
        "the certificate's subject has attributes that cannot be renewed without a CSR"
    )


def _san_values(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    try:
        ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [f"{type(n).__name__}:{n.value}" for n in ext.value]


def parse_reason(value: Any) -> RevocationReason:
    if value is None:
        return RevocationReason.UNSPECIFIED
    try:
        return RevocationReason(value)
    except ValueError:
        allowed = ", ".join(r.value for r in RevocationReason)
        raise InvalidInput(f"unknown revocation reason '{value}' (allowed: {allowed})") from None
