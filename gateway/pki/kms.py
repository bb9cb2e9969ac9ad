"""Envelope encryption: a root key wraps one data key per project; data keys encrypt
CA private keys and retrievable secrets.

Every blob — a wrapped data key or a data ciphertext — has the same shape:

    0x01 (version) || 12-byte random nonce || AES-256-GCM ciphertext || 16-byte tag

The AAD binds each blob to the row that holds it (`ca_key_aad`, `secret_aad`,
project id for data keys), so a blob copied into another row fails to decrypt.
Random 96-bit nonces are fine at our volumes: NIST SP 800-38D §8.3 caps a key at
2**32 random-nonce invocations, and each data key encrypts a handful of keys/secrets.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

ROOT_KEY_FILE = "root.key"
KEY_BYTES = 32  # AES-256
_VERSION = b"\x01"
_NONCE_BYTES = 12
_TAG_BYTES = 16


class KmsError(Exception):
    """A blob could not be decrypted (tampered, wrong key, wrong AAD) or is malformed.

    Messages never contain key material or plaintext.
    """


def ca_key_aad(ca_id: uuid.UUID) -> bytes:
    """AAD for a CA's encrypted private key (`CertificateAuthority.encrypted_key`)."""
    return b"certgate/ca-key/v1/" + ca_id.bytes


def secret_aad(secret_id: uuid.UUID) -> bytes:
    """AAD for a retrievable secret (`Secret.ciphertext`)."""
    return b"certgate/secret/v1/" + secret_id.bytes


def certificate_key_aad(certificate_id: uuid.UUID) -> bytes:
    """AAD for a server-generated certificate key kept in custody (a `Secret` whose
    owner is the certificate): bound to the certificate, so a blob copied onto another
    certificate's row fails to decrypt (gateway.services.key_custody)."""
    return b"certgate/certificate-key/v1/" + certificate_id.bytes


def project_key_aad(project_id: uuid.UUID) -> bytes:
    """AAD for a project's wrapped data key (`Project.wrapped_data_key`)."""
    return b"certgate/project-data-key/v1/" + project_id.bytes


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes, what: str) -> bytes:
    if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES:
        raise KmsError(f"{what}: blob too short")
    if blob[:1] != _VERSION:
        raise KmsError(f"{what}: unknown blob version {blob[0]}")
    nonce = blob[1 : 1 + _NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[1 + _NONCE_BYTES :], aad)
    except InvalidTag as err:
        raise KmsError(
            f"{what}: authentication failed (tampered blob, wrong key or wrong binding)"
        ) from err


def _decode_key_text(text: str) -> bytes | None:
    """Standard or URL-safe base64, padding optional; None unless exactly 32 bytes."""
    cleaned = "".join(text.split()).translate(str.maketrans("-_", "+/"))
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == KEY_BYTES else None


class RootKey:
    """The key-encryption key. Only wraps/unwraps project data keys."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"root key must be exactly {KEY_BYTES} bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "RootKey(<redacted>)"

    @classmethod
    def load(cls, home: Path, env_value: str | None) -> RootKey:
        """The root key from CERTGATE_ROOT_KEY when set, else `home/root.key`
        (created with mode 0600 on first use)."""
        if env_value is not None and env_value.strip():
            raw = _decode_key_text(env_value)
            if raw is None:
                # Never echo the value: it is (meant to be) a secret.
                raise ValueError(
                    f"CERTGATE_ROOT_KEY must be base64 or base64url of exactly {KEY_BYTES} bytes"
                )
            return cls(raw)
        path = home / ROOT_KEY_FILE
        if not path.exists():
            _create_key_file(path)
        return cls(_read_key_file(path))

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        return _seal(self._key, data_key, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        return _open(self._key, blob, aad, "wrapped data key")


def _create_key_file(path: Path) -> None:
    """Write a fresh key so that no reader ever sees a partial file and no concurrent
    starter's key is overwritten: write a private temp file, then hard-link it into
    place (link fails if the target exists)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    content = base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n"
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return  # another process won the race; use its key
        except OSError:
            # Filesystems without hard links: O_EXCL still refuses to clobber a key.
            try:
                fd2 = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return
            with os.fdopen(fd2, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        log.info("created root key file %s", path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_key_file(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "root key file %s had mode %o (group/world access); resetting to 0600", path, mode
        )
        path.chmod(0o600)
    raw = _decode_key_text(path.read_text("ascii", errors="replace"))
    if raw is None:
        raise ValueError(f"{path} must hold base64 of exactly {KEY_BYTES} bytes")
    return raw


class Kms:
    """Per-project data keys, unwrapped on demand and cached.

    The cache is only a cache: the truth is `Project.wrapped_data_key`, fetched through
    `wrapped_key_loader` on a miss.
    """

    def __init__(
        self,
        root: RootKey,
        wrapped_key_loader: Callable[[uuid.UUID], Awaitable[bytes]],
    ) -> None:
        self._root = root
        self._loader = wrapped_key_loader
        self._data_keys: dict[uuid.UUID, bytes] = {}

    def __repr__(self) -> str:
        return f"Kms(cached_projects={len(self._data_keys)})"

    def new_wrapped_data_key(self, project_id: uuid.UUID) -> bytes:
        """A fresh data key for a new project, wrapped for `Project.wrapped_data_key`.

        The plaintext is cached at once so CA keys can be encrypted before the project
        row is committed.
        """
        data_key = secrets.token_bytes(KEY_BYTES)
        wrapped = self._root.wrap(data_key, project_key_aad(project_id))
        self._data_keys[project_id] = data_key
        return wrapped

    def register(self, project_id: uuid.UUID, wrapped: bytes) -> None:
        """Unwrap and cache a project's data key (e.g. all projects at start-up)."""
        self._data_keys[project_id] = self._unwrap(project_id, wrapped)

    def forget(self, project_id: uuid.UUID) -> None:
        self._data_keys.pop(project_id, None)

    async def encrypt(self, project_id: uuid.UUID, plaintext: bytes, aad: bytes) -> bytes:
        return _seal(await self._data_key(project_id), plaintext, aad)

    async def decrypt(self, project_id: uuid.UUID, blob: bytes, aad: bytes) -> bytes:
        return _open(await self._data_key(project_id), blob, aad, "ciphertext")

    async def rewrap(
        self,
        source_project_id: uuid.UUID,
        target_project_id: uuid.UUID,
        blob: bytes,
        aad: bytes,
    ) -> bytes:
        """Move a blob from one project's key to another's, keeping its AAD (the row
        binding) unchanged: for a row that changes project. An export makes new rows, so it
        re-encrypts under the new row's binding instead (gateway.services.export)."""
        plaintext = await self.decrypt(source_project_id, blob, aad)
        return await self.encrypt(target_project_id, plaintext, aad)

    def _unwrap(self, project_id: uuid.UUID, wrapped: bytes) -> bytes:
        data_key = self._root.unwrap(wrapped, project_key_aad(project_id))
        if len(data_key) != KEY_BYTES:
            raise KmsError("wrapped data key has the wrong length")
        return data_key

    async def _data_key(self, project_id: uuid.UUID) -> bytes:
        cached = self._data_keys.get(project_id)
        if cached is not None:
            return cached
        data_key = self._unwrap(project_id, await self._loader(project_id))
        self._data_keys[project_id] = data_key
        return data_key
