"""Secrets at rest: no CA key, token secret, root key or generated private key appears in
the raw database files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization


async def test_ok_no_secret_in_raw_database(gateway) -> None:
    if not gateway.config.database_url.startswith("sqlite"):
        pytest.skip("scans the SQLite file; PostgreSQL storage is the same schema")
    services = gateway.services
    issued = await gateway.post(gateway.issue_path(), {"sans": ["k.test"]}, status=201)
    needles: list[bytes] = []
    async with services.db.transaction() as tx:
        cas = await tx.cas.list()
    for ca in cas:
        key = await services.signer.load_ca_key(ca)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        needles += [der, der[-32:], base64.b64encode(der)[:40]]
    token_secret = gateway.bootstrap["admin_token"].split("_", 2)[2]
    needles += [token_secret.encode(), (gateway.config.home / "root.key").read_bytes().strip()]
    gen_key = serialization.load_pem_private_key(issued["private_key_pem"].encode(), None)
    needles.append(
        gen_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )[-32:]
    )
    await services.db.close()  # flush WAL readers; the files are what an attacker would read
    db_file = Path(gateway.config.database_url.split("///", 1)[1])
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    assert len(raw) > 10_000
    for needle in needles:
        assert needle not in raw
