"""ACME composition: builds the front-end (protocols.acme) with its dependencies, resolves
directories to endpoints, and manages External Account Binding keys (RFC 8555 §7.3.4),
kept in the secrets table encrypted under the project's key (gateway.pki.kms).

Settings of the ACME method (attachment.methods["acme"], or profile.enrollment["acme"] for
legacy profiles): enabled, eab_required (default true), validation_networks (CIDRs the
validators may reach; default any non-special address), challenges (default all three),
terms_of_service.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from gateway.appkeys import SERVICES
from gateway.core.acme import (
    ApprovalOutcome,
)
from gateway.core.errors import Conflict, NotFound
from gateway.core.methods import AcmeSettings
from gateway.core.model import (
    Application,
    EnrollmentMethod,
    Profile,
    ProfileAttachment,
    Secret,
    new_id,
)
from gateway.pki.kms import secret_aad
from gateway.services.audit import Actor, event
from gateway.services.graph import Services
from gateway.targets import AttachedTarget, EnrollmentTarget
from protocols.acme import nonces
from protocols.acme.routes import PREFIXES
from protocols.acme.server import AcmeDeps, AcmeServer, ValidationSettings
from protocols.acme.sweeper import sweep_forever
from store.db import Tx

ACME = EnrollmentMethod.ACME.value
EAB_PURPOSE = "eab_hmac"
NONCE_PURPOSE = "acme_nonce_key"
_KEYS_KEPT = 1024


@dataclass(frozen=True)
class EabCredentials:
    kid: str
    hmac_key: str  # base64url, as certbot's --eab-hmac-key and lego's --hmac take it


def attachment_scope(attachment: ProfileAttachment) -> str:
    return f"attachment:{attachment.id}"


def legacy_scope(profile: Profile) -> str:
    return f"profile:{profile.id}"


def check_settings(raw: Any) -> dict[str, Any]:
    """Submitted ACME settings, validated through the typed settings every route shares."""
    AcmeSettings.from_dict(raw)
    return dict(raw)


class Endpoints:
    """gateway.core.acme.EndpointResolver over the database. Directories, EAB keys and
    nonce keys are configuration (projects, applications, profiles, attachments, secrets):
    read through the process's configuration cache (store.cache), which every write to
    those tables, from any process, invalidates."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._keys: dict[uuid.UUID, bytes] = {}  # decrypted secrets by secret id

    async def scoped(self, app_slug: str, profile_slug: str) -> EnrollmentTarget | None:
        return await self._services.targets.serving(EnrollmentMethod.ACME, app_slug, profile_slug)

    async def legacy(self, profile_id: uuid.UUID) -> EnrollmentTarget | None:
        return await self._services.targets.serving_legacy(EnrollmentMethod.ACME, profile_id)

    async def eab_key(self, target: EnrollmentTarget, kid: str) -> bytes | None:
        owner = _owner(target.owner)
        secret = await self._secret(owner, EAB_PURPOSE)
        if secret is None:
            return None
        stored = json.loads(await self._plaintext(secret))
        if not secrets.compare_digest(stored["kid"], kid):
            return None
        return _b64decode(stored["key"])

    async def nonce_key(self, target: EnrollmentTarget) -> bytes:
        """One key per project (protocols.acme.nonces), so every process serving any of its
        directories accepts the nonces of the others; stored like every other secret,
        encrypted under the project's KMS key."""
        project_id = target.profile.project_id
        owner = _nonce_owner(project_id)
        secret = await self._secret(owner, NONCE_PURPOSE)
        if secret is None:
            secret = await self._make_nonce_key(project_id, owner)
        return await self._plaintext(secret)

    async def _secret(self, owner: str, purpose: str) -> Secret | None:
        async def load(tx: Tx) -> Secret | None:
            return await tx.secrets.get_by_owner(owner, purpose)

        return await self._services.db.cached(("secret", owner, purpose), load)

    async def _plaintext(self, secret: Secret) -> bytes:
        # A secret's id changes whenever it is replaced, so this never serves a stale one.
        plain = self._keys.get(secret.id)
        if plain is None:
            plain = await self._services.kms.decrypt(
                secret.project_id, secret.ciphertext, secret_aad(secret.id)
            )
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            self._keys[secret.id] = plain
        return plain

    async def _make_nonce_key(self, project_id: uuid.UUID, owner: str) -> Secret:
        """Insert the key unless another process did first; either way, the stored one."""
        services = self._services
        secret_id = new_id()
        ciphertext = await services.kms.encrypt(project_id, nonces.new_key(), secret_aad(secret_id))
        made = Secret(secret_id, project_id, owner, NONCE_PURPOSE, ciphertext, services.clock.now())
        try:
            async with services.db.transaction() as tx:
                if await tx.secrets.get_by_owner(owner, NONCE_PURPOSE) is None:
                    await tx.secrets.add(made)
        except Conflict:
            pass  # another process stored its key between our read and our insert
        async with services.db.transaction(read_only=True) as tx:
            stored = await tx.secrets.get_by_owner(owner, NONCE_PURPOSE)
        if stored is None:
            raise RuntimeError("the ACME nonce key could not be stored")
        return stored


class ApprovalOutcomes:
    """gateway.core.acme.PendingRequests over the enrollment core: `fetch_request` is what
    every requester polls (it also expires a request past its window and issues an approved
    one whose CA was unavailable at approval time)."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def outcome(self, request_id: uuid.UUID) -> ApprovalOutcome:
        try:
            request, certificate = await self._services.enrollment.fetch_request(request_id)
        except NotFound:
            return ApprovalOutcome(None)
        return ApprovalOutcome(
            request.state, certificate.id if certificate is not None else None, request.comment
        )


def _owner(scope: str) -> str:
    return f"{scope}:acme"


def _nonce_owner(project_id: uuid.UUID) -> str:
    return f"project:{project_id}:acme"


def new_eab_credentials() -> EabCredentials:
    """A fresh key id and 256-bit HMAC key (RFC 8555 §7.3.4). A key whose base64url form
    starts with "-" is drawn again: certbot's `--eab-hmac-key -x…` and lego's `--hmac -x…`
    would read it as an option, so one deployment in 64 could not be set up as documented."""
    while True:
        key = _b64(secrets.token_bytes(32))
        if not key.startswith("-"):
            return EabCredentials(f"kid-{secrets.token_urlsafe(12)}", key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def rotate_eab(
    services: Services,
    tx: Tx,
    actor: Actor,
    scope: str,
    project_id: uuid.UUID,
    application_id: uuid.UUID | None = None,
) -> EabCredentials:
    """A new key id and HMAC key replace the old pair; existing accounts keep working."""
    credentials = new_eab_credentials()
    secret_id = new_id()
    plaintext = json.dumps({"kid": credentials.kid, "key": credentials.hmac_key}).encode()
    ciphertext = await services.kms.encrypt(project_id, plaintext, secret_aad(secret_id))
    await tx.secrets.replace(
        Secret(secret_id, project_id, _owner(scope), EAB_PURPOSE, ciphertext, services.clock.now())
    )
    await tx.audit.add(
        event(
            actor,
            services.clock.now(),
            "acme.eab_rotated",
            "acme_directory",
            scope,
            project_id=project_id,
            application_id=application_id,
            details={"kid": credentials.kid},
        )
    )
    return credentials


async def current_eab_kid(services: Services, tx: Tx, scope: str) -> str | None:
    secret = await tx.secrets.get_by_owner(_owner(scope), EAB_PURPOSE)
    if secret is None:
        return None
    plain = await services.kms.decrypt(secret.project_id, secret.ciphertext, secret_aad(secret.id))
    return str(json.loads(plain)["kid"])


async def configure_attachment(
    services: Services,
    tx: Tx,
    actor: Actor,
    app: Application,
    profile: Profile,
    settings: dict[str, Any],
) -> tuple[ProfileAttachment, EabCredentials | None]:
    """Merge ACME settings into an attached profile; the first enabling creates EAB keys."""
    attachment = await tx.attachments.get(app.id, profile.id)
    if attachment is None:
        raise NotFound(f"profile '{profile.slug}' is not attached to '{app.slug}'")
    merged = check_settings({**attachment.methods.get(ACME, {}), **check_settings(settings)})
    updated = await tx.attachments.update_methods(
        attachment.id, {**attachment.methods, ACME: merged}
    )
    await tx.audit.add(
        event(
            actor,
            services.clock.now(),
            "application.acme_updated",
            "attachment",
            attachment.id,
            project_id=app.project_id,
            application_id=app.id,
            details={"profile": profile.slug, "acme": merged},
        )
    )
    credentials = None
    scope = attachment_scope(attachment)
    if merged.get("enabled") and await current_eab_kid(services, tx, scope) is None:
        credentials = await rotate_eab(services, tx, actor, scope, app.project_id, app.id)
    return updated, credentials


async def configure_legacy(
    services: Services, tx: Tx, actor: Actor, profile: Profile, settings: dict[str, Any]
) -> tuple[Profile, EabCredentials | None]:
    """ACME configured on the profile itself (legacy model, /profiles/{id}/acme/…)."""
    merged = check_settings({**profile.enrollment.get(ACME, {}), **check_settings(settings)})
    updated = await tx.profiles.update(
        replace(profile, enrollment={**profile.enrollment, ACME: merged})
    )
    credentials = None
    scope = legacy_scope(profile)
    if merged.get("enabled") and await current_eab_kid(services, tx, scope) is None:
        credentials = await rotate_eab(services, tx, actor, scope, profile.project_id)
    return updated, credentials


# ---- use cases of the REST API: each opens its own transaction ------------------------


@dataclass(frozen=True)
class AttachmentAcme:
    """An attached profile's ACME settings as stored, its current EAB key id, and the EAB
    credentials this call created (shown once: the HMAC key is never returned again)."""

    settings: dict[str, Any]
    eab_kid: str | None
    created: EabCredentials | None = None


async def _stored_attachment(tx: Tx, target: AttachedTarget) -> ProfileAttachment:
    attachment = await tx.attachments.get(target.application.id, target.profile.id)
    assert attachment is not None
    return attachment


async def get_settings(services: Services, target: AttachedTarget) -> AttachmentAcme:
    async with services.db.transaction(read_only=True) as tx:
        attachment = await _stored_attachment(tx, target)
        kid = await current_eab_kid(services, tx, attachment_scope(attachment))
    return AttachmentAcme(attachment.methods.get(ACME, {}), kid)


async def change_settings(
    services: Services, actor: Actor, target: AttachedTarget, body: dict[str, Any]
) -> AttachmentAcme:
    """configure_attachment in a transaction of its own."""
    async with services.db.transaction() as tx:
        attachment, created = await configure_attachment(
            services, tx, actor, target.application, target.profile, body
        )
        kid = await current_eab_kid(services, tx, attachment_scope(attachment))
    return AttachmentAcme(attachment.methods.get(ACME, {}), kid, created)


async def change_eab(services: Services, actor: Actor, target: AttachedTarget) -> EabCredentials:
    """Create or rotate an attached profile's EAB credentials (rotate_eab)."""
    app = target.application
    async with services.db.transaction() as tx:
        attachment = await _stored_attachment(tx, target)
        return await rotate_eab(
            services, tx, actor, attachment_scope(attachment), app.project_id, app.id
        )


def directory_path(app_slug: str, profile_slug: str) -> str:
    """For places outside a request (bootstrap.json); handlers use the named routes."""
    return PREFIXES["app"].format(app=app_slug, profile=profile_slug) + "/directory"


def legacy_directory_path(profile_id: uuid.UUID) -> str:
    return PREFIXES["legacy"].format(profile_id=profile_id) + "/directory"


def binder(server: AcmeServer) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx that binds the front-end's dependencies once the services are open
    (append it after the services context), runs the sweeper of stuck validations, and
    stops both at shutdown."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        config = services.config
        server.bind(
            AcmeDeps(
                db=services.db,
                endpoints=Endpoints(services),
                enrollment=services.enrollment,
                pending=ApprovalOutcomes(services),
                clock=services.clock,
                base_url=config.base_url,
                https_base_url=config.https_base_url,
                public_base_url_set=bool(config.server.public_base_url),
                validation=ValidationSettings(
                    http01_port=config.acme.http01_port,
                    tlsalpn01_port=config.acme.tlsalpn01_port,
                    resolvers=tuple(config.acme.resolvers),
                ),
            )
        )
        # Validations a crashed process left `processing` (protocols.acme.sweeper).
        sweeper = asyncio.create_task(sweep_forever(server))
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await server.close()

    return ctx
