"""Shared fixtures for gateway.pki tests: an in-memory KMS, URL builder, CA records and
a runner for the system `openssl` binary (the independent verifier)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core.model import CAKind, CAStatus, CertificateAuthority
from gateway.pki.ca import certificate_to_pem
from gateway.pki.keys import PrivateKey, key_type_of
from gateway.pki.kms import Kms, RootKey
from gateway.pki.signer import encrypt_ca_key


class FakeUrls:
    """CaUrls for tests: stable, recognisable URLs."""

    def crl_url(self, ca_id: uuid.UUID) -> str:
        return f"http://pki.test/pki/crl/{ca_id}.crl"

    def issuer_url(self, ca_id: uuid.UUID) -> str:
        return f"http://pki.test/pki/ca/{ca_id}.crt"

    def ocsp_url(self, ca_id: uuid.UUID) -> str:
        return f"http://pki.test/pki/ocsp/{ca_id}"


@dataclass
class KmsWorld:
    """A Kms whose "database" of wrapped project keys is a dict the test can inspect."""

    root: RootKey
    wrapped: dict[uuid.UUID, bytes] = field(default_factory=dict)
    loads: list[uuid.UUID] = field(default_factory=list)

    async def loader(self, project_id: uuid.UUID) -> bytes:
        self.loads.append(project_id)
        return self.wrapped[project_id]

    def kms(self) -> Kms:
        return Kms(self.root, self.loader)

    def new_project(self, kms: Kms) -> uuid.UUID:
        project_id = uuid.uuid4()
        self.wrapped[project_id] = kms.new_wrapped_data_key(project_id)
        return project_id


@pytest.fixture
def kms_world() -> KmsWorld:
    return KmsWorld(RootKey(secrets.token_bytes(32)))


@pytest.fixture
def kms(kms_world: KmsWorld) -> Kms:
    return kms_world.kms()


@pytest.fixture
def project_id(kms_world: KmsWorld, kms: Kms) -> uuid.UUID:
    return kms_world.new_project(kms)


@pytest.fixture
def urls() -> FakeUrls:
    return FakeUrls()


MakeCa = Callable[..., Awaitable[CertificateAuthority]]


@pytest.fixture
def make_ca(kms: Kms, project_id: uuid.UUID) -> MakeCa:
    """Build a CertificateAuthority record the way the CA service will: encrypt the
    key under the project's data key, bound to the CA id."""

    async def build(
        cert: x509.Certificate,
        key: PrivateKey,
        *,
        ca_id: uuid.UUID | None = None,
        parent: CertificateAuthority | None = None,
        name: str = "test-ca",
    ) -> CertificateAuthority:
        ca_id = ca_id or uuid.uuid4()
        key_type = key_type_of(key.public_key())
        assert key_type is not None
        return CertificateAuthority(
            id=ca_id,
            project_id=project_id,
            name=name,
            kind=CAKind.ROOT if parent is None else CAKind.INTERMEDIATE,
            parent_id=None if parent is None else parent.id,
            key_type=key_type,
            certificate_pem=certificate_to_pem(cert),
            chain_pem="" if parent is None else parent.full_chain_pem,
            subject=cert.subject.rfc4514_string(),
            serial=format(cert.serial_number, "x"),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            status=CAStatus.ACTIVE,
            encrypted_key=await encrypt_ca_key(kms, project_id, ca_id, key),
            created_at=datetime.now(UTC),
        )

    return build


@dataclass
class Openssl:
    binary: str
    workdir: Path

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.workdir / name
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
        return path

    def write_cert(self, name: str, cert: x509.Certificate) -> Path:
        return self.write(name, cert.public_bytes(serialization.Encoding.PEM))

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.workdir,
        )


@pytest.fixture
def openssl(tmp_path: Path) -> Openssl:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.skip("the openssl binary is needed to verify chains and CRLs independently")
    return Openssl(binary, tmp_path)
