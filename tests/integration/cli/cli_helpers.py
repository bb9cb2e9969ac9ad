"""Driving the `certgate` CLI (gateway.cli.main) through click's CliRunner: `Cli` runs a
command and parses `ca list` and `cert list`; the environment of a test's home and
database; the first-start bootstrap without a server; small X.509 readers."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from gateway.bootstrap import bootstrap_if_empty
from gateway.cli import main
from gateway.config import load_config
from gateway.services.graph import open_services
from store.db import Database

T = TypeVar("T")
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TOKEN_RE = re.compile(r"^cgt_[0-9a-f]{32}_[A-Za-z0-9_-]{20,}$")


@dataclass
class CaRow:
    id: uuid.UUID
    kind: str
    status: str
    key_type: str
    name: str
    subject: str


@dataclass
class CertRow:
    id: uuid.UUID
    status: str
    serial: str
    names: str


@dataclass
class Cli:
    env: dict[str, str]
    database_url: str
    tmp: Path
    runner: CliRunner

    def invoke(self, *args: str, env: dict[str, str] | None = None) -> Result:
        result = self.runner.invoke(
            main, list(args), env={**self.env, **(env or {})}, prog_name="certgate"
        )
        # CliRunner swallows unhandled exceptions (no traceback in the output): anything
        # but a clean exit (SystemExit, which ClickException/UsageError become) is a bug.
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"certgate {' '.join(args)} raised {result.exception!r}\n{result.output}"
        )
        assert "Traceback" not in result.output, result.output
        return result

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self.invoke(*args, env=env)
        assert result.exit_code == 0, f"certgate {' '.join(args)}:\n{result.output}"
        return result.output

    def fail(self, *args: str, code: int = 1) -> str:
        result = self.invoke(*args)
        assert result.exit_code == code, f"certgate {' '.join(args)}:\n{result.output}"
        return result.output

    def cas(self) -> list[CaRow]:
        rows = []
        for line in self.ok("ca", "list").splitlines():
            m = re.fullmatch(rf"({UUID_RE})\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+\((.*)\)", line)
            assert m, line
            rows.append(CaRow(uuid.UUID(m[1]), m[2], m[3], m[4], m[5], m[6]))
        return rows

    def ca_named(self, name: str) -> CaRow:
        (row,) = [c for c in self.cas() if c.name == name]
        return row

    def certs(self, *extra: str, app: str = "demo") -> list[CertRow]:
        rows = []
        for line in self.ok("cert", "list", "--app", app, *extra).splitlines():
            m = re.fullmatch(rf"({UUID_RE})\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+(.*)", line)
            assert m, line
            rows.append(CertRow(uuid.UUID(m[1]), m[2], m[3], m[4]))
        return rows

    def issue(self, cn: str, out: Path) -> tuple[uuid.UUID, str]:
        output = self.ok(
            "cert", "issue", "--app", "demo", "--profile", "tls-server", "--cn", cn, "--san", cn,
            "--out", str(out),
        )  # fmt: skip
        m = re.fullmatch(rf"issued ({UUID_RE}) serial ([0-9a-f]+) -> (.+)\n", output)
        assert m, output
        assert m[3] == str(out)
        return uuid.UUID(m[1]), m[2]

    def with_db(self, work: Callable[[Database], Awaitable[T]]) -> T:
        async def run() -> T:
            db = Database.create(self.database_url)
            try:
                return await work(db)
            finally:
                await db.close()

        return asyncio.run(run())


def environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "CERTGATE_HOME": str(tmp_path / "home"),
        "CERTGATE_DATABASE__URL": database_url,
        "CERTGATE_TLS__ENABLED": "false",
    }


async def bootstrap(env: dict[str, str], *, migrate: bool = True) -> dict[str, Any] | None:
    """What `certgate serve` does on first start, without listening."""
    services = await open_services(load_config(None, environ=env), migrate=migrate)
    try:
        return await bootstrap_if_empty(services)
    finally:
        await services.close()


def certificates_pem(text: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(text.encode())


def dns_names(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def public_der(holder: Any) -> bytes:
    """SubjectPublicKeyInfo DER of a certificate's, CSR's or private key's public key."""
    return bytes(
        holder.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
