"""SCEP composition: per-target settings (an attached profile, or a legacy profile), the RA
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

from gateway.core.errors import (
    CAExternal,
    CAUnavailable,
    InvalidInput,
    NotFound,
    SelfSignedNeedsKey,
)
from gateway.core.methods import ScepSettings
from gateway.core.model import (
    Application,
    CertificateAuthority,
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
    scep_scope,
)
from gateway.core.template import CertificateTemplate
from gateway.pki.kms import secret_aad
from gateway.pki.passwords import generate_secret, hash_secret
from gateway.services.audit import Actor, event
from gateway.services.graph import Services
from gateway.targets import (
    AttachedTarget,
    EnrollmentTarget,
    NotAttached,
    load_legacy,
    load_scoped,
)
from store.db import Tx

SCEP = EnrollmentMethod.SCEP.value
RA_PURPOSE = "scep_ra"
# The RA replaced by the last rotation; its created_at is the moment of that rotation.
PREVIOUS_RA_PURPOSE = "scep_ra_previous"
CHALLENGE_PURPOSE = "scep_challenge_hash"
RA_KEY_BITS = 2048
RA_VALIDITY = timedelta(days=730)
_BACKDATE = timedelta(minutes=5)


async def for_target(tx: Tx, application: Application, profile: Profile) -> EnrollmentTarget:
    """An attached profile, read in the caller's transaction (it sees its own writes)."""
    try:
        return await load_scoped(tx, application.slug, profile.slug)
    except NotAttached:
        raise NotFound(f"profile '{profile.slug}' is not attached") from None


async def for_profile(tx: Tx, profile_id: uuid.UUID) -> EnrollmentTarget:
    """A legacy profile, read in the caller's transaction."""
    try:
        return await load_legacy(tx, profile_id)
    except NotFound:
        raise NotFound("profile not found") from None


async def reread(tx: Tx, target: EnrollmentTarget) -> EnrollmentTarget:
    """The same target as `tx` sees it now."""
    if target.application is None:
        return await for_profile(tx, target.profile.id)
    return await for_target(tx, target.application, target.profile)


# ---- the RA ---------------------------------------------------------------------------


def _ra_name(target: EnrollmentTarget) -> x509.Name:
    where = (
        f"{target.application.slug}/{target.profile.slug}"
        if target.application
        else target.profile.slug
    )
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certgate"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"SCEP RA {where}"[:64]),
        ]
    )


def ra_issuer(target: EnrollmentTarget, ca: CertificateAuthority | None) -> CertificateAuthority:
    """The CA under which the target's RA certificate is issued. SCEP cannot work without
    one that signs here: GetCACert serves the RA and the CA chain (RFC 8894 §4.2.1.2), and
    a device's request is encrypted to the RA, so without an RA no message can even be
    decoded. The refusal is the HTTP 400 text answer of an operation SCEP cannot serve."""
    slug = target.profile.slug
    if target.profile.self_signed:
        raise SelfSignedNeedsKey(
            f"profile '{slug}' is self-signed: each certificate is signed by its own key, "
            "which certgate must generate, but SCEP enrolls a device's own key and needs a "
            "CA; use server-side key generation through the REST API"
        )
    if ca is None:
        raise CAUnavailable(f"the CA of profile '{slug}' no longer exists")
    if not ca.holds_key:
        raise CAExternal(
            f"CA '{ca.name}' of profile '{slug}' is external: its key is held outside "
            "certgate and no connector to it exists yet, so SCEP cannot be served"
        )
    return ca


async def create_ra(services: Services, tx: Tx, target: EnrollmentTarget) -> RaCredentials:
    """A fresh RSA RA key and certificate from the profile's CA, replacing any previous one.
    RFC 8894 §2.2: the RA signs CertReps and receives the requests' envelopes, so its
    certificate carries digitalSignature and keyEncipherment."""
    ca = ra_issuer(target, await tx.cas.get(target.profile.ca_id))
    if not ca.enabled:
        raise CAUnavailable(f"the CA of profile '{target.profile.slug}' is not usable")
    key = await asyncio.to_thread(rsa.generate_private_key, 65537, RA_KEY_BITS)
    now = services.clock.now()
    template = CertificateTemplate(
        subject=_ra_name(target),
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
    ciphertext = await services.kms.encrypt(target.project.id, plaintext, secret_aad(secret_id))
    await tx.secrets.replace(
        Secret(secret_id, target.project.id, scep_scope(target), RA_PURPOSE, ciphertext, now)
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


def urls(services: Services, target: EnrollmentTarget) -> dict[str, str]:
    """SCEP is served on the plain listener too (the messages are signed and encrypted)."""
    base = services.config.base_url.rstrip("/")
    if target.application is None:
        return {"scep_url": base + LEGACY_PATH.format(profile_id=target.profile.id)}
    path = NEW_PATH.format(app=target.application.slug, profile=target.profile.slug)
    return {"scep_url": base + path}


async def view(services: Services, tx: Tx, target: EnrollmentTarget) -> dict[str, Any]:
    challenge = await tx.secrets.get_by_owner(scep_scope(target), CHALLENGE_PURPOSE)
    now = services.clock.now()
    return {
        "enabled": target.methods.scep.enabled,
        "allow_des": target.methods.scep.allow_des,
        "has_static_challenge": challenge is not None,
        "unused_challenges": await tx.scep.count_unused_challenges(scep_scope(target), now),
        "ra": await _ra_view(services, tx, scep_scope(target)),
        "previous_ra": await _ra_view(services, tx, scep_scope(target), PREVIOUS_RA_PURPOSE),
        "urls": urls(services, target),
    }


def _audit(
    services: Services, actor: Actor, target: EnrollmentTarget, what: str, details: dict[str, Any]
) -> Any:
    if target.application is None:
        return event(
            actor,
            services.clock.now(),
            f"profile.scep_{what}",
            "profile",
            target.profile.id,
            project_id=target.project.id,
            details=details,
        )
    return event(
        actor,
        services.clock.now(),
        f"application.scep_{what}",
        "attachment",
        target.attachment.id if target.attachment else target.profile.id,
        project_id=target.project.id,
        application_id=target.application.id,
        details={"profile": target.profile.slug, **details},
    )


async def update(
    services: Services, tx: Tx, actor: Actor, target: EnrollmentTarget, body: dict[str, Any]
) -> dict[str, Any]:
    """PATCH {"enabled": bool, "allow_des": bool}. Enabling creates the RA when there is
    none yet."""
    ScepSettings.from_dict(body)  # the typed settings every route shares
    # Merged with the stored object as it is (not its typed reading), so what is stored and
    # audited stays exactly what was submitted over what was there.
    if target.application is None:
        settings = {**(target.profile.enrollment.get(SCEP) or {}), **body}
        enrollment_map = {**target.profile.enrollment, SCEP: settings}
        await tx.profiles.update(dataclasses.replace(target.profile, enrollment=enrollment_map))
    else:
        attachment = await tx.attachments.get(target.application.id, target.profile.id)
        assert attachment is not None
        settings = {**(attachment.methods.get(SCEP) or {}), **body}
        await tx.attachments.update_methods(attachment.id, {**attachment.methods, SCEP: settings})
    target = await reread(tx, target)
    if (
        target.methods.scep.enabled
        and await tx.secrets.get_by_owner(scep_scope(target), RA_PURPOSE) is None
    ):
        await create_ra(services, tx, target)
    await tx.audit.add(_audit(services, actor, target, "updated", {"scep": settings}))
    return await view(services, tx, target)


async def rotate_ra(
    services: Services,
    tx: Tx,
    actor: Actor,
    target: EnrollmentTarget,
    *,
    keep_previous: bool = True,
) -> dict[str, Any]:
    """A new RA from now on (GetCACert serves it at once). The replaced RA keeps answering
    requests encrypted to it for RA_ROTATION_GRACE unless keep_previous is False (a
    compromised key): it is kept under PREVIOUS_RA_PURPOSE with the same id, so its
    ciphertext and AAD stay valid as they are."""
    old = await tx.secrets.get_by_owner(scep_scope(target), RA_PURPOSE)
    ra = await create_ra(services, tx, target)  # the row of `old` now holds the new RA
    previous = await tx.secrets.get_by_owner(scep_scope(target), PREVIOUS_RA_PURPOSE)
    if old is not None and keep_previous:
        retired = dataclasses.replace(
            old, purpose=PREVIOUS_RA_PURPOSE, created_at=services.clock.now()
        )
        await tx.secrets.replace(retired)
    elif previous is not None:
        await tx.secrets.delete(previous.id)
    serial = format(ra.certificate.serial_number, "x")
    details = {"ra_serial": serial, "previous_kept": old is not None and keep_previous}
    await tx.audit.add(_audit(services, actor, target, "ra_rotated", details))
    return await view(services, tx, target)


async def set_static_challenge(
    services: Services, tx: Tx, actor: Actor, target: EnrollmentTarget, value: Any
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
        target.project.id, hashed.encode(), secret_aad(secret_id)
    )
    await tx.secrets.replace(
        Secret(
            secret_id,
            target.project.id,
            scep_scope(target),
            CHALLENGE_PURPOSE,
            ciphertext,
            services.clock.now(),
        )
    )
    await tx.audit.add(_audit(services, actor, target, "challenge_set", {}))
    return {"challenge": value}


async def create_challenge(
    services: Services, tx: Tx, actor: Actor, target: EnrollmentTarget, body: dict[str, Any]
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
    await tx.scep.purge_challenges(scep_scope(target), now)
    if await tx.scep.count_unused_challenges(scep_scope(target), now) >= MAX_UNUSED_CHALLENGES:
        raise InvalidInput(
            f"{MAX_UNUSED_CHALLENGES} unused challenges exist already; use or let them expire",
            code="too_many_challenges",
        )
    value = generate_secret(24)
    challenge = ScepChallenge(
        new_id(), scep_scope(target), digest_hex(value.encode()), actor.name, now, now + ttl
    )
    await tx.scep.add_challenge(challenge)
    details = {"challenge_id": str(challenge.id), "expires_at": _iso(challenge.expires_at)}
    await tx.audit.add(_audit(services, actor, target, "challenge_created", details))
    return {"challenge": value, "expires_at": _iso(challenge.expires_at)}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


# ---- use cases of the REST API: each opens its own transaction ------------------------
# `where` names the target: an attached profile as the resolver answered it
# (services.targets.scoped), or a legacy profile's id; either is read again in the use
# case's transaction (for_target, for_profile).

Where = AttachedTarget | uuid.UUID


async def _load(tx: Tx, where: Where) -> EnrollmentTarget:
    if isinstance(where, uuid.UUID):
        return await for_profile(tx, where)
    return await for_target(tx, where.application, where.profile)


async def get_settings(services: Services, where: Where) -> dict[str, Any]:
    async with services.db.transaction(read_only=True) as tx:
        return await view(services, tx, await _load(tx, where))


async def change_settings(
    services: Services, actor: Actor, where: Where, body: dict[str, Any]
) -> dict[str, Any]:
    async with services.db.transaction() as tx:
        return await update(services, tx, actor, await _load(tx, where), body)


async def change_static_challenge(
    services: Services, actor: Actor, where: Where, value: Any
) -> dict[str, str]:
    async with services.db.transaction() as tx:
        return await set_static_challenge(services, tx, actor, await _load(tx, where), value)


async def rotate(
    services: Services, actor: Actor, where: Where, body: dict[str, Any]
) -> dict[str, Any]:
    """rotate_ra with the REST body {"keep_previous": bool} (default true)."""
    async with services.db.transaction() as tx:
        target = await _load(tx, where)
        unknown = set(body) - {"keep_previous"}
        keep = body.get("keep_previous", True)
        if unknown or not isinstance(keep, bool):
            raise InvalidInput("the body may only hold keep_previous (a boolean, default true)")
        # keep_previous=false: the old RA stops answering at once (a compromised key).
        return await rotate_ra(services, tx, actor, target, keep_previous=keep)


async def new_challenge(
    services: Services, actor: Actor, where: Where, body: dict[str, Any]
) -> dict[str, Any]:
    async with services.db.transaction() as tx:
        return await create_challenge(services, tx, actor, await _load(tx, where), body)


async def bootstrap_scep(
    services: Services,
    tx: Tx,
    actor: Actor,
    app: Application,
    profile: Profile,
    legacy_profile: Profile | None,
) -> dict[str, Any]:
    """Enable SCEP with a static challenge on the demo attachment (and the legacy profile);
    returns the bootstrap.json keys (DESIGN.md, Contract). The demo allows single DES:
    micromdm's scepclient still sends it."""
    demo = {"enabled": True, "allow_des": True}
    new = await for_target(tx, app, profile)
    new_view = await update(services, tx, actor, new, demo)
    data: dict[str, Any] = {
        "scep_url": new_view["urls"]["scep_url"],
        "scep_challenge": (await set_static_challenge(services, tx, actor, new, None))["challenge"],
    }
    if legacy_profile is not None:
        old = await for_profile(tx, legacy_profile.id)
        old_view = await update(services, tx, actor, old, demo)
        data["legacy_scep_url"] = old_view["urls"]["scep_url"]
        data["legacy_scep_challenge"] = (
            await set_static_challenge(services, tx, actor, old, None)
        )["challenge"]
    return data
