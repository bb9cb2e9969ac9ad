"""EST server (RFC 7030) request handling: one entry per URL form, one function per
operation, every failure rendered once as text/plain (protocols.est.errors)."""

from __future__ import annotations

import base64
import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509

from gateway.core import csr as csr_lib
from gateway.core.enrollment import EnrollmentRequest, Issued, Pending
from gateway.core.errors import DomainError
from gateway.core.est import (
    LABEL_PATH,
    NEW_PATH,
    OPERATIONS,
    EstAuth,
    EstBackend,
    EstSettings,
    est_label,
)
from gateway.core.model import EnrollmentMethod
from gateway.core.target import EnrollmentTarget
from gateway.events.observe import RouteSpec
from protocols.est import attrs, wire
from protocols.est.auth import Channel, IPNetwork, basic_credentials, channel
from protocols.est.errors import EstError, from_domain, render, unauthorized

log = logging.getLogger("certgate.est")

# A PKCS#10 request is a few KB even with RSA-4096 and many SANs; 64 KiB of base64 is
# plenty and matches gateway.core.csr's own limit.
MAX_BODY_BYTES = 64 * 1024
PROXY_CERT_HEADER = "X-SSL-Client-Cert"
_GET_OPS = ("cacerts", "csrattrs")
# RFC 7030 §3.2.1 / §3.3: EST runs over TLS. The CA certificates and the attributes a CSR
# should carry are public, so plain HTTP may fetch them (a device bootstrapping trust
# must check /cacerts out of band anyway, §4.1.1); every enrollment needs TLS, either on
# our listener or at a trusted TLS-terminating proxy.
_PLAIN_HTTP_OPS = _GET_OPS


@dataclass(frozen=True)
class EstContext:
    backend: EstBackend
    trusted_proxies: Sequence[IPNetwork] = ()
    proxy_header: str = PROXY_CERT_HEADER
    https_base_url: str = ""


Resolver = Callable[[EstBackend], Awaitable[EnrollmentTarget]]


class EstHandlers:
    """`context(request)` hands out the backend and settings (the composition root owns
    them); no state lives here."""

    def __init__(self, context: Callable[[web.Request], EstContext]) -> None:
        self._context = context

    def routes(self) -> list[RouteSpec]:
        return [
            RouteSpec("GET", NEW_PATH, self.new_form, "est_get", "EST cacerts / csrattrs"),
            RouteSpec(
                "POST", NEW_PATH, self.new_form, "est_post", "EST simple(re)enroll, serverkeygen"
            ),
            RouteSpec("GET", LABEL_PATH, self.label_form, "est_label_get", "EST (label form)"),
            RouteSpec("POST", LABEL_PATH, self.label_form, "est_label_post", "EST (label form)"),
        ]

    async def new_form(self, request: web.Request) -> web.StreamResponse:
        app, profile = request.match_info["app"], request.match_info["profile"]
        return await self._serve(request, lambda b: b.resolve(app, profile))

    async def label_form(self, request: web.Request) -> web.StreamResponse:
        label = request.match_info["label"]
        try:
            profile_id = uuid.UUID(label)
        except ValueError:
            app, dot, profile = label.partition(".")
            if not dot or not app or not profile:
                return render(
                    EstError(
                        404,
                        f"unknown EST label '{label}': use <application>.<profile>, a legacy "
                        "profile id, or /.well-known/est/applications/<app>/profiles/<profile>/",
                    ),
                    _request_id(request),
                )
            return await self._serve(request, lambda b: b.resolve(app, profile))
        return await self._serve(request, lambda b: b.resolve_legacy(profile_id))

    async def _serve(self, request: web.Request, resolve: Resolver) -> web.StreamResponse:
        op = request.match_info["op"]
        realm: str | None = None
        try:
            _check_operation(op, request.method)
            ctx = self._context(request)
            target = await resolve(ctx.backend)
            if EstAuth.BASIC in target.methods.est.accepted:
                realm = f"certgate EST {est_label(target)}"
            ch = channel(request, ctx.trusted_proxies, ctx.proxy_header)
            if not ch.tls and op not in _PLAIN_HTTP_OPS:
                hint = f": use {ctx.https_base_url}{request.path}" if ctx.https_base_url else ""
                raise EstError(403, f"EST {op} requires HTTPS (RFC 7030 §3.2.1){hint}")
            return await _OPERATIONS[op](Call(ctx, target, ch, request, realm))
        except EstError as err:
            return render(err, _request_id(request))
        except DomainError as err:
            return render(from_domain(err, realm), _request_id(request))
        except Exception:
            # Public detail, private cause: the log has the traceback, the device an id.
            rid = _request_id(request)
            log.exception("EST %s %s failed (request %s)", request.method, request.path, rid)
            return render(EstError(500, "internal error"), rid)


def _request_id(request: web.Request) -> str:
    return request.headers.get("X-Request-Id") or uuid.uuid4().hex


def _check_operation(op: str, method: str) -> None:
    if op not in OPERATIONS:
        raise EstError(404, f"unknown EST operation '{op}' (RFC 7030 §3.2.2: {OPERATIONS})")
    wanted = "GET" if op in _GET_OPS else "POST"
    if method != wanted:
        raise EstError(405, f"EST {op} takes {wanted}", {"Allow": wanted})


@dataclass(frozen=True)
class Call:
    ctx: EstContext
    target: EnrollmentTarget
    channel: Channel
    request: web.Request
    realm: str | None

    @property
    def backend(self) -> EstBackend:
        return self.ctx.backend

    @property
    def settings(self) -> EstSettings:
        return self.target.methods.est


# ---- operations -------------------------------------------------------------------------


async def cacerts(call: Call) -> web.Response:
    """RFC 7030 §4.1: no authentication; the issuing CA and its chain up to the root."""
    chain = await call.backend.ca_certificates(call.target)
    return _base64_response(wire.certs_only(chain), wire.PKCS7_CERTS_ONLY)


async def csrattrs(call: Call) -> web.Response:
    """RFC 7030 §4.5: what the CSR should carry; 204 when there is nothing to ask for."""
    policy = await call.backend.policy(call.target)
    found = attrs.csr_attributes(call.target, policy)
    if not found:
        return web.Response(status=204)
    return _base64_response(found.der(), wire.CSRATTRS)


async def simpleenroll(call: Call) -> web.Response:
    """RFC 7030 §4.2.1."""
    requester = await _authenticate(call)
    csr = await _read_csr(call)
    _check_tls_unique(call, csr)
    outcome = await call.backend.enroll(_enrollment(call, csr, requester))
    return _certificate_response(outcome)


async def simplereenroll(call: Call) -> web.Response:
    """RFC 7030 §4.2.2: authenticated by the certificate being renewed, whose subject and
    subjectAltName the new request must repeat exactly."""
    cert = call.channel.client_cert
    if cert is None:
        how = f"the {call.ctx.proxy_header} header" if call.channel.via_proxy else "TLS"
        raise unauthorized(
            f"simplereenroll needs the certificate being renewed as client certificate "
            f"(sent over {how}; RFC 7030 §4.2.2)",
            None,
        )
    current = await call.backend.current_certificate(call.target, cert)
    if EstAuth.BASIC in call.settings.required:
        await _basic(call, required=True)
    csr = await _read_csr(call)
    if csr.subject != cert.subject or set(csr_lib.csr_sans(csr)) != set(_cert_sans(cert)):
        raise EstError(
            400,
            "a re-enrollment CSR must carry exactly the subject and subjectAltName of the "
            f"certificate being renewed ('{cert.subject.rfc4514_string()}'; RFC 7030 §4.2.2)",
        )
    _check_tls_unique(call, csr)
    request = _enrollment(call, csr, _cert_requester(cert), renewed_from=current.id)
    return _certificate_response(await call.backend.enroll(request))


async def serverkeygen(call: Call) -> web.Response:
    """RFC 7030 §4.4: the CSR names the subject; we generate the key (the profile's type).
    Under approval: 202 like simpleenroll (§4.2.3); the backend holds the key until the
    same request comes back approved, and hands it out that once."""
    requester = await _authenticate(call)
    csr = await _read_csr(call)
    _check_tls_unique(call, csr)
    outcome, key = await call.backend.server_keygen(call.target, _enrollment(call, csr, requester))
    if isinstance(outcome, Pending) or key is None:
        return _pending(outcome) if isinstance(outcome, Pending) else _internal()
    cms = wire.certs_only([_leaf(outcome)])
    body, content_type = wire.multipart_keygen(key, cms)
    response = web.Response(status=200, body=body)
    response.headers["Content-Type"] = content_type
    return response


_OPERATIONS: dict[str, Callable[[Call], Awaitable[web.Response]]] = {
    "cacerts": cacerts,
    "csrattrs": csrattrs,
    "simpleenroll": simpleenroll,
    "simplereenroll": simplereenroll,
    "serverkeygen": serverkeygen,
}


# ---- helpers ----------------------------------------------------------------------------


async def _authenticate(call: Call) -> str:
    """The settings' accepted methods, at least one and every required one (RFC 7030 §3.3:
    the server decides which of HTTP and TLS authentication it needs). Returns a stable
    requester name for the device, so a repeated request is recognised (§4.2.3)."""
    settings = call.settings
    satisfied: dict[EstAuth, str] = {}
    problems: list[str] = []
    if EstAuth.BASIC in settings.accepted:
        who = await _basic(call, required=False)
        if who:
            satisfied[EstAuth.BASIC] = who
    cert = call.channel.client_cert
    if cert is not None and EstAuth.CLIENT_CERT in settings.accepted:
        problem = await call.backend.enrollment_cert_problem(call.target, cert)
        if problem is None:
            satisfied[EstAuth.CLIENT_CERT] = _cert_requester(cert)
        else:
            problems.append(problem)
    missing = [m.value for m in settings.required if m not in satisfied]
    if satisfied and not missing:
        return satisfied.get(EstAuth.CLIENT_CERT) or satisfied[EstAuth.BASIC]
    wanted = " and ".join(m.value for m in settings.required) or " or ".join(
        m.value for m in settings.accepted
    )
    detail = "; ".join(problems) if problems else "no credentials were sent"
    raise unauthorized(f"authentication required ({wanted}): {detail}", call.realm)


async def _basic(call: Call, *, required: bool) -> str | None:
    creds = basic_credentials(call.request)
    if creds is None:
        if required:
            raise unauthorized("this enrollment also requires HTTP Basic credentials", call.realm)
        return None
    if not await call.backend.has_password(call.target):
        raise unauthorized(
            f"no EST passphrase is set for {est_label(call.target)}; ask its administrator",
            call.realm,
        )
    if not await call.backend.check_password(call.target, creds.username, creds.password):
        raise unauthorized("wrong EST username or passphrase", call.realm)
    return f"est:basic:{creds.username}"


async def _read_csr(call: Call) -> x509.CertificateSigningRequest:
    """RFC 7030 §4.2.1: application/pkcs10, base64 DER (line breaks allowed; PEM armour and
    raw DER are tolerated as RFC 8951 §3.2 recommends being liberal)."""
    request = call.request
    if request.content_type.lower() not in wire.PKCS10_TYPES:
        raise EstError(
            415,
            f"send the CSR as Content-Type: application/pkcs10 (got '{request.content_type}')",
        )
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise EstError(413, f"the CSR body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise EstError(413, f"the CSR body is larger than {MAX_BODY_BYTES} bytes") from None
    if len(body) > MAX_BODY_BYTES:
        raise EstError(413, f"the CSR body is larger than {MAX_BODY_BYTES} bytes")
    return csr_lib.parse_csr(body)


def _check_tls_unique(call: Call, csr: x509.CertificateSigningRequest) -> None:
    """RFC 7030 §3.5: a challengePassword holding base64(tls-unique) links the CSR to this
    TLS session. Checked whenever it can be (TLS 1.2 on our listener); required when the
    settings say so."""
    password = wire.challenge_password(csr)
    unique = call.channel.tls_unique
    if unique is not None and password is not None:
        expected = base64.b64encode(unique)
        if not hmac.compare_digest(password.strip(), expected):
            raise EstError(
                400,
                "the CSR's challengePassword does not equal base64(tls-unique) of this TLS "
                "session (RFC 7030 §3.5); build the CSR inside the TLS session that sends it",
            )
        return
    if call.settings.require_tls_unique:
        if unique is None:
            raise EstError(
                400,
                "this enrollment requires proof-of-possession linking (RFC 7030 §3.5), which "
                "needs a TLS 1.2 session terminated by the gateway itself",
            )
        raise EstError(
            400,
            "this enrollment requires a challengePassword holding base64(tls-unique) of the "
            "TLS session (RFC 7030 §3.5); see /csrattrs",
        )


def _enrollment(
    call: Call,
    csr: x509.CertificateSigningRequest,
    requester: str,
    renewed_from: uuid.UUID | None = None,
) -> EnrollmentRequest:
    return EnrollmentRequest(
        profile=call.target.profile,
        application=call.target.application,
        csr=csr,
        requester=requester,
        method=EnrollmentMethod.EST,
        source_ip=call.request.remote,
        renewed_from=renewed_from,
    )


def _cert_requester(cert: x509.Certificate) -> str:
    return f"est:cert:{cert.subject.rfc4514_string()}#{cert.serial_number:x}"


def _cert_sans(cert: x509.Certificate) -> tuple[x509.GeneralName, ...]:
    try:
        return tuple(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return ()


def _leaf(outcome: Issued) -> x509.Certificate:
    return x509.load_pem_x509_certificate(outcome.certificate.certificate_pem.encode())


def _certificate_response(outcome: Issued | Pending) -> web.Response:
    """RFC 7030 §4.2.3: 200 with a certs-only CMS holding only the issued certificate, or
    202 with Retry-After while approval is pending."""
    if isinstance(outcome, Pending):
        return _pending(outcome)
    return _base64_response(wire.certs_only([_leaf(outcome)]), wire.PKCS7_CERTS_ONLY)


def _pending(outcome: Pending) -> web.Response:
    response = web.Response(
        status=202,
        text=(
            f"request {outcome.request_id} awaits approval; send the same request again "
            f"after {outcome.retry_after} seconds\n"
        ),
        content_type="text/plain",
    )
    response.headers["Retry-After"] = str(outcome.retry_after)
    return response


def _internal() -> web.Response:
    return render(EstError(500, "server-side key generation returned no key"), uuid.uuid4().hex)


def _base64_response(der: bytes, content_type: str) -> web.Response:
    response = web.Response(status=200, body=wire.b64_lines(der))
    response.headers["Content-Type"] = content_type
    response.headers.update(wire.BASE64_HEADERS)
    return response
