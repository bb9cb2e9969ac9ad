from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.pki.kms import (
    Kms,
    KmsError,
    RootKey,
    ca_key_aad,
    project_key_aad,
    secret_aad,
)

if TYPE_CHECKING:
    from conftest import KmsWorld


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- blob format and data-key encryption -------------------------------------------------


async def test_round_trip_and_blob_format(kms: Kms, project_id: uuid.UUID) -> None:
    aad = secret_aad(uuid.uuid4())
    blob = await kms.encrypt(project_id, b"eab hmac key", aad)
    # version byte + 12-byte nonce + ciphertext (same length as plaintext) + 16-byte tag
    assert blob[0] == 0x01
    assert len(blob) == 1 + 12 + len(b"eab hmac key") + 16
    assert b"eab hmac key" not in blob
    assert await kms.decrypt(project_id, blob, aad) == b"eab hmac key"


async def test_nonces_are_fresh(kms: Kms, project_id: uuid.UUID) -> None:
    aad = secret_aad(uuid.uuid4())
    blobs = {await kms.encrypt(project_id, b"same", aad) for _ in range(50)}
    assert len(blobs) == 50
    assert len({blob[1:13] for blob in blobs}) == 50


@pytest.mark.parametrize(
    "position",
    [0, 1, 12, 13, -1],
    ids=["fail/version", "fail/nonce-first", "fail/nonce-last", "fail/ciphertext", "fail/tag"],
)
async def test_tampering_is_detected(kms: Kms, project_id: uuid.UUID, position: int) -> None:
    aad = ca_key_aad(uuid.uuid4())
    blob = bytearray(await kms.encrypt(project_id, b"pkcs8 bytes", aad))
    blob[position] ^= 0x01
    with pytest.raises(KmsError):
        await kms.decrypt(project_id, bytes(blob), aad)


@pytest.mark.parametrize(
    "blob", [b"", b"\x01", b"\x01" + bytes(27)], ids=["fail/empty", "fail/one-byte", "fail/short"]
)
async def test_truncated_blob(kms: Kms, project_id: uuid.UUID, blob: bytes) -> None:
    with pytest.raises(KmsError, match="too short"):
        await kms.decrypt(project_id, blob, b"aad")


async def test_wrong_aad_fails(kms: Kms, project_id: uuid.UUID) -> None:
    """A blob moved to another row (another CA/secret id) does not decrypt."""
    blob = await kms.encrypt(project_id, b"key", ca_key_aad(uuid.uuid4()))
    with pytest.raises(KmsError, match="authentication failed"):
        await kms.decrypt(project_id, blob, ca_key_aad(uuid.uuid4()))


def test_aad_conventions_differ_by_kind() -> None:
    row = uuid.uuid4()
    assert len({ca_key_aad(row), secret_aad(row), project_key_aad(row)}) == 3
    assert ca_key_aad(row) != ca_key_aad(uuid.uuid4())


async def test_wrong_project_fails(kms_world: KmsWorld, kms: Kms, project_id: uuid.UUID) -> None:
    other = kms_world.new_project(kms)
    aad = secret_aad(uuid.uuid4())
    blob = await kms.encrypt(project_id, b"secret", aad)
    with pytest.raises(KmsError):
        await kms.decrypt(other, blob, aad)


async def test_rewrap_moves_blob_between_projects(
    kms_world: KmsWorld, kms: Kms, project_id: uuid.UUID
) -> None:
    target = kms_world.new_project(kms)
    aad = ca_key_aad(uuid.uuid4())
    blob = await kms.encrypt(project_id, b"ca key", aad)
    moved = await kms.rewrap(project_id, target, blob, aad)
    assert await kms.decrypt(target, moved, aad) == b"ca key"
    with pytest.raises(KmsError):
        await kms.decrypt(project_id, moved, aad)


async def test_data_key_loaded_once_then_cached(kms_world: KmsWorld, kms: Kms) -> None:
    project_id = kms_world.new_project(kms)
    aad = secret_aad(uuid.uuid4())
    blob = await kms.encrypt(project_id, b"x", aad)
    # A fresh Kms (e.g. after restart) must fetch the wrapped key from the "DB" once.
    restarted = kms_world.kms()
    assert await restarted.decrypt(project_id, blob, aad) == b"x"
    assert await restarted.decrypt(project_id, blob, aad) == b"x"
    assert kms_world.loads == [project_id]


async def test_new_key_usable_before_commit(kms_world: KmsWorld) -> None:
    """new_wrapped_data_key caches the plaintext: no loader call needed (the row is not
    committed yet)."""
    kms = kms_world.kms()
    project_id = uuid.uuid4()
    wrapped = kms.new_wrapped_data_key(project_id)
    assert len(wrapped) == 1 + 12 + 32 + 16
    aad = ca_key_aad(uuid.uuid4())
    blob = await kms.encrypt(project_id, b"ca", aad)
    assert await kms.decrypt(project_id, blob, aad) == b"ca"
    assert kms_world.loads == []
    # A second Kms that only learns the wrapped key via register() can decrypt too.
    other = kms_world.kms()
    other.register(project_id, wrapped)
    assert await other.decrypt(project_id, blob, aad) == b"ca"
    assert kms_world.loads == []


def test_wrapped_key_bound_to_its_project(kms_world: KmsWorld) -> None:
    kms = kms_world.kms()
    wrapped = kms.new_wrapped_data_key(uuid.uuid4())
    with pytest.raises(KmsError):
        kms.register(uuid.uuid4(), wrapped)


def test_wrapped_key_needs_same_root(kms_world: KmsWorld) -> None:
    wrapped = kms_world.kms().new_wrapped_data_key(project_id := uuid.uuid4())
    stranger = Kms(RootKey(secrets.token_bytes(32)), kms_world.loader)
    with pytest.raises(KmsError) as info:
        stranger.register(project_id, wrapped)
    assert "authentication failed" in str(info.value)


async def test_unknown_project_propagates_loader_error(kms: Kms) -> None:
    with pytest.raises(KeyError):
        await kms.encrypt(uuid.uuid4(), b"x", b"aad")


def test_reprs_hide_key_material() -> None:
    raw = secrets.token_bytes(32)
    root = RootKey(raw)
    text = repr(root)
    assert "redacted" in text
    for encoded in (raw.hex(), base64.b64encode(raw).decode(), repr(raw)):
        assert encoded not in text


# --- root key loading ---------------------------------------------------------------------


def test_root_key_file_created_0600_and_reloaded(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = RootKey.load(home, None)
    key_file = home / "root.key"
    assert key_file.is_file()
    assert _mode(key_file) == 0o600
    assert len(base64.b64decode(key_file.read_text().strip(), validate=True)) == 32
    # No temp files left behind.
    assert sorted(p.name for p in home.iterdir()) == ["root.key"]

    content = key_file.read_text()
    second = RootKey.load(home, None)
    blob = first.wrap(b"k" * 32, b"aad")
    assert second.unwrap(blob, b"aad") == b"k" * 32
    # Reloading never rewrites the file.
    assert key_file.read_text() == content


def test_root_key_file_permissions_fixed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    RootKey.load(tmp_path, None)
    key_file = tmp_path / "root.key"
    content = key_file.read_text()
    os.chmod(key_file, 0o644)
    with caplog.at_level(logging.WARNING, logger="gateway.pki.kms"):
        RootKey.load(tmp_path, None)
    assert _mode(key_file) == 0o600
    assert any("0600" in record.getMessage() for record in caplog.records)
    # The warning never contains the key itself.
    assert content.strip() not in caplog.text
    assert key_file.read_text() == content


@pytest.mark.parametrize(
    "content",
    ["", "not base64!!", base64.b64encode(bytes(31)).decode()],
    ids=["fail/empty", "fail/not-base64", "fail/31-bytes"],
)
def test_corrupt_root_key_file(tmp_path: Path, content: str) -> None:
    key_file = tmp_path / "root.key"
    key_file.write_text(content)
    key_file.chmod(0o600)
    with pytest.raises(ValueError, match="exactly 32 bytes"):
        RootKey.load(tmp_path, None)


_RAW = bytes(range(32))


@pytest.mark.parametrize(
    "env_value",
    [
        base64.b64encode(_RAW).decode(),
        base64.urlsafe_b64encode(_RAW).decode(),
        base64.urlsafe_b64encode(_RAW).decode().rstrip("="),
        "  " + base64.b64encode(_RAW).decode() + "\n",
    ],
    ids=["ok/base64", "ok/base64url", "ok/unpadded", "ok/whitespace"],
)
def test_env_key_takes_precedence(tmp_path: Path, env_value: str) -> None:
    RootKey.load(tmp_path, None)  # a file key exists, but the env var wins
    from_env = RootKey.load(tmp_path, env_value)
    reference = RootKey(_RAW)
    assert reference.unwrap(from_env.wrap(b"d" * 32, b"a"), b"a") == b"d" * 32
    from_file = RootKey.load(tmp_path, None)
    with pytest.raises(KmsError):
        from_file.unwrap(from_env.wrap(b"d" * 32, b"a"), b"a")


def test_env_key_does_not_create_file(tmp_path: Path) -> None:
    RootKey.load(tmp_path, base64.b64encode(_RAW).decode())
    assert not (tmp_path / "root.key").exists()


@pytest.mark.parametrize(
    "env_value",
    [
        "definitely-not-a-key-value-$$$",
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        base64.b64encode(b"hunter2").decode(),
        _RAW.hex(),
    ],
    ids=["fail/garbage", "fail/31-bytes", "fail/33-bytes", "fail/short", "fail/hex"],
)
def test_bad_env_key(tmp_path: Path, env_value: str) -> None:
    with pytest.raises(ValueError, match="CERTGATE_ROOT_KEY") as info:
        RootKey.load(tmp_path, env_value)
    assert env_value not in str(info.value)
    assert not (tmp_path / "root.key").exists()
