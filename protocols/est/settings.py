"""EST composition: settings per attached profile (legacy: per profile), the Basic-auth
passphrase (scrypt hash, encrypted in the secrets table), and `EstGateway`, the
gateway.core.est.EstBackend the protocols.est front-end calls."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import uuid
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.core.approval import fingerprint
from gateway.core.csr import csr_sans
from gateway.core.enrollment import EnrollmentRequest, Issued, Pending
from gateway.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    SelfSignedNeedsKey,
    Unauthorized,
)
from gateway.core.est import (
    LABEL_PATH,
    MIN_PASSWORD_LENGTH,
    NEW_PATH,
    EstSettings,
    chain_problem,
    est_label,
    load_bundle,
)
from gateway.core.model import (
    Application,
    Certificate,
    CertificateStatus,
    EnrollmentMethod,
    PolicyRules,
    Profile,
    ProfileAttachment,
    Secret,
    new_id,
)
from gateway.pki.keys import (
    build_csr,
    generate_private_key,
    load_private_key_der,
    private_key_to_der,
)
from gateway.pki.kms import secret_aad
from gateway.pki.passwords import generate_secret, hash_secret
from gateway.services.approvals import MAX_TTL_HOURS
from gateway.services.audit import Actor, event
from gateway.services.certificates import needs_approval
from gateway.services.graph import Services
from gateway.targets import AttachedTarget, EnrollmentTarget, load_scoped
from protocols.est.attrs import serverkeygen_type
from store.db import Tx

log = logging.getLogger(__name__)

EST = EnrollmentMethod.EST.value
PASSWORD_PURPOSE = "est_password_hash"
# A serverkeygen key waiting for its approval (RFC 7030 §4.4.2 under §4.2.3).
KEYGEN_PURPOSE = "est_keygen_pending_key"
# A held serverkeygen key outlives the longest approval request (approvals.MAX_TTL_HOURS)
# by a month, for a device that collects its approved certificate late.
HELD_KEY_LIFETIME = timedelta(hours=MAX_TTL_HOURS, days=30)


def attachment_owner(attachment_id: uuid.UUID) -> str:
    return f"attachment:{attachment_id}:est"


def profile_owner(profile_id: uuid.UUID) -> str:
    return f"profile:{profile_id}:est"


def target_owner(target: EnrollmentTarget) -> str:
    """The owner of a target's EST secrets: attachment_owner or profile_owner, the same
    bytes (stored rows carry them)."""
    return f"{target.owner}:est"


def _settings(raw: dict[str, Any] | None, where: str) -> EstSettings:
    try:
        return EstSettings.from_dict(raw)
    except InvalidInput as err:
        # Written around the EST API (e.g. the generic methods endpoint): treat as off.
        log.warning("EST settings of %s are invalid (%s); EST is off there", where, err.message)
        return EstSettings()


# ---- the backend --------------------------------------------------------------------


class EstGateway:
    """Implements gateway.core.est.EstBackend over the services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def resolve(self, application: str, profile: str) -> EnrollmentTarget:
        return await self.services.targets.require_serving(
            EnrollmentMethod.EST, application, profile
        )

    async def resolve_legacy(self, profile_id: uuid.UUID) -> EnrollmentTarget:
        return await self.services.targets.require_serving_legacy(EnrollmentMethod.EST, profile_id)

    async def _secret(self, target: EnrollmentTarget) -> Secret | None:
        """The stored passphrase hash of the target as it is now (a rotation drops the
        read cache, store.cache)."""
        owner = target_owner(target)

        async def load(tx: Tx) -> Secret | None:
            return await tx.secrets.get_by_owner(owner, PASSWORD_PURPOSE)

        return await self.services.db.cached(("est-password", owner), load)

    async def has_password(self, target: EnrollmentTarget) -> bool:
        return await self._secret(target) is not None

    async def ca_certificates(self, target: EnrollmentTarget) -> list[x509.Certificate]:
        """RFC 7030 §4.1.3. An external CA's chain is served like any other (it is the
        current CA certificate, though nothing is issued under it here); a self-signed
        profile has no CA at all."""
        if target.profile.self_signed:
            raise SelfSignedNeedsKey(
                f"profile '{target.profile.slug}' is self-signed: it has no CA certificates "
                "(each certificate is signed by its own key; only serverkeygen can issue)",
                code="self_signed_no_ca",
            )
        if target.ca is None:
            raise NotFound(f"the CA of profile '{target.profile.slug}' no longer exists")
        return x509.load_pem_x509_certificates(target.ca.full_chain_pem.encode())

    async def check_password(self, target: EnrollmentTarget, username: str, password: str) -> bool:
        secret = await self._secret(target)
        if secret is None:
            return False
        stored = (
            await self.services.kms.decrypt(
                secret.project_id, secret.ciphertext, secret_aad(secret.id)
            )
        ).decode()
        # Both compared in constant time (hmac.compare_digest), the name too; the passphrase
        # is checked whatever the name, so a wrong name does not answer faster. The
        # process's one verifier runs scrypt off the event loop and remembers a passphrase
        # that verified (a rotated passphrase has a new hash, so it misses).
        user_ok = hmac.compare_digest(username.encode(), target.methods.est.username.encode())
        password_ok = await self.services.verifier.verify(password, stored)
        return password_ok and user_ok

    async def current_certificate(
        self, target: EnrollmentTarget, cert: x509.Certificate
    ) -> Certificate:
        async with self.services.db.transaction(read_only=True) as tx:
            stored = await tx.certificates.get_by_serial(format(cert.serial_number, "x"))
        theirs = f"the client certificate '{cert.subject.rfc4514_string()}'"
        if (
            stored is None
            or x509.load_pem_x509_certificate(stored.certificate_pem.encode()) != cert
        ):
            raise Unauthorized(f"{theirs} was not issued by this gateway")
        if stored.ca_id != target.profile.ca_id:
            raise Unauthorized(f"{theirs} was issued by another CA than {est_label(target)}'s")
        owner_ok = (
            stored.application_id == target.application.id
            if target.application is not None
            else stored.profile_id == target.profile.id
        )
        if not owner_ok:
            raise Unauthorized(f"{theirs} belongs to another application or profile")
        if stored.status is not CertificateStatus.ACTIVE:
            raise Unauthorized(f"{theirs} has been revoked; enroll again with simpleenroll")
        if stored.not_after <= self.services.clock.now():
            raise Unauthorized(f"{theirs} has expired; enroll again with simpleenroll")
        return stored

    async def enrollment_cert_problem(
        self, target: EnrollmentTarget, cert: x509.Certificate
    ) -> str | None:
        bundle = target.methods.est.bootstrap_ca_pem
        anchors = load_bundle(bundle) if bundle.strip() else []
        problem = chain_problem(cert, anchors, self.services.clock.now())
        if problem is None:
            return None
        try:
            await self.current_certificate(target, cert)
        except Unauthorized:
            return problem
        return None  # §3.3.2: a certificate we issued for this target also identifies it

    async def policy(self, target: EnrollmentTarget) -> PolicyRules:
        if target.policy is None:
            raise NotFound(f"the policy of profile '{target.profile.slug}' no longer exists")
        return target.policy.rules

    async def enroll(self, request: EnrollmentRequest) -> Issued | Pending:
        return await self.services.enrollment.enroll(request)

    async def server_keygen(
        self, target: EnrollmentTarget, request: EnrollmentRequest
    ) -> tuple[Issued | Pending, bytes | None]:
        csr = request.csr
        if not isinstance(csr, x509.CertificateSigningRequest):
            raise InvalidInput("serverkeygen needs a parsed CSR")
        app = target.application
        # Legacy targets too: a legacy project's approval policy gates its profile's
        # legacy endpoints, and the device's repeat must find the key held for it.
        owner = keygen_owner(app.id if app else None, target.profile.id, request.requester, csr)
        held: tuple[bytes, x509.CertificateSigningRequest] | None = None
        fresh = False
        if await needs_approval(self.services, app, target.profile, None):
            # The key travels once, in the answer (RFC 7030 §4.4.2), but under approval the
            # first answer is a 202 (§4.2.3): hold the key, encrypted under the project
            # key, until the device repeats this request after the decision.
            held = await self._held_key(target, owner)
            if held is None:
                held, fresh = await self._hold_key(target, owner, *self._new_key(target, csr))
        pkcs8, ours = held or self._new_key(target, csr)
        # A self-signed profile signs with the certificate's own key: this one, made here.
        own = load_private_key_der(pkcs8) if target.profile.self_signed else None
        try:
            outcome = await self.enroll(dataclasses.replace(request, csr=ours, subject_key=own))
        except Exception:
            if fresh:
                await self._drop_key(owner)  # refused (e.g. policy): nothing stays behind
            raise
        if isinstance(outcome, Pending):
            if held is None:
                # An approval policy appeared after needs_approval() looked: hold it now.
                await self._hold_key(target, owner, pkcs8, ours)
            return outcome, None
        if held is not None:
            await self._drop_key(owner)  # handed out once; a repeat is a new enrollment
        return outcome, pkcs8

    @staticmethod
    def _new_key(
        target: EnrollmentTarget, csr: x509.CertificateSigningRequest
    ) -> tuple[bytes, x509.CertificateSigningRequest]:
        """A key of the CSR's type, or else the profile's (attrs.serverkeygen_type), and our
        own CSR for the device's names (§4.4.1)."""
        rules = target.policy.rules if target.policy is not None else None
        key = generate_private_key(serverkeygen_type(csr, target.profile.default_key_type, rules))
        return private_key_to_der(key), build_csr(key, csr.subject, csr_sans(csr))

    async def _held_key(
        self, target: EnrollmentTarget, owner: str
    ) -> tuple[bytes, x509.CertificateSigningRequest] | None:
        async with self.services.db.transaction(read_only=True) as tx:
            secret = await tx.secrets.get_by_owner(owner, KEYGEN_PURPOSE)
        if secret is None:
            return None
        plain = await self.services.kms.decrypt(
            secret.project_id, secret.ciphertext, secret_aad(secret.id)
        )
        size = int.from_bytes(plain[:4], "big")
        return plain[4 : 4 + size], x509.load_der_x509_csr(plain[4 + size :])

    async def _hold_key(
        self,
        target: EnrollmentTarget,
        owner: str,
        pkcs8: bytes,
        csr: x509.CertificateSigningRequest,
    ) -> tuple[tuple[bytes, x509.CertificateSigningRequest], bool]:
        """Store the key and the CSR made for it; if an identical request stored one first,
        that one (so concurrent repeats converge on one key and one approval request).
        Returns the held pair and whether it is ours."""
        services = self.services
        project_id = target.profile.project_id
        secret_id = new_id()
        plain = len(pkcs8).to_bytes(4, "big") + pkcs8 + csr.public_bytes(Encoding.DER)
        ciphertext = await services.kms.encrypt(project_id, plain, secret_aad(secret_id))
        made = Secret(
            secret_id, project_id, owner, KEYGEN_PURPOSE, ciphertext, services.clock.now()
        )
        try:
            async with services.db.transaction() as tx:
                # Keys nobody came back for (the device gone, the request left to expire)
                # go when a later one is held: no background task, no plaintext anywhere.
                await tx.secrets.purge(KEYGEN_PURPOSE, made.created_at - HELD_KEY_LIFETIME)
                await tx.secrets.add(made)
        except Conflict:
            theirs = await self._held_key(target, owner)
            if theirs is None:
                raise Conflict("the same serverkeygen request is being made; retry") from None
            return theirs, False
        return (pkcs8, csr), True

    async def _drop_key(self, owner: str) -> None:
        async with self.services.db.transaction() as tx:
            secret = await tx.secrets.get_by_owner(owner, KEYGEN_PURPOSE)
            if secret is not None:
                await tx.secrets.delete(secret.id)


def keygen_owner(
    application_id: uuid.UUID | None,
    profile_id: uuid.UUID,
    requester: str,
    csr: x509.CertificateSigningRequest,
) -> str:
    """The held serverkeygen key of one requester + device CSR at one target: what
    RFC 7030 §4.2.3's "same request, again" is (as the approval gate's fingerprint)."""
    csr_der = csr.public_bytes(Encoding.DER)
    return "est-keygen:" + fingerprint(application_id, profile_id, requester, csr_der)


# ---- settings (REST API, bootstrap) ---------------------------------------------------


async def _attachment(tx: Tx, target: AttachedTarget) -> ProfileAttachment:
    attachment = await tx.attachments.get(target.application.id, target.profile.id)
    if attachment is None:
        raise NotFound(f"profile '{target.profile.slug}' is not attached")
    return attachment


def settings_view(
    settings: EstSettings, has_password: bool, urls: dict[str, str]
) -> dict[str, Any]:
    return {**settings.to_dict(), "has_password": has_password, "urls": urls}


def target_urls(services: Services, app: Application | None, profile: Profile) -> dict[str, str]:
    base = (
        services.config.https_base_url if services.config.tls.enabled else services.config.base_url
    )
    if app is None:
        return {"base_url": base + _prefix(LABEL_PATH.format(label=profile.id, op=""))}
    return {
        "base_url": base + _prefix(NEW_PATH.format(app=app.slug, profile=profile.slug, op="")),
        "label_url": base + _prefix(LABEL_PATH.format(label=f"{app.slug}.{profile.slug}", op="")),
    }


def _prefix(path: str) -> str:
    """The EST base URL a client appends /<operation> to (est_curl.sh's BASE_URL)."""
    return path.rstrip("/")


async def get_settings(services: Services, target: AttachedTarget) -> dict[str, Any]:
    async with services.db.transaction(read_only=True) as tx:
        attachment = await _attachment(tx, target)
        secret = await tx.secrets.get_by_owner(attachment_owner(attachment.id), PASSWORD_PURPOSE)
    settings = _settings(attachment.methods.get(EST), target.profile.slug)
    return settings_view(
        settings, secret is not None, target_urls(services, target.application, target.profile)
    )


def merge(current: dict[str, Any] | None, body: dict[str, Any]) -> EstSettings:
    unknown = set(body) - set(EstSettings().to_dict())
    if unknown:
        raise InvalidInput(f"unknown EST settings: {', '.join(sorted(unknown))}")
    return EstSettings.from_dict({**_settings(current, "update").to_dict(), **body})


async def update_settings(
    services: Services, tx: Tx, actor: Actor, target: AttachedTarget, body: dict[str, Any]
) -> dict[str, Any]:
    attachment = await _attachment(tx, target)
    settings = merge(attachment.methods.get(EST), body)
    methods = {**attachment.methods, EST: settings.to_dict()}
    await tx.attachments.update_methods(attachment.id, methods)
    await tx.audit.add(
        event(
            actor,
            services.clock.now(),
            "application.est_updated",
            "attachment",
            attachment.id,
            project_id=target.application.project_id,
            application_id=target.application.id,
            details={"profile": target.profile.slug, "est": settings.to_dict()},
        )
    )
    secret = await tx.secrets.get_by_owner(attachment_owner(attachment.id), PASSWORD_PURPOSE)
    return settings_view(
        settings, secret is not None, target_urls(services, target.application, target.profile)
    )


def check_password(value: Any) -> str:
    if value is None:
        return generate_secret(18)
    if not isinstance(value, str) or len(value) < MIN_PASSWORD_LENGTH or len(value) > 256:
        raise InvalidInput(f"password must be {MIN_PASSWORD_LENGTH} to 256 characters")
    return value


async def store_password(
    services: Services, tx: Tx, project_id: uuid.UUID, owner: str, password: str
) -> None:
    """Store the scrypt hash (gateway.pki.passwords), itself encrypted under the project
    key; the plaintext is only ever returned to the caller once."""
    secret_id = new_id()
    hashed = await asyncio.to_thread(hash_secret, password)
    ciphertext = await services.kms.encrypt(project_id, hashed.encode(), secret_aad(secret_id))
    await tx.secrets.replace(
        Secret(secret_id, project_id, owner, PASSWORD_PURPOSE, ciphertext, services.clock.now())
    )


async def set_password(
    services: Services, tx: Tx, actor: Actor, target: AttachedTarget, password: Any
) -> dict[str, str]:
    attachment = await _attachment(tx, target)
    plain = check_password(password)
    app = target.application
    await store_password(services, tx, app.project_id, attachment_owner(attachment.id), plain)
    await tx.audit.add(
        event(
            actor,
            services.clock.now(),
            "application.est_password_set",
            "attachment",
            attachment.id,
            project_id=app.project_id,
            application_id=app.id,
            details={"profile": target.profile.slug},  # never the passphrase
        )
    )
    settings = _settings(attachment.methods.get(EST), target.profile.slug)
    return {"username": settings.username, "password": plain}


# ---- legacy profiles (Product Admin) --------------------------------------------------


async def _profile(tx: Tx, profile_id: uuid.UUID) -> Profile:
    profile = await tx.profiles.get(profile_id)
    if profile is None:
        raise NotFound("profile not found")
    return profile


async def get_profile_settings(services: Services, profile_id: uuid.UUID) -> dict[str, Any]:
    async with services.db.transaction(read_only=True) as tx:
        profile = await _profile(tx, profile_id)
        secret = await tx.secrets.get_by_owner(profile_owner(profile.id), PASSWORD_PURPOSE)
    settings = _settings(profile.enrollment.get(EST), str(profile_id))
    return settings_view(settings, secret is not None, target_urls(services, None, profile))


async def update_profile_settings(
    services: Services, tx: Tx, actor: Actor, profile_id: uuid.UUID, body: dict[str, Any]
) -> dict[str, Any]:
    profile = await _profile(tx, profile_id)
    settings = merge(profile.enrollment.get(EST), body)
    enrollment = {**profile.enrollment, EST: settings.to_dict()}
    await tx.profiles.update(dataclasses.replace(profile, enrollment=enrollment))
    await tx.audit.add(
        event(
            actor,
            services.clock.now(),
            "profile.est_updated",
            "profile",
            profile.id,
            project_id=profile.project_id,
            details={"est": settings.to_dict()},
        )
    )
    secret = await tx.secrets.get_by_owner(profile_owner(profile.id), PASSWORD_PURPOSE)
    return settings_view(settings, secret is not None, target_urls(services, None, profile))


async def set_profile_password(
    services: Services, tx: Tx, actor: Actor, profile_id: uuid.UUID, password: Any
) -> dict[str, str]:
    profile = await _profile(tx, profile_id)
    plain = check_password(password)
    await store_password(services, tx, profile.project_id, profile_owner(profile.id), plain)
    await tx.audit.add(
        event(
            actor,
            services.clock.now(),
            "profile.est_password_set",
            "profile",
            profile.id,
            project_id=profile.project_id,
        )
    )
    settings = _settings(profile.enrollment.get(EST), str(profile_id))
    return {"username": settings.username, "password": plain}


# ---- use cases of the REST API: each opens its own transaction ------------------------
# (get_settings and get_profile_settings above read in one of their own.)


async def change_settings(
    services: Services, actor: Actor, target: AttachedTarget, body: dict[str, Any]
) -> dict[str, Any]:
    async with services.db.transaction() as tx:
        return await update_settings(services, tx, actor, target, body)


async def change_password(
    services: Services, actor: Actor, target: AttachedTarget, password: Any
) -> dict[str, str]:
    """Set or rotate the Basic passphrase: the given one (>= 8 characters) or a generated
    one, in this answer only; the gateway keeps a hash."""
    async with services.db.transaction() as tx:
        return await set_password(services, tx, actor, target, password)


async def change_profile_settings(
    services: Services, actor: Actor, profile_id: uuid.UUID, body: dict[str, Any]
) -> dict[str, Any]:
    async with services.db.transaction() as tx:
        return await update_profile_settings(services, tx, actor, profile_id, body)


async def change_profile_password(
    services: Services, actor: Actor, profile_id: uuid.UUID, password: Any
) -> dict[str, str]:
    async with services.db.transaction() as tx:
        return await set_profile_password(services, tx, actor, profile_id, password)


async def bootstrap_est(
    services: Services,
    tx: Tx,
    actor: Actor,
    app: Application,
    profile: Profile,
    legacy_profile: Profile | None,
) -> dict[str, Any]:
    """Enable EST (Basic or client certificate) on the demo attachment and, if given, the
    legacy profile; returns the bootstrap.json keys (DESIGN.md, Contract)."""
    target = await load_scoped(tx, app.slug, profile.slug)
    await update_settings(services, tx, actor, target, {"enabled": True})
    new = await set_password(services, tx, actor, target, None)
    urls = target_urls(services, app, profile)
    data: dict[str, Any] = {
        "est_base_url": urls["base_url"],
        "est_label_url": urls["label_url"],
        "est_username": new["username"],
        "est_password": new["password"],
    }
    if legacy_profile is not None:
        await update_profile_settings(services, tx, actor, legacy_profile.id, {"enabled": True})
        old = await set_profile_password(services, tx, actor, legacy_profile.id, None)
        data["legacy_est_base_url"] = target_urls(services, None, legacy_profile)["base_url"]
        data["legacy_est_username"] = old["username"]
        data["legacy_est_password"] = old["password"]
    return data
