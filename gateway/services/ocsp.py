"""The OCSP responder (RFC 6960) of every CA whose key certgate holds.

Freshness: the certificate's status is read from the database on every request, so a
revocation made by any process shows in the next answer. What is cached is only the signed
bytes of a nonce-less answer, keyed by the CA certificate, the request's CertID *and* the
status read (status, revocation time, reason): a revocation changes the key, so a cached
"good" can never be served for a revoked certificate, in this process or another. An
answer is reused for half its validity, so every answer handed out still has at least half
of it left. A request with a nonce (RFC 8954) is signed afresh: the nonce is in it.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509 import ocsp as x509_ocsp

from gateway.core.clock import SystemClock
from gateway.core.errors import CAUnavailable, NotFound
from gateway.core.model import Certificate, CertificateAuthority, CertificateStatus
from gateway.pki.ocsp import (
    CertStatus,
    OcspRefused,
    ParsedRequest,
    Status,
    build_response,
    names_issuer,
    parse_request,
    unsuccessful,
)
from gateway.pki.signer import CaSigner
from store.db import Database, Tx

log = logging.getLogger(__name__)

# nextUpdate - thisUpdate (RFC 6960 §4.2.2.1). A relying party may keep a "good" this
# long; short, since a revocation must reach clients that cache answers.
VALIDITY = timedelta(hours=1)
_REUSE = VALIDITY / 2
_MAX_CACHED = 4096
# The largest request read: one CertID, a nonce and optional extensions fit in far less;
# a signed request (RFC 6960 §4.1.2, optional) with a few certificates still fits.
MAX_REQUEST_BYTES = 64 * 1024


class OcspService:
    def __init__(self, db: Database, signer: CaSigner, clock: SystemClock) -> None:
        self._db = db
        self._signer = signer
        self._clock = clock
        self._answers: OrderedDict[Hashable, tuple[bytes, datetime]] = OrderedDict()

    async def respond(self, ca_id: uuid.UUID, der: bytes) -> bytes:
        """A DER OCSPResponse for the DER request `der` to CA `ca_id`. NotFound for a CA
        that does not exist (an HTTP 404: there is no responder there); every other
        failure is an OCSP response status (RFC 6960 §2.3), never an HTTP error."""
        ca = await self._ca(ca_id)
        if not ca.holds_key:
            # §2.3 unauthorized: certgate cannot sign for a CA whose key is held elsewhere.
            return unsuccessful(x509_ocsp.OCSPResponseStatus.UNAUTHORIZED)
        try:
            request = parse_request(der)
        except OcspRefused as refused:
            log.info("OCSP request to CA %s refused: %s", ca_id, refused)
            return unsuccessful(refused.status)
        ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode("ascii"))
        status = await self._status(ca, ca_cert, request)
        key = (
            ca.id,
            hashlib.sha256(ca.certificate_pem.encode()).digest(),
            request.cert_id.cache_key(),
            status,
        )
        now = self._clock.now()
        if request.nonce is None:
            cached = self._answers.get(key)
            if cached is not None and now < cached[1]:
                return cached[0]
        try:
            ca_key = await self._signer.load_ca_key(ca)
        except CAUnavailable:
            log.exception("OCSP: the key of CA %s cannot be loaded", ca_id)
            return unsuccessful(x509_ocsp.OCSPResponseStatus.INTERNAL_ERROR)
        answer = build_response(ca_cert, ca_key, request, status, now, now + VALIDITY)
        if request.nonce is None:
            self._remember(key, answer, now + _REUSE)
        return answer

    async def _ca(self, ca_id: uuid.UUID) -> CertificateAuthority:
        # The CA row is configuration: the read cache (store.cache) serves it and drops it
        # when any process changes a CA.
        async def load(tx: Tx) -> CertificateAuthority | None:
            return await tx.cas.get(ca_id)

        ca = await self._db.cached(("ocsp-ca", ca_id), load)
        if ca is None:
            raise NotFound("CA not found")
        return ca

    async def _status(
        self, ca: CertificateAuthority, ca_cert: x509.Certificate, request: ParsedRequest
    ) -> CertStatus:
        # RFC 6960 §2.2: "unknown" when the responder does not know the certificate,
        # including a CertID that names another issuer than this CA.
        cert_id = request.cert_id
        if cert_id.serial <= 0 or not names_issuer(cert_id, ca_cert):
            return CertStatus(Status.UNKNOWN)
        async with self._db.transaction(read_only=True) as tx:
            cert = await tx.certificates.get_by_serial(format(cert_id.serial, "x"))
        return _status_of(cert, ca.id)

    def _remember(self, key: Hashable, answer: bytes, until: datetime) -> None:
        self._answers[key] = (answer, until)
        self._answers.move_to_end(key)
        while len(self._answers) > _MAX_CACHED:
            self._answers.popitem(last=False)


def _status_of(cert: Certificate | None, ca_id: uuid.UUID) -> CertStatus:
    if cert is None or cert.ca_id != ca_id:
        return CertStatus(Status.UNKNOWN)
    if cert.status is CertificateStatus.REVOKED:
        # §2.2: revoked, with the time and (when known) the reason.
        return CertStatus(Status.REVOKED, cert.revoked_at, cert.revocation_reason)
    # An expired certificate stays "good" unless revoked: OCSP reports revocation status
    # (§2.2), and validity dates are the relying party's own check.
    return CertStatus(Status.GOOD)
