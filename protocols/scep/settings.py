"""SCEP composition: per-enrollment settings (attached profile, or legacy profile), the RA
key and certificate (RFC 8894 §2.2; issued by the profile's CA, stored encrypted in the
secrets table, rotatable), the static challenge (scrypt hash) and dynamic one-time
challenges. The ScepBackend the front-end calls is protocols.scep.transactions."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.core.errors import CAUnavailable, InvalidInput, NotFound
from gateway.core.methods import ScepSettings
from gateway.core.model import (
    Application,
    EnrollmentMethod,
    Profile,
    Secret,
    new_id,
)
from gateway.core.scep import (
    LEGACY_PATH,
    MAX_UNUSED_CHALLENGES,
    MIN_STATIC_CHALLENGE,
    NEW_PATH,
    RA_ROTATION_GRACE,
    RaCredentials,
    ScepChallenge,
    challenge_ttl,
    digest_hex,
)
from gateway.core.template import CertificateTemplate
from gateway.pki.kms import secret_aad
from gateway.pki.passwords import generate_secret, hash_secret
from gateway.services.audit import Actor, event
from gateway.services.graph import Services
from store.db import Tx

SCEP = EnrollmentMethod.SCEP.value
RA_PURPOSE = "scep_ra"
# The RA replaced by the last rotation; its created_at is the moment of that rotation.
PREVIOUS_RA_PURPOSE = "scep_ra_previous"
CHALLENGE_PURPOSE = "scep_challenge_hash"
RA_KEY_BITS = 2048
RA_VALIDITY = timedelta(days=730)
_BACKDATE = timedelta(minutes=5)


def attachment_owner(attachment_id: uuid.UUID) -> str:
    return f"attachment:{attachment_id}:scep"


def profile_owner(profile_id: uuid.UUID) -> str:
    return f"profile:{profile_id}:scep"


def enabled(settings: Any) -> bool:
    try:
        return ScepSettings.from_dict(settings).enabled
    except InvalidInput:
        return False


@dataclasses.dataclass(frozen=True)
class Enrollment:
    """One SCEP enrollment being administered: an attachment or a legacy profile."""

    owner: str
    profile: Profile
    application: Application | None
    attachment_id: uuid.UUID | None
    settings: dict[str, Any]

    @property
    def project_id(self) -> uuid.UUID:
        return self.profile.project_id


async def for_target(tx: Tx, application: Application, profile: Profile) -> Enrollment:
    attachment = await tx.attachments.get(application.id, profile.id)
    if attachment is None:
        raise NotFound(f"profile '{profile.slug}' is not attached")
    return Enrollment(
        attachment_owner(attachment.id),
        profile,
        application,
        attachment.id,
        dict(attachment.methods.get(SCEP) or {}),
    )


async def for_profile(tx: Tx, profile_id: uuid.UUID) -> Enrollment:
    profile = await tx.profiles.get(profile_id)
    if profile is None:
        raise NotFound("profile not found")
    return Enrollment(
        profile_owner(profile.id), profile, None, None, dict(profile.enrollment.get(SCEP) or {})
    )


# ---- the RA ---------------------------------------------------------------------------


def _ra_name(enrollment: Enrollment) -> x509.Name:
    where = (
        f"{enrollment.application.slug}/{enrollment.profile.slug}"
        if enrollment.application
        else enrollment.profile.slug
    )
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certgate"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"SCEP RA {where}"[:64]),
        ]
    )


async def create_ra(services: Services, tx: Tx, enrollment: Enrollment) -> RaCredentials:
    """A fresh RSA RA key and certificate from the profile's CA, replacing any previous one.
    RFC 8894 §2.2: the RA signs CertReps and receives the requests' envelopes, so its
    certificate carries digitalSignature and keyEncipherment."""
    ca = await tx.cas.get(enrollment.profile.ca_id)
    if ca is None or not ca.enabled:
        raise CAUnavailable(f"the CA of profile '{enrollment.profile.slug}' is not usable")
    key = await asyncio.to_thread(rsa.generate_private_key, 65537, RA_KEY_BITS)
    now = services.clock.now()
    template = CertificateTemplate(
        subject=_ra_name(enrollment),
        sans=(),
        public_key=key.public_key(),
        not_before=now - _BACKDATE,
        not_after=min(now + RA_VALIDITY, ca.not_after),
        key_usages=frozenset({"digital_signature", "key_encipherment"}),
        extended_key_usages=(),
    )
    signed = await services.signer.issue(ca, template)
    plaintext = (
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + signed.pem.encode()
    )
    secret_id = new_id()
    ciphertext = await services.kms.encrypt(enrollment.project_id, plaintext, secret_aad(secret_id))
    await tx.secrets.replace(
        Secret(secret_id, enrollment.project_id, enrollment.owner, RA_PURPOSE, ciphertext, now)
    )
    chain = tuple(x509.load_pem_x509_certificates(ca.full_chain_pem.encode()))
    return RaCredentials(x509.load_pem_x509_certificate(signed.pem.encode()), key, chain)


async def load_ra(services: Services, secret: Secret) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    plaintext = await services.kms.decrypt(
        secret.project_id, secret.ciphertext, secret_aad(secret.id)
    )
    key = serialization.load_pem_private_key(plaintext, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CAUnavailable("the stored SCEP RA key is not an RSA key")
    return key, x509.load_pem_x509_certificate(plaintext)


def grace_end(previous: Secret, cert: x509.Certificate) -> datetime:
    """Until when a rotated-out RA still answers requests addressed to it."""
    return min(previous.created_at + RA_ROTATION_GRACE, cert.not_valid_after_utc)


async def _ra_view(
    services: Services, tx: Tx, owner: str, purpose: str = RA_PURPOSE
) -> dict[str, Any] | None:
    secret = await tx.secrets.get_by_owner(owner, purpose)
    if secret is None:
        return None
    _, cert = await load_ra(services, secret)
    data = {
        "subject": cert.subject.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }
    if purpose == PREVIOUS_RA_PURPOSE:
        until = grace_end(secret, cert)
        if until <= services.clock.now():
            return None
        data["answers_until"] = until.isoformat()
    return data


# ---- settings -------------------------------------------------------------------------


def urls(services: Services, enrollment: Enrollment) -> dict[str, str]:
    """SCEP is served on the plain listener too (the messages are signed and encrypted)."""
    base = services.config.base_url.rstrip("/")
    if enrollment.application is None:
        return {"scep_url": base + LEGACY_PATH.format(profile_id=enrollment.profile.id)}
    path = NEW_PATH.format(app=enrollment.application.slug, profile=enrollment.profile.slug)
    return {"scep_url": base + path}


async def view(services: Services, tx: Tx, enrollment: Enrollment) -> dict[str, Any]:
    challenge = await tx.secrets.get_by_owner(enrollment.owner, CHALLENGE_PURPOSE)
    now = services.clock.now()
    return {
        "enabled": enabled(enrollment.settings),
        "has_static_challenge": challenge is not None,
        "unused_challenges": await tx.scep.count_unused_challenges(enrollment.owner, now),
        "ra": await _ra_view(services, tx, enrollment.owner),
        "previous_ra": await _ra_view(services, tx, enrollment.owner, PREVIOUS_RA_PURPOSE),
        "urls": urls(services, enrollment),
    }


def _audit(
    services: Services, actor: Actor, enrollment: Enrollment, what: str, details: dict[str, Any]
) -> Any:
    if enrollment.application is None:
        return event(
            actor,
            services.clock.now(),
            f"profile.scep_{what}",
            "profile",
            enrollment.profile.id,
            project_id=enrollment.project_id,
            details=details,
        )
    return event(
        actor,
        services.clock.now(),
        f"application.scep_{what}",
        "attachment",
        enrollment.attachment_id or enrollment.profile.id,
        project_id=enrollment.project_id,
        application_id=enrollment.application.id,
        details={"profile": enrollment.profile.slug, **details},
    )


async def update(
    services: Services, tx: Tx, actor: Actor, enrollment: Enrollment, body: dict[str, Any]
) -> dict[str, Any]:
    """PATCH {"enabled": bool}. Enabling creates the RA when there is none yet."""
    ScepSettings.from_dict(body)  # the typed settings every route shares
    settings = {**enrollment.settings, **body}
    if enrollment.application is None:
        enrollment_map = {**enrollment.profile.enrollment, SCEP: settings}
        await tx.profiles.update(dataclasses.replace(enrollment.profile, enrollment=enrollment_map))
    else:
        attachment = await tx.attachments.get(enrollment.application.id, enrollment.profile.id)
        assert attachment is not None
        await tx.attachments.update_methods(attachment.id, {**attachment.methods, SCEP: settings})
    enrollment = dataclasses.replace(enrollment, settings=settings)
    if enabled(settings) and await tx.secrets.get_by_owner(enrollment.owner, RA_PURPOSE) is None:
        await create_ra(services, tx, enrollment)
    await tx.audit.add(_audit(services, actor, enrollment, "updated", {"scep": settings}))
    return await view(services, tx, enrollment)


async def rotate_ra(
    services: Services, tx: Tx, actor: Actor, enrollment: Enrollment, *, keep_previous: bool = True
) -> dict[str, Any]:
    """A new RA from now on (GetCACert serves it at once). The replaced RA keeps answering
    requests encrypted to it for RA_ROTATION_GRACE unless keep_previous is False (a
    compromised key): it is kept under PREVIOUS_RA_PURPOSE with the same id, so its
    ciphertext and AAD stay valid as they are."""
    old = await tx.secrets.get_by_owner(enrollment.owner, RA_PURPOSE)
    ra = await create_ra(services, tx, enrollment)  # the row of `old` now holds the new RA
    previous = await tx.secrets.get_by_owner(enrollment.owner, PREVIOUS_RA_PURPOSE)
    if old is not None and keep_previous:
        retired = dataclasses.replace(
            old, purpose=PREVIOUS_RA_PURPOSE, created_at=services.clock.now()
        )
        await tx.secrets.replace(retired)
    elif previous is not None:
        await tx.secrets.delete(previous.id)
    serial = format(ra.certificate.serial_number, "x")
    details = {"ra_serial": serial, "previous_kept": old is not None and keep_previous}
    await tx.audit.add(_audit(services, actor, enrollment, "ra_rotated", details))
    return await view(services, tx, enrollment)


async def set_static_challenge(
    services: Services, tx: Tx, actor: Actor, enrollment: Enrollment, value: Any
) -> dict[str, str]:
    """Set (or generate) the static challenge; the plaintext is returned once, the gateway
    keeps its scrypt hash, itself encrypted under the project key."""
    if value is None:
        value = generate_secret(18)
    if not isinstance(value, str) or not MIN_STATIC_CHALLENGE <= len(value) <= 255:
        raise InvalidInput(f"challenge must be {MIN_STATIC_CHALLENGE} to 255 characters")
    hashed = await asyncio.to_thread(hash_secret, value)
    secret_id = new_id()
    ciphertext = await services.kms.encrypt(
        enrollment.project_id, hashed.encode(), secret_aad(secret_id)
    )
    await tx.secrets.replace(
        Secret(
            secret_id,
            enrollment.project_id,
            enrollment.owner,
            CHALLENGE_PURPOSE,
            ciphertext,
            services.clock.now(),
        )
    )
    await tx.audit.add(_audit(services, actor, enrollment, "challenge_set", {}))
    return {"challenge": value}


async def create_challenge(
    services: Services, tx: Tx, actor: Actor, enrollment: Enrollment, body: dict[str, Any]
) -> dict[str, Any]:
    """A dynamic one-time challenge (body {"ttl_minutes": n}, default 60)."""
    unknown = sorted(set(body) - {"ttl_minutes"})
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(unknown)} (allowed: ttl_minutes)")
    try:
        ttl = challenge_ttl(body.get("ttl_minutes"))
    except ValueError as err:
        raise InvalidInput(str(err)) from None
    now = services.clock.now()
    await tx.scep.purge_challenges(enrollment.owner, now)
    if await tx.scep.count_unused_challenges(enrollment.owner, now) >= MAX_UNUSED_CHALLENGES:
        raise InvalidInput(
            f"{MAX_UNUSED_CHALLENGES} unused challenges exist already; use or let them expire",
            code="too_many_challenges",
        )
    value = generate_secret(24)
    challenge = ScepChallenge(
        new_id(), enrollment.owner, digest_hex(value.encode()), actor.name, now, now + ttl
    )
    await tx.scep.add_challenge(challenge)
    details = {"challenge_id": str(challenge.id), "expires_at": _iso(challenge.expires_at)}
    await tx.audit.add(_audit(services, actor, enrollment, "challenge_created", details))
    return {"challenge": value, "expires_at": _iso(challenge.expires_at)}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


async def bootstrap_scep(
    services: Services,
    tx: Tx,
    actor: Actor,
    app: Application,
    profile: Profile,
    legacy_profile: Profile | None,
) -> dict[str, Any]:
    """Enable SCEP with a static challenge on the demo attachment (and the legacy profile);
    returns the bootstrap.json keys (DESIGN.md, Contract)."""
    new = await for_target(tx, app, profile)
    new_view = await update(services, tx, actor, new, {"enabled": True})
    new = await for_target(tx, app, profile)
    data: dict[str, Any] = {
        "scep_url": new_view["urls"]["scep_url"],
        "scep_challenge": (await set_static_challenge(services, tx, actor, new, None))["challenge"],
    }
    if legacy_profile is not None:
        old = await for_profile(tx, legacy_profile.id)
        old_view = await update(services, tx, actor, old, {"enabled": True})
        old = await for_profile(tx, legacy_profile.id)
        data["legacy_scep_url"] = old_view["urls"]["scep_url"]
        data["legacy_scep_challenge"] = (
            await set_static_challenge(services, tx, actor, old, None)
        )["challenge"]
    return data
