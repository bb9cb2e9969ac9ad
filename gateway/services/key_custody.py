"""Key custody: a private key generated here (REST issuance or renewal with a server-side
key) is kept, encrypted under its project's KMS data key, unless the request said
`"store_key": false`; Operators read it back through `…/certificates/{id}/private-key`.

The key is a `Secret` owned by its certificate (`certificate:<id>`, purpose
`certificate_private_key`), sealed with `kms.certificate_key_aad(certificate id)`, and
written in the transaction that stores the certificate (EnrollmentService's `also`): the
certificate and its key commit together or not at all. No new table: the secrets table
holds every other retrievable secret, under the same envelope encryption.
"""

from __future__ import annotations

import uuid

from gateway.core.errors import InvalidInput, NotFound
from gateway.core.model import Application, Certificate, Secret, new_id
from gateway.pki.keys import (
    PrivateKey,
    load_private_key_der,
    private_key_to_der,
    private_key_to_pem,
)
from gateway.pki.kms import Kms, certificate_key_aad
from gateway.services.audit import Actor, event
from gateway.services.graph import Services
from store.db import Tx

PURPOSE = "certificate_private_key"
PASSPHRASE_HEADER = "X-Key-Passphrase"
MIN_PASSPHRASE = 8
MAX_PASSPHRASE = 1024


def owner(certificate_id: uuid.UUID) -> str:
    return f"certificate:{certificate_id}"


class KeepKey:
    """gateway.core.ports.InTransaction: seals the certificate's key into `secrets` inside
    the transaction that stores the certificate (its id exists only from there on)."""

    def __init__(self, kms: Kms, key: PrivateKey) -> None:
        self._kms = kms
        self._key = key

    def __repr__(self) -> str:
        return "KeepKey(<redacted>)"

    async def certificate_stored(self, uow: Tx, certificate: Certificate) -> None:
        ciphertext = await self._kms.encrypt(
            certificate.project_id,
            private_key_to_der(self._key),
            certificate_key_aad(certificate.id),
        )
        await uow.secrets.add(
            Secret(
                new_id(),
                certificate.project_id,
                owner(certificate.id),
                PURPOSE,
                ciphertext,
                certificate.created_at,
            )
        )


def check_passphrase(passphrase: str | None) -> str | None:
    """The export passphrase, when given: at least 8 characters, like issuance's."""
    if passphrase is None:
        return None
    if not MIN_PASSPHRASE <= len(passphrase) <= MAX_PASSPHRASE:
        # Never echo the value (it is a secret).
        raise InvalidInput(
            f"the {PASSPHRASE_HEADER} passphrase must be {MIN_PASSPHRASE} to "
            f"{MAX_PASSPHRASE} characters",
            code="invalid_passphrase",
        )
    return passphrase


async def held_key(services: Services, tx: Tx, certificate: Certificate) -> PrivateKey | None:
    """The certificate's kept key, decrypted; None when none is held."""
    secret = await tx.secrets.get_by_owner(owner(certificate.id), PURPOSE)
    if secret is None:
        return None
    der = await services.kms.decrypt(
        secret.project_id, secret.ciphertext, certificate_key_aad(certificate.id)
    )
    return load_private_key_der(der)


async def read_private_key(
    services: Services,
    app: Application,
    certificate_id: uuid.UUID,
    actor: Actor,
    passphrase: str | None,
) -> str:
    """The certificate's kept key as PKCS#8 PEM (encrypted under `passphrase` when one is
    given, BestAvailableEncryption). Every read is audited (`certificate.private_key_read`),
    in the transaction that reads the key."""
    passphrase = check_passphrase(passphrase)
    async with services.db.transaction() as tx:
        certificate = await tx.certificates.get(certificate_id)
        if certificate is None or certificate.application_id != app.id:
            raise NotFound("certificate not found")
        key = await held_key(services, tx, certificate)
        if key is None:
            raise NotFound(
                "certgate holds no private key for this certificate: it was issued from a "
                'CSR (the key never left its owner) or with "store_key": false',
                code="private_key_not_held",
            )
        await tx.audit.add(
            event(
                actor,
                services.clock.now(),
                "certificate.private_key_read",
                "certificate",
                certificate.id,
                project_id=certificate.project_id,
                application_id=app.id,
                details={"serial": certificate.serial, "encrypted": passphrase is not None},
            )
        )
    return private_key_to_pem(key, passphrase)
