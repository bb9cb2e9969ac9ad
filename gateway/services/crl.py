"""CRL upkeep: rebuilt inside every revoking transaction and whenever the stored one is
near its nextUpdate (RFC 5280 §5.1.2.5: a CRL must be reissued before nextUpdate). Also
the public PKI reads: a CA's published CRL and its certificate (AIA caIssuers)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from cryptography import x509

from gateway.config import PkiConfig
from gateway.core.clock import SystemClock
from gateway.core.errors import NotFound
from gateway.core.model import Certificate, CertificateAuthority, CrlRecord
from gateway.pki.crl import RevokedEntry, build_crl
from gateway.pki.signer import CaSigner
from store.db import Database, Tx


class CrlService:
    def __init__(
        self, db: Database, signer: CaSigner, clock: SystemClock, config: PkiConfig
    ) -> None:
        self._db = db
        self._signer = signer
        self._clock = clock
        self._validity = timedelta(hours=config.crl_validity_hours)
        self._refresh = timedelta(hours=config.crl_refresh_hours)

    async def certificate_revoked(self, uow: Tx, certificate: Certificate) -> None:
        if certificate.ca_id is not None:  # a self-signed certificate is on no CRL
            await self.rebuild(uow, certificate.ca_id)

    async def rebuild(self, tx: Tx, ca_id: uuid.UUID) -> CrlRecord:
        ca = await tx.cas.get(ca_id)
        if ca is None:
            raise NotFound("CA not found")
        # The UPDATE … RETURNING row-locks the CA until commit, so concurrent rebuilds
        # (other processes included) serialize and CRL numbers only grow (RFC 5280 §5.2.3).
        number = await tx.cas.next_crl_number(ca_id)
        now = self._clock.now()
        revoked = [
            RevokedEntry(serial=int(serial, 16), revoked_at=at, reason=reason)
            for serial, at, reason in await tx.certificates.list_revoked(ca_id)
        ]
        key = await self._signer.load_ca_key(ca)
        ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
        der = build_crl(ca_cert, key, number, revoked, now, now + self._validity)
        record = CrlRecord(
            ca_id=ca_id, number=number, der=der, this_update=now, next_update=now + self._validity
        )
        await tx.crls.put(record)
        return record

    async def current(self, ca_id: uuid.UUID) -> CrlRecord:
        """The CA's CRL, rebuilt first when missing or inside the refresh window."""
        async with self._db.transaction() as tx:
            record = await tx.crls.get(ca_id)
            if record is not None and record.next_update - self._clock.now() > self._refresh:
                return record
            return await self.rebuild(tx, ca_id)

    async def published(self, ca_id: uuid.UUID) -> CrlRecord:
        """The CRL served at the CRL distribution point: `current`, for a CA that exists
        (a deleted CA's stored CRL is not served)."""
        async with self._db.transaction(read_only=True) as tx:
            ca = await tx.cas.get(ca_id)
        if ca is None:
            raise NotFound("CA not found")
        if not ca.holds_key:
            # RFC 5280 §5: a CRL is signed by its issuer's key, which is held elsewhere.
            raise NotFound(
                f"CA '{ca.name}' is external: its key is held outside certgate, so certgate "
                "cannot sign its CRL; the system holding the key publishes it",
                code="ca_external",
            )
        return await self.current(ca_id)

    async def ca_certificate(self, ca_id: uuid.UUID) -> CertificateAuthority:
        """The CA whose certificate the AIA caIssuers URL serves (RFC 5280 §4.2.2.1)."""
        async with self._db.transaction(read_only=True) as tx:
            ca = await tx.cas.get(ca_id)
        if ca is None:
            raise NotFound("CA not found")
        return ca

    async def refresh_all(self) -> int:
        """Scheduler hook: refresh every enabled CA's CRL that is due; returns how many."""
        async with self._db.transaction(read_only=True) as tx:
            cas = [ca for ca in await tx.cas.list() if ca.enabled and ca.holds_key]
        refreshed = 0
        for ca in cas:
            async with self._db.transaction() as tx:
                record = await tx.crls.get(ca.id)
                if record is None or record.next_update - self._clock.now() <= self._refresh:
                    await self.rebuild(tx, ca.id)
                    refreshed += 1
        return refreshed
