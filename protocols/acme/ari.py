"""ACME Renewal Information (RFC 9773) and revokeCert (RFC 8555 §7.6)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.core.acme import (
    Account,
    Identifier,
    b64url,
    b64url_decode,
    certificate_identifiers,
    normalize,
)
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.model import Certificate, CertificateStatus, RevocationReason
from protocols.acme import jws as jwslib
from protocols.acme.messages import Revocation, decode
from protocols.acme.problems import Problem, malformed, not_found
from protocols.acme.server import Ctx, iso, json_response, verify_post

# RFC 5280 §5.3.1 codes a subscriber may ask for (RFC 8555 §7.6 leaves the set to the CA):
# no certificateHold (6), removeFromCRL (8), cACompromise (2) or aACompromise (10).
_REASONS = {0, 1, 3, 4, 5, 9}
ARI_RETRY_AFTER = "21600"  # RFC 9773 §4.3: ask again in six hours


def cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial DER INTEGER bytes)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    serial = cert.serial_number
    raw = serial.to_bytes((serial.bit_length() + 8) // 8, "big")  # keeps a sign-bit 0x00
    return f"{b64url(aki.key_identifier or b'')}.{b64url(raw)}"


def _serial_from_cert_id(value: str) -> str:
    parts = value.split(".")
    if len(parts) != 2:
        raise malformed("certificate identifier must be keyIdentifier.serial (RFC 9773 §4.1)")
    try:
        serial = b64url_decode(parts[1])
        b64url_decode(parts[0])
    except ValueError:
        raise malformed("certificate identifier is not base64url") from None
    if not serial:
        raise malformed("certificate identifier has an empty serial")
    return format(int.from_bytes(serial, "big"), "x")


def _served_here(ctx: Ctx, cert: Certificate) -> bool:
    """Whether the certificate was issued under this directory: its profile and its
    application, or, at a legacy endpoint, no application. A profile is shared by every
    application that attaches it, so comparing the profile alone let an account of one
    application, holding authorizations for the same names, revoke another application's
    certificate (§7.6 authorizes by identifiers, which do not tell applications apart)."""
    application = ctx.target.application
    return cert.profile_id == ctx.target.profile.id and cert.application_id == (
        application.id if application is not None else None
    )


async def _by_cert_id(ctx: Ctx, value: str) -> Certificate | None:
    serial = _serial_from_cert_id(value)
    async with ctx.work(read_only=True) as uow:
        cert = await uow.certificates.get_by_serial(serial)
    if cert is None or not _served_here(ctx, cert):
        return None
    if cert_id(x509.load_pem_x509_certificate(cert.certificate_pem.encode())) != value:
        return None
    return cert


async def renewal_info(ctx: Ctx) -> web.Response:
    """RFC 9773 §4.2: GET (unauthenticated) suggested renewal window: the last third of the
    certificate's validity, ending well before expiry; now if it was revoked."""
    cert = await _by_cert_id(ctx, ctx.request.match_info["cert_id"])
    if cert is None:
        raise not_found("certificate")
    if cert.status is CertificateStatus.REVOKED:
        start = ctx.server.now()
        end = start + timedelta(hours=1)
    else:
        lifetime = cert.not_after - cert.not_before
        start = cert.not_after - lifetime / 3
        end = cert.not_after - lifetime / 9
    ctx.headers["Retry-After"] = ARI_RETRY_AFTER
    return json_response(ctx, {"suggestedWindow": {"start": iso(start), "end": iso(end)}})


async def check_replaces(
    ctx: Ctx, account: Account, value: str | None, identifiers: Sequence[Identifier]
) -> str | None:
    """RFC 9773 §5: `replaces` must name a certificate this account obtained here, share at
    least one identifier with the new order, and not be replaced already by another order
    that is not invalid (409 alreadyReplaced)."""
    if value is None:
        return None
    cert = await _by_cert_id(ctx, value)
    if cert is None:
        raise malformed("replaces does not name a certificate of this account")
    async with ctx.work(read_only=True) as uow:
        order = await uow.acme.find_order_by_certificate(cert.id)
        if order is None or order.account_id != account.id:
            raise malformed("replaces does not name a certificate of this account")
        if not {normalize(i) for i in order.identifiers} & {normalize(i) for i in identifiers}:
            raise malformed("the order shares no identifier with the certificate it replaces")
        if await uow.acme.find_order_replacing(value, ctx.server.now()) is not None:
            raise Problem("alreadyReplaced", "another order already replaces this certificate")
    return value


async def replaced_certificate_id(ctx: Ctx, value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    cert = await _by_cert_id(ctx, value)
    return cert.id if cert else None


async def revoke_cert(ctx: Ctx) -> web.Response:
    """RFC 8555 §7.6: signed by the account that ordered the certificate or one holding
    valid authorizations for all its identifiers (kid), or by the certificate's own key
    (jwk)."""
    verified = await verify_post(ctx, use_jwk=True)
    payload = decode(Revocation, verified.jws.payload())
    try:
        der = b64url_decode(payload.certificate)
        leaf = x509.load_der_x509_certificate(der)
    except ValueError:
        raise malformed("certificate is not base64url DER") from None
    reason_code = 0 if payload.reason is None else payload.reason
    # `type(...) is int`: JSON true would pass isinstance(…, int) as reason 1.
    if type(reason_code) is not int or reason_code not in _REASONS:
        raise Problem("badRevocationReason", f"revocation reason {payload.reason!r} not allowed")
    uow = ctx.uow
    cert = await uow.certificates.get_by_serial(format(leaf.serial_number, "x"))
    order = await uow.acme.find_order_by_certificate(cert.id) if cert else None
    if cert is None or not _served_here(ctx, cert):
        raise not_found("certificate")
    stored = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
    if stored.public_bytes(Encoding.DER) != der:
        raise not_found("certificate")
    if verified.account is not None:
        account = verified.account
        if order is None or order.account_id != account.id:
            # §7.6: also an account holding valid authorizations for every identifier the
            # certificate names.
            names = certificate_identifiers(leaf)
            held = await uow.acme.authorized_identifiers(account.id, ctx.server.now())
            if not names or not names <= held:
                raise Problem(
                    "unauthorized",
                    "this account neither ordered the certificate nor holds valid "
                    "authorizations for all of its identifiers",
                )
        actor = f"acme:{account.id}"
    else:
        spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        signer = jwslib.public_key(verified.jwk)
        if signer.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) != spki:
            raise Problem("unauthorized", "the JWS key is not the certificate's key")
        actor = "acme:certificate-key"
    await ctx.commit()  # revocation runs in the enrollment core's own transaction
    try:
        await ctx.deps.enrollment.revoke(
            cert.id,
            RevocationReason.from_code(reason_code),
            actor=actor,
            source_ip=ctx.request.remote,
        )
    except Conflict:
        raise Problem("alreadyRevoked", "the certificate is already revoked") from None
    except (InvalidInput, NotFound) as err:
        raise Problem("badRevocationReason", err.message) from None
    return web.Response(status=200)
