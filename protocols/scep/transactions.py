"""ScepGateway: the gateway.core.scep.ScepBackend that protocols.scep calls.

Who may enroll (RFC 8894 §2.3): a PKCSReq needs the static challenge or an unused dynamic
one; a RenewalReq signed by a valid, unrevoked certificate of this enrollment's CA needs
none. Every enrollment goes through EnrollmentService; its outcome is kept per
transactionID so that retries and CertPolls never issue twice.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

from cryptography import x509

from gateway.core.approval import is_final
from gateway.core.enrollment import EnrollmentRequest, Issued
from gateway.core.errors import CAUnavailable, DomainError, DuplicateSerial
from gateway.core.model import (
    Certificate,
    CertificateAuthority,
    CertificateStatus,
    EnrollmentMethod,
    RequestState,
    Secret,
    new_id,
)
from gateway.core.scep import (
    STALE_PROCESSING,
    CertRequest,
    FailInfo,
    MessageType,
    Outcome,
    RaCredentials,
    ScepTransaction,
    TransactionState,
    challenge_password,
    digest_hex,
    request_key,
    requester,
    scep_scope,
)
from gateway.pki.kms import secret_aad
from gateway.services.graph import Services
from gateway.targets import EnrollmentTarget
from protocols.scep import settings as scep_admin
from store.db import Tx

log = logging.getLogger("certgate.scep")


class _Moved(Exception):
    """The SCEP transaction left the state this enrollment claimed it in."""


_CACHE_LIMIT = 4096
# Transactions whose outcome is settled (RFC 8894 §3.3.2: SUCCESS or FAILURE, not PENDING).
_FINAL = frozenset({TransactionState.ISSUED, TransactionState.FAILED})


class ScepGateway:
    def __init__(self, services: Services) -> None:
        self.services = services
        # RA credentials by the id of the secret holding them: loading an RSA key costs
        # milliseconds, and a rotation stores a new secret (new id), so a hit is current.
        self._ra: dict[uuid.UUID, RaCredentials] = {}
        self._ra_pairs: dict[tuple[uuid.UUID, uuid.UUID], RaCredentials] = {}

    # ---- targets (configuration: through the read cache, store.cache) -----------------

    async def resolve(self, application: str, profile: str) -> EnrollmentTarget:
        return await self.services.targets.require_serving(
            EnrollmentMethod.SCEP, application, profile
        )

    async def resolve_legacy(self, profile_id: uuid.UUID) -> EnrollmentTarget:
        return await self.services.targets.require_serving_legacy(EnrollmentMethod.SCEP, profile_id)

    async def ra(self, target: EnrollmentTarget) -> RaCredentials:
        """The current RA, with the previous one while its rotation grace period lasts."""
        scope = scep_scope(target)

        async def load(tx: Tx) -> tuple[Secret | None, Secret | None, CertificateAuthority | None]:
            return (
                await tx.secrets.get_by_owner(scope, scep_admin.RA_PURPOSE),
                await tx.secrets.get_by_owner(scope, scep_admin.PREVIOUS_RA_PURPOSE),
                await tx.cas.get(target.profile.ca_id),
            )

        secret, previous, found = await self.services.db.cached(("scep-ra", scope), load)
        ca = scep_admin.ra_issuer(target, found)
        if secret is None:
            # Enabled around the SCEP API (e.g. the generic attachment endpoint): make one.
            async with self.services.db.transaction() as tx:
                secret = await tx.secrets.get_by_owner(scope, scep_admin.RA_PURPOSE)
                if secret is None:
                    current_target = await scep_admin.reread(tx, target)
                    await scep_admin.create_ra(self.services, tx, current_target)
                    secret = await tx.secrets.get_by_owner(scope, scep_admin.RA_PURPOSE)
            assert secret is not None
        current = await self._credentials(secret, ca)
        if previous is None:
            return current
        retired = await self._credentials(previous, ca)
        if self.services.clock.now() >= scep_admin.grace_end(previous, retired.certificate):
            return current
        pair = (secret.id, previous.id)
        combined = self._ra_pairs.get(pair)
        if combined is None:
            combined = dataclasses.replace(current, previous=retired)
            if len(self._ra_pairs) >= _CACHE_LIMIT:
                self._ra_pairs.clear()
            self._ra_pairs[pair] = combined
        return combined

    async def _credentials(self, secret: Secret, ca: CertificateAuthority) -> RaCredentials:
        cached = self._ra.get(secret.id)
        if cached is not None:
            return cached
        key, cert = await scep_admin.load_ra(self.services, secret)
        chain = tuple(x509.load_pem_x509_certificates(ca.full_chain_pem.encode()))
        credentials = RaCredentials(cert, key, chain)
        if len(self._ra) >= _CACHE_LIMIT:
            self._ra.clear()
        self._ra[secret.id] = credentials
        return credentials

    # ---- PKCSReq / RenewalReq ---------------------------------------------------------

    async def certificate_request(self, request: CertRequest) -> Outcome:
        target = request.target
        scope = scep_scope(target)
        key = request_key(request.message_type, request.signer)
        csr_digest = digest_hex(request.csr_der)
        renewed_from = None
        if request.message_type is MessageType.RENEWAL_REQ:
            renewed_from = await self._renewal_source(target, request.signer)
        password = challenge_password(request.csr)
        stored = await self._static_hash(target)
        authorized = renewed_from is not None or self._known(stored, password)
        now = self.services.clock.now()
        record = ScepTransaction(
            id=new_id(),
            scope=scope,
            transaction_id=request.transaction_id,
            request_key=key,
            message_type=request.message_type,
            csr_digest=csr_digest,
            csr_der=request.csr_der,
            requester=requester(request.transaction_id),
            renewed_from=renewed_from,
            state=TransactionState.PROCESSING,
            certificate_id=None,
            request_id=None,
            fail_info=None,
            reason="",
            created_at=now,
            updated_at=now,
        )
        # One write transaction looks for an earlier request with this transactionID,
        # consumes a dynamic challenge (a conditional UPDATE: exactly once) and claims the
        # transaction, so that concurrent copies of one request cannot both issue.
        claimed: bool | None = None
        async with self.services.db.transaction() as tx:
            existing = await tx.scep.get(scope, request.transaction_id, key)
            # §3.2.1.1: the same transactionID and CSR is a retransmission, answered with
            # the first outcome; a new CSR once that transaction is final is a new
            # enrollment (devices such as micromdm's scepclient derive the transactionID
            # from the public key, so a re-enrollment with the same key repeats it). Only a
            # transaction still in flight refuses another request under its transactionID.
            retry = existing is not None and (
                existing.csr_digest == csr_digest or existing.state not in _FINAL
            )
            if not retry:
                if not authorized and password:
                    authorized = await tx.scep.consume_challenge(
                        scope, digest_hex(password.encode()), now
                    )
                if authorized:
                    claimed = await self._claim(tx, record, existing)
        if retry:
            assert existing is not None
            if existing.csr_digest == csr_digest:
                return await self._replay(target, existing)  # §3.2.1.1: a retry
            return Outcome.failure(
                FailInfo.BAD_REQUEST,
                f"transactionID {request.transaction_id} already names another request",
            )
        if not authorized:
            if not password or not await self._static_ok(stored, password):
                why = "missing or wrong challenge password"
                if request.message_type is MessageType.RENEWAL_REQ:
                    why += " (and the RenewalReq is not signed by a valid certificate of this CA)"
                return Outcome.failure(FailInfo.BAD_REQUEST, why)
            async with self.services.db.transaction() as tx:
                existing = await tx.scep.get(scope, request.transaction_id, key)
                claimed = await self._claim(tx, record, existing)
        if not claimed:
            return Outcome.pending("an identical request is being processed")
        return await self._enroll(target, record, request.csr, request.source_ip)

    @staticmethod
    async def _claim(tx: Tx, record: ScepTransaction, existing: ScepTransaction | None) -> bool:
        if existing is not None:
            if existing.state not in _FINAL:
                return False
            # A final transaction (failed, or issued: a re-enrollment with the same key pair)
            # gives way to the new request; its certificate stays in the store.
            await tx.scep.delete(existing.id)
        return await tx.scep.claim(record)

    async def _enroll(
        self,
        target: EnrollmentTarget,
        record: ScepTransaction,
        csr: x509.CertificateSigningRequest,
        source_ip: str | None = None,
    ) -> Outcome:
        expected = record.state
        mark_issued = _MarkIssued(self, record)
        try:
            outcome = await self.services.enrollment.enroll(
                EnrollmentRequest(
                    profile=target.profile,
                    application=target.application,
                    csr=csr,
                    requester=record.requester,
                    method=EnrollmentMethod.SCEP,
                    source_ip=source_ip,
                    renewed_from=record.renewed_from,
                ),
                also=mark_issued,
            )
        except _Moved:
            async with self.services.db.transaction(read_only=True) as tx:
                current = await tx.scep.get(record.scope, record.transaction_id, record.request_key)
            if current is None or current.state is TransactionState.PROCESSING:
                return Outcome.pending("the request is being processed")
            return await self._replay(target, current)
        except (CAUnavailable, DuplicateSerial) as err:
            # Transient: forget the claim so that the client's retry tries again.
            if expected is TransactionState.PROCESSING:
                async with self.services.db.transaction() as tx:
                    await tx.scep.delete(record.id)
            return Outcome.failure(FailInfo.BAD_REQUEST, err.message)
        except DomainError as err:
            failed = self._moved(record, TransactionState.FAILED, reason=err.message)
            await self._store(failed, expected)
            return Outcome.failure(FailInfo.BAD_REQUEST, err.message)
        except BaseException:
            if expected is TransactionState.PROCESSING:
                async with self.services.db.transaction() as tx:
                    await tx.scep.delete(record.id)
            raise
        if isinstance(outcome, Issued):
            if mark_issued.certificate_id != outcome.certificate.id:
                # Finished an earlier approved request (Resume): record it here.
                issued = self._moved(
                    record, TransactionState.ISSUED, certificate_id=outcome.certificate.id
                )
                await self._store(issued, expected)
            return _success(outcome.certificate)
        pending = self._moved(record, TransactionState.PENDING, request_id=outcome.request_id)
        await self._store(pending, expected)
        return Outcome.pending(f"waiting for approval (request {outcome.request_id})")

    def _moved(
        self, record: ScepTransaction, state: TransactionState, **changes: object
    ) -> ScepTransaction:
        fail = FailInfo.BAD_REQUEST if state is TransactionState.FAILED else None
        return dataclasses.replace(
            record,
            state=state,
            fail_info=fail,
            updated_at=self.services.clock.now(),
            **changes,  # type: ignore[arg-type]
        )

    async def _store(self, record: ScepTransaction, expected: TransactionState) -> None:
        async with self.services.db.transaction() as tx:
            await tx.scep.update(record, expected)

    async def _replay(self, target: EnrollmentTarget, record: ScepTransaction) -> Outcome:
        """The outcome of an earlier request with this transactionID (RFC 8894 §3.2.1.1)."""
        if record.state is TransactionState.ISSUED:
            assert record.certificate_id is not None
            async with self.services.db.transaction(read_only=True) as tx:
                cert = await tx.certificates.get(record.certificate_id)
            if cert is None:
                return Outcome.failure(FailInfo.BAD_CERT_ID, "the issued certificate is gone")
            return _success(cert)
        if record.state is TransactionState.FAILED:
            return Outcome.failure(record.fail_info or FailInfo.BAD_REQUEST, record.reason)
        if record.state is TransactionState.PROCESSING:
            if self.services.clock.now() - record.updated_at < STALE_PROCESSING:
                return Outcome.pending("the request is being processed")
        if record.request_id is not None:
            async with self.services.db.transaction(read_only=True) as tx:
                approval = await tx.requests.get(record.request_id)
            if (
                approval is not None
                and is_final(approval.state)
                and (approval.state is not RequestState.ISSUED)
            ):
                why = f"the request was {approval.state.value}: {approval.comment}".rstrip(": ")
                failed = self._moved(record, TransactionState.FAILED, reason=why)
                await self._store(failed, record.state)
                return Outcome.failure(FailInfo.BAD_REQUEST, why)
        # Pending (or an abandoned claim): ask again; the approval engine recognises the
        # same requester and CSR and answers with the request's current state.
        csr = x509.load_der_x509_csr(record.csr_der)
        return await self._enroll(target, record, csr)

    # ---- who may enroll ---------------------------------------------------------------

    async def _renewal_source(
        self, target: EnrollmentTarget, signer: x509.Certificate
    ) -> uuid.UUID | None:
        """The stored certificate that signed a RenewalReq, if it may stand in for a
        challenge: ours, of this CA and this enrollment, active and within its validity."""
        async with self.services.db.transaction(read_only=True) as tx:
            stored = await tx.certificates.get_by_serial(format(signer.serial_number, "x"))
        now = self.services.clock.now()
        problem = None
        if (
            stored is None
            or x509.load_pem_x509_certificate(stored.certificate_pem.encode()) != signer
        ):
            problem = "was not issued by this gateway"
        elif stored.ca_id != target.profile.ca_id:
            problem = "was issued by another CA"
        elif (
            stored.application_id != target.application.id
            if target.application is not None
            else stored.profile_id != target.profile.id
        ):
            problem = "belongs to another application or profile"
        elif stored.status is not CertificateStatus.ACTIVE:
            problem = "is revoked"
        elif not stored.not_before <= now < stored.not_after:
            problem = "is not currently valid"
        if problem is not None:
            log.info(
                "SCEP %s: RenewalReq signer %s %s; a challenge is needed",
                target.label,
                signer.subject.rfc4514_string(),
                problem,
            )
            return None
        assert stored is not None
        return stored.id

    async def _static_hash(self, target: EnrollmentTarget) -> str | None:
        """The static challenge's scrypt hash, as stored now."""
        scope = scep_scope(target)

        async def load(tx: Tx) -> Secret | None:
            return await tx.secrets.get_by_owner(scope, scep_admin.CHALLENGE_PURPOSE)

        secret = await self.services.db.cached(("scep-challenge", scope), load)
        if secret is None:
            return None
        plain = await self.services.kms.decrypt(
            secret.project_id, secret.ciphertext, secret_aad(secret.id)
        )
        return plain.decode()

    def _known(self, stored: str | None, password: str | None) -> bool:
        """The static challenge, if this process verified the same one before. The memo of
        the process's one verifier only, never scrypt: this is asked before the write
        transaction that may consume a dynamic challenge, which must not wait on scrypt."""
        if not stored or not password:
            return False
        return self.services.verifier.known(password, stored)

    async def _static_ok(self, stored: str | None, password: str) -> bool:
        # scrypt (tens of ms on purpose) on the verifier's executor, never on the event loop.
        return stored is not None and await self.services.verifier.verify(password, stored)

    # ---- CertPoll, GetCert, GetCRL ----------------------------------------------------

    async def poll(
        self, target: EnrollmentTarget, transaction_id: str, issuer: x509.Name, subject: x509.Name
    ) -> Outcome:
        """RFC 8894 §3.3.3: the state of an earlier PKCSReq/RenewalReq."""
        async with self.services.db.transaction(read_only=True) as tx:
            record = await tx.scep.latest(scep_scope(target), transaction_id)
        if record is None:
            return Outcome.failure(
                FailInfo.BAD_CERT_ID, f"no enrollment with transactionID {transaction_id}"
            )
        if x509.load_der_x509_csr(record.csr_der).subject != subject:
            return Outcome.failure(
                FailInfo.BAD_CERT_ID, "the subject does not match the transaction's request"
            )
        return await self._replay(target, record)

    async def get_cert(self, target: EnrollmentTarget, issuer: x509.Name, serial: int) -> Outcome:
        """RFC 8894 §3.3.4: a certificate of this enrollment by issuer and serial."""
        async with self.services.db.transaction(read_only=True) as tx:
            stored = await tx.certificates.get_by_serial(format(serial, "x"))
            ca = await tx.cas.get(target.profile.ca_id)
        if (
            stored is None
            or ca is None
            or stored.ca_id != ca.id
            or x509.load_pem_x509_certificate(stored.certificate_pem.encode()).issuer != issuer
            or (
                stored.application_id != target.application.id
                if target.application is not None
                else stored.profile_id != target.profile.id
            )
        ):
            return Outcome.failure(
                FailInfo.BAD_CERT_ID, f"no certificate with serial {serial:x} from this issuer"
            )
        return _success(stored)

    async def get_crl(self, target: EnrollmentTarget, issuer: x509.Name, serial: int) -> Outcome:
        """RFC 8894 §3.3.5: the CRL of the CA that issued the named certificate."""
        async with self.services.db.transaction(read_only=True) as tx:
            ca = await tx.cas.get(target.profile.ca_id)
        if (
            ca is None
            or x509.load_pem_x509_certificate(ca.certificate_pem.encode()).subject != issuer
        ):
            return Outcome.failure(FailInfo.BAD_CERT_ID, "this enrollment's CA is not that issuer")
        record = await self.services.crl.current(ca.id)
        return Outcome.crl(record.der)


def _success(certificate: Certificate) -> Outcome:
    """RFC 8894 §3.3.2: the issued certificate comes first (clients take the first one)."""
    return Outcome.success(x509.load_pem_x509_certificate(certificate.certificate_pem.encode()))


class _MarkIssued:
    """The SCEP transaction's outcome commits with its certificate
    (gateway.core.ports.InTransaction): a retry can never find a certificate without its
    record, nor a record moved on by another process (a stale claim taken over) get a second
    certificate."""

    def __init__(self, gateway: ScepGateway, record: ScepTransaction) -> None:
        self._gateway = gateway
        self._record = record
        self._expected = record.state
        self.certificate_id: uuid.UUID | None = None

    async def certificate_stored(self, uow: Tx, certificate: Certificate) -> None:
        issued = self._gateway._moved(
            self._record, TransactionState.ISSUED, certificate_id=certificate.id
        )
        if not await uow.scep.update(issued, self._expected):
            raise _Moved
        self.certificate_id = certificate.id
