"""The first start: bootstrap.json (mode 0600) with the keys of its contract, the root CA
PEM and the wrapped root key, a root and an intermediate CA, one active project."""

from __future__ import annotations

import os
import stat

import pytest

CONTRACT_KEYS = {
    "admin_token",
    "base_url",
    "application",
    "profile",
    "profile_id",
    "ca_chain_pem",
    "root_ca_path",
}


@pytest.mark.first_start
async def test_ok_bootstrap_files(gateway) -> None:
    path = gateway.config.home / "bootstrap.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert CONTRACT_KEYS <= set(gateway.bootstrap)
    assert (
        gateway.bootstrap["application"] == "demo" and gateway.bootstrap["profile"] == "tls-server"
    )
    assert (
        (gateway.config.home / "root-ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    )
    assert stat.S_IMODE(os.stat(gateway.config.home / "root.key").st_mode) == 0o600
    cas = (await gateway.get("/api/v1/cas"))["items"]
    assert sorted(c["kind"] for c in cas) == ["intermediate", "root"]
    projects = (await gateway.get("/api/v1/projects"))["items"]
    assert [p["status"] for p in projects] == ["active"]
