"""SCEP over HTTP (RFC 8894 §4): GetCACaps, GetCACert and PKIOperation (POST, and GET with
a base64 `message` as Cisco IOS sends it), on the application-scoped and legacy URLs.

Errors: input that is not a SCEP message at all gets HTTP 400 text; once a message decodes,
every problem is a signed CertRep FAILURE with a failInfo (and a log line saying why).
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from cryptography import x509

from gateway.core.csr import parse_csr
from gateway.core.errors import BadCSR, DomainError, NotFound
from gateway.core.scep import (
    CAPABILITIES,
    LEGACY_PATH,
    NEW_PATH,
    CertRequest,
    FailInfo,
    MessageType,
    Outcome,
    PkiStatus,
    ScepBackend,
    ScepFailure,
    check_signing_time,
)
from gateway.core.target import EnrollmentTarget
from gateway.events.observe import RouteSpec
from protocols.scep.cms import (
    Undecodable,
    addressed_to,
    decrypt_enveloped,
    degenerate,
    signer_certificate,
)
from protocols.scep.cms import verify as verify_signature
from protocols.scep.messages import (
    MAX_MESSAGE_BYTES,
    PkiMessage,
    cert_rep,
    decode,
    issuer_and_serial,
    issuer_and_subject,
)

log = logging.getLogger("certgate.scep")

# RFC 8894 §4.1: clients append /pkiclient.exe (or /cgi-bin/pkiclient.exe) to the base URL.
_TAIL = r"{tail:(|/pkiclient\.exe|/cgi-bin/pkiclient\.exe)}"
APP_PATH = NEW_PATH + _TAIL
LEGACY_ROUTE = LEGACY_PATH + _TAIL
PKI_MESSAGE = "application/x-pki-message"  # RFC 8894 §4.3
CA_RA_CERT = "application/x-x509-ca-ra-cert"  # RFC 8894 §4.2.1.2


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


class ScepHandlers:
    """The front-end; `backend_for` finds the gateway's ScepBackend from a request."""

    def __init__(self, backend_for: Callable[[web.Request], ScepBackend]) -> None:
        self._backend_for = backend_for

    def routes(self) -> list[RouteSpec]:
        summary = "SCEP (RFC 8894): ?operation=GetCACaps|GetCACert|PKIOperation"
        return [
            RouteSpec("GET", APP_PATH, self.scoped, "scep_get", summary),
            RouteSpec("POST", APP_PATH, self.scoped, "scep_post", summary),
            RouteSpec("GET", LEGACY_ROUTE, self.legacy, "scep_legacy_get", summary + " (legacy)"),
            RouteSpec("POST", LEGACY_ROUTE, self.legacy, "scep_legacy_post", summary + " (legacy)"),
        ]

    async def scoped(self, request: web.Request) -> web.StreamResponse:
        backend = self._backend_for(request)
        app, profile = request.match_info["app"], request.match_info["profile"]
        return await self._serve(request, backend, lambda: backend.resolve(app, profile))

    async def legacy(self, request: web.Request) -> web.StreamResponse:
        backend = self._backend_for(request)
        try:
            profile_id = uuid.UUID(request.match_info["profile_id"])
        except ValueError:
            return _text(404, "no SCEP enrollment here (the profile id is not a UUID)")
        return await self._serve(request, backend, lambda: backend.resolve_legacy(profile_id))

    async def _serve(
        self,
        request: web.Request,
        backend: ScepBackend,
        target_of: Callable[[], Awaitable[EnrollmentTarget]],
    ) -> web.StreamResponse:
        operation = request.query.get("operation", "")
        try:
            target = await target_of()
            if operation == "GetCACaps":
                return _text(200, "\n".join(CAPABILITIES))
            if operation == "GetCACert":
                ra = await backend.ra(target)
                # §4.2.1.2: the RA certificate first, then the CA chain, certs-only.
                body = degenerate([ra.certificate, *ra.ca_chain])
                return web.Response(body=body, content_type=CA_RA_CERT)
            if operation == "PKIOperation":
                raw = await _message(request)
                return await self._pki_operation(request, backend, target, raw)
        except NotFound as err:
            return _text(404, err.message)
        except Undecodable as err:
            log.info("SCEP %s %s: undecodable message: %s", request.method, request.path, err)
            return _text(400, f"not a SCEP PKI message: {err}")
        except DomainError as err:
            log.warning("SCEP %s: %s", request.path, err.message)
            return _text(503 if err.code == "ca_unavailable" else 400, err.message)
        return _text(400, f"unsupported operation '{operation}' (RFC 8894 §3.5, §4)")

    async def _pki_operation(
        self, request: web.Request, backend: ScepBackend, target: EnrollmentTarget, raw: bytes
    ) -> web.StreamResponse:
        message = decode(raw)
        ra = await backend.ra(target)
        if message.signed.content is not None and ra.previous is not None:
            # The RA the request was encrypted to decrypts it and signs the answer: during
            # the grace period after a rotation, the previous one (RFC 8894 §2.2).
            ra = ra.addressed(addressed_to(message.signed.content))
        recipient: x509.Certificate | None = None
        cipher: str | None = None
        try:
            signer = signer_certificate(message.signed)
            verify_signature(message.signed, signer)
            recipient = signer
            check_signing_time(message.signed.signing_time, datetime.now(UTC))
            kind = _message_type(message)
            if message.signed.content is None:
                raise ScepFailure(FailInfo.BAD_REQUEST, "the message has no pkcsPKIEnvelope")
            plain, cipher = decrypt_enveloped(message.signed.content, ra.certificate, ra.key)
            _check_cipher(target, message, cipher)
            outcome = await self._dispatch(request, backend, target, message, kind, plain, signer)
        except ScepFailure as failure:
            outcome = Outcome.failure(failure.fail_info, failure.message)
        try:
            body = cert_rep(message, outcome, ra, recipient, cipher)
        except ScepFailure as failure:  # e.g. a requester key we cannot encrypt to
            outcome = Outcome.failure(failure.fail_info, failure.message)
            body = cert_rep(message, outcome, ra, None, None)
        _log_outcome(target, message, outcome)
        return web.Response(body=body, content_type=PKI_MESSAGE)

    async def _dispatch(
        self,
        request: web.Request,
        backend: ScepBackend,
        target: EnrollmentTarget,
        message: PkiMessage,
        kind: MessageType,
        plain: bytes,
        signer: x509.Certificate,
    ) -> Outcome:
        if kind in (MessageType.PKCS_REQ, MessageType.RENEWAL_REQ):
            try:
                csr = parse_csr(plain)
            except BadCSR as err:
                raise ScepFailure(FailInfo.BAD_REQUEST, err.message) from err
            return await backend.certificate_request(
                CertRequest(
                    target=target,
                    message_type=kind,
                    transaction_id=message.transaction_id,
                    csr=csr,
                    csr_der=plain,
                    signer=signer,
                    source_ip=request.remote,
                )
            )
        if kind is MessageType.CERT_POLL:
            issuer, subject = issuer_and_subject(plain)
            return await backend.poll(target, message.transaction_id, issuer, subject)
        issuer, serial = issuer_and_serial(plain)
        if kind is MessageType.GET_CERT:
            return await backend.get_cert(target, issuer, serial)
        return await backend.get_crl(target, issuer, serial)


def _check_cipher(target: EnrollmentTarget, message: PkiMessage, cipher: str) -> None:
    """Single DES only where the SCEP settings allow it for old devices (ScepSettings)."""
    if cipher != "des":
        return
    if not target.methods.scep.allow_des:
        raise ScepFailure(
            FailInfo.BAD_ALG,
            "single DES is not accepted here; encrypt with AES or 3DES (RFC 8894 §3.5.2)",
        )
    log.warning(
        "SCEP %s: transaction %s encrypted with single DES (allowed by the settings; DES is "
        "broken, move the device to AES)",
        target.profile.slug,
        message.transaction_id,
    )


def _message_type(message: PkiMessage) -> MessageType:
    """RFC 8894 §3.2.1.2: the types a client may send us."""
    allowed = {
        MessageType.PKCS_REQ,
        MessageType.RENEWAL_REQ,
        MessageType.CERT_POLL,
        MessageType.GET_CERT,
        MessageType.GET_CRL,
    }
    for kind in allowed:
        if kind == message.message_type:
            return kind
    raise ScepFailure(FailInfo.BAD_REQUEST, f"messageType {message.message_type} is not supported")


async def _message(request: web.Request) -> bytes:
    if request.method == "POST":
        # §4.3: the body is the binary pkiMessage; Content-Type is not checked, clients vary.
        if request.content_length and request.content_length > MAX_MESSAGE_BYTES:
            raise Undecodable(f"message larger than {MAX_MESSAGE_BYTES} bytes")
        return await request.read()
    # §4.3: GET carries base64 in `message`; a '+' that was not percent-encoded arrives as a
    # space once the query string is decoded.
    text = request.query.get("message", "").replace(" ", "+")
    if not text:
        raise Undecodable("PKIOperation by GET needs a base64 'message' parameter")
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as err:
        raise Undecodable("the 'message' parameter is not base64") from err


def _log_outcome(target: EnrollmentTarget, message: PkiMessage, outcome: Outcome) -> None:
    kind = message.message_type
    if outcome.status is PkiStatus.FAILURE:
        fail = outcome.fail_info.name if outcome.fail_info is not None else "?"
        log.warning(
            "SCEP %s messageType %s transaction %s: FAILURE %s: %s",
            target.label,
            kind,
            message.transaction_id,
            fail,
            outcome.reason,
        )
    else:
        log.info(
            "SCEP %s messageType %s transaction %s: %s",
            target.label,
            kind,
            message.transaction_id,
            outcome.status.name,
        )
