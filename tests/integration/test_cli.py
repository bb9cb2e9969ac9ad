"""The `certgate` CLI (gateway.cli.main) through click's CliRunner, on the parametrized
database_url. The database is bootstrapped the way `certgate serve` does it, without a
server. The commands call asyncio.run themselves, so the tests here are plain `def`."""

from __future__ import annotations

import asyncio
import itertools
import re
import stat
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.bootstrap import bootstrap_if_empty
from gateway.cli import main
from gateway.config import load_config
from gateway.core.clock import SystemClock
from gateway.core.errors import Unauthorized
from gateway.core.model import KeyType
from gateway.pki.ca import certificate_to_pem, create_root_ca
from gateway.pki.keys import generate_private_key, private_key_to_pem
from gateway.pki.verifier import SecretVerifier
from gateway.services.auth import Authenticator
from gateway.services.graph import open_services
from store.db import Database
from tests.helpers.databases import Seed

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


@pytest.fixture
def fresh_cli(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    # Away from the repository, so the CLI does not pick up ./conf/certgate.toml.
    monkeypatch.chdir(tmp_path)
    return Cli(environment(tmp_path, database_url), database_url, tmp_path, CliRunner())


@pytest.fixture
def cli(request: pytest.FixtureRequest, fresh_cli: Cli, seed_gateway: Seed) -> Cli:
    """After a first start: a copy of the run's bootstrapped template (tests/conftest.py),
    or, for a test marked first_start, the bootstrap itself."""
    if request.node.get_closest_marker("first_start"):
        assert asyncio.run(bootstrap(fresh_cli.env)) is not None
    else:
        seed_gateway(load_config(None, environ=fresh_cli.env))
    return fresh_cli


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


# --- help -------------------------------------------------------------------------------


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


ALL_COMMANDS = command_paths(main)


def test_help_covers_the_documented_commands() -> None:
    documented = {
        ("serve",), ("db",), ("db", "upgrade"), ("ca",), ("ca", "create"), ("ca", "list"),
        ("ca", "import"), ("token",), ("token", "create"), ("cert",), ("cert", "issue"),
        ("cert", "list"), ("cert", "revoke"),
    }  # fmt: skip
    assert documented <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: "ok/" + ("-".join(p) or "certgate"))
def test_help(path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="certgate")

    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert f"Usage: {' '.join(('certgate', *path))} [OPTIONS]" in result.output
    assert "--help" in result.output
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    if isinstance(command, click.Group):
        for sub in command.commands:
            assert sub in result.output
    # Nothing was created: --help touches no database or home directory.
    assert list(tmp_path.iterdir()) == []


def test_unknown_command_is_a_usage_error(fresh_cli: Cli) -> None:
    output = fresh_cli.fail("ca", "explode", code=2)
    assert "No such command 'explode'" in output


def test_bad_config_file_is_a_clean_error(fresh_cli: Cli) -> None:
    bad = fresh_cli.tmp / "bad.toml"
    bad.write_text("[server]\nport = 1\n")
    output = fresh_cli.fail("--config", str(bad), "ca", "list")
    assert "unknown setting 'server.port'" in output


# --- db ---------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_is_idempotent(fresh_cli: Cli) -> None:
    for _ in range(2):
        output = fresh_cli.ok("db", "upgrade")
        assert output == "database is at the latest schema revision\n"
    # The home and an embedded database are private, as `serve` makes them.
    home = Path(fresh_cli.env["CERTGATE_HOME"])
    assert home.stat().st_mode & 0o777 == 0o700
    url = fresh_cli.env["CERTGATE_DATABASE__URL"]
    if url.startswith("sqlite"):
        assert Path(url.split("///", 1)[1]).stat().st_mode & 0o777 == 0o600

    # The schema is complete: bootstrap works without migrating on its own.
    assert asyncio.run(bootstrap(fresh_cli.env, migrate=False)) is not None
    assert {c.name for c in fresh_cli.cas()} == {"root", "issuing"}


def test_db_upgrade_keeps_existing_data(cli: Cli) -> None:
    before = cli.cas()
    cli.ok("db", "upgrade")
    assert cli.cas() == before


# --- ca -----------------------------------------------------------------------------------


def test_ca_list_shows_the_bootstrapped_root_and_intermediate(cli: Cli) -> None:
    rows = cli.cas()

    assert [(c.name, c.kind, c.status, c.key_type) for c in rows] == [
        ("root", "root", "active", "ec-p256"),
        ("issuing", "intermediate", "active", "ec-p256"),
    ]
    assert rows[0].subject == "CN=certgate Root CA"
    assert rows[1].subject == "CN=certgate Issuing CA"


def test_ca_create_root_then_intermediate(cli: Cli) -> None:
    output = cli.ok("ca", "create", "--name", "x")
    m = re.fullmatch(rf"created root CA x \(({UUID_RE})\)\n", output)
    assert m, output
    root_id = uuid.UUID(m[1])

    output = cli.ok(
        "ca", "create", "--kind", "intermediate", "--parent", str(root_id), "--name", "y",
        "--key-type", "rsa-2048", "--common-name", "Y Issuing CA",
    )  # fmt: skip
    m = re.fullmatch(rf"created intermediate CA y \(({UUID_RE})\)\n", output)
    assert m, output
    child_id = uuid.UUID(m[1])

    x, y = cli.ca_named("x"), cli.ca_named("y")
    assert (x.id, x.kind, x.status, x.key_type) == (root_id, "root", "active", "ec-p256")
    assert (y.id, y.kind, y.status, y.key_type) == (child_id, "intermediate", "active", "rsa-2048")
    assert y.subject == "CN=Y Issuing CA"

    async def load(db: Database) -> tuple[Any, Any]:
        async with db.transaction(read_only=True) as tx:
            return await tx.cas.get(root_id), await tx.cas.get(child_id)

    root, child = cli.with_db(load)
    assert child.parent_id == root.id
    child_cert = x509.load_pem_x509_certificate(child.certificate_pem.encode())
    root_cert = x509.load_pem_x509_certificate(root.certificate_pem.encode())
    child_cert.verify_directly_issued_by(root_cert)
    child_key = child_cert.public_key()
    assert isinstance(child_key, rsa.RSAPublicKey)
    assert child_key.key_size == 2048


def test_ca_create_intermediate_without_parent_is_a_usage_error(cli: Cli) -> None:
    before = cli.cas()
    output = cli.fail("ca", "create", "--kind", "intermediate", "--name", "orphan", code=2)

    assert "--parent is required for an intermediate CA" in output
    assert "Usage: certgate ca create" in output
    assert cli.cas() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--key-type", "dsa-1024"), "unknown key type 'dsa-1024'", id="fail/key-type"),
        pytest.param(
            ("--kind", "intermediate", "--parent", str(uuid.UUID(int=7))),
            "not found",
            id="fail/unknown-parent",
        ),
    ],
)
def test_ca_create_errors_are_clean(cli: Cli, args: tuple[str, ...], message: str) -> None:
    before = cli.cas()
    output = cli.fail("ca", "create", "--name", "bad", *args)

    assert output.startswith("Error: ")
    assert message in output
    assert cli.cas() == before


def test_ca_create_rejects_a_bad_parent_id_format(cli: Cli) -> None:
    output = cli.fail(
        "ca", "create", "--kind", "intermediate", "--parent", "xyz", "--name", "z", code=2
    )
    assert "'xyz' is not a valid UUID" in output


def write_ca_files(directory: Path, *, passphrase: str | None = None) -> tuple[Path, Path, Any]:
    cert, key = create_root_ca("Imported Root", KeyType.EC_P256, 30, organization="Example")
    cert_file, key_file = directory / "ca.pem", directory / "ca.key"
    cert_file.write_text(certificate_to_pem(cert))
    key_file.write_text(private_key_to_pem(key, passphrase))
    return cert_file, key_file, cert


def test_ca_import(cli: Cli) -> None:
    cert_file, key_file, cert = write_ca_files(cli.tmp)
    output = cli.ok(
        "ca", "import", "--name", "imported", "--cert", str(cert_file), "--key", str(key_file)
    )
    m = re.fullmatch(rf"imported root CA imported \(({UUID_RE})\)\n", output)
    assert m, output

    row = cli.ca_named("imported")
    assert (row.id, row.kind, row.status, row.key_type) == (
        uuid.UUID(m[1]),
        "root",
        "active",
        "ec-p256",
    )
    assert row.subject == cert.subject.rfc4514_string()


def test_ca_import_with_an_encrypted_key(cli: Cli) -> None:
    cert_file, key_file, _ = write_ca_files(cli.tmp, passphrase="correct horse")
    args = ("ca", "import", "--name", "enc", "--cert", str(cert_file), "--key", str(key_file))

    output = cli.fail(*args)
    assert "private key is encrypted but no passphrase was given" in output

    cli.ok(*args, "--passphrase-env", "CA_KEY_PASS", env={"CA_KEY_PASS": "correct horse"})
    assert cli.ca_named("enc").kind == "root"


def test_ca_import_with_a_mismatched_key_fails_cleanly(cli: Cli) -> None:
    cert_file, key_file, _ = write_ca_files(cli.tmp)
    key_file.write_text(private_key_to_pem(generate_private_key(KeyType.EC_P256)))
    before = cli.cas()

    output = cli.fail(
        "ca", "import", "--name", "bad", "--cert", str(cert_file), "--key", str(key_file)
    )

    assert output == (
        "Error: the private key does not match the certificate's public key [invalid_input]\n"
    )
    assert cli.cas() == before


def test_ca_import_with_garbage_files_fails_cleanly(cli: Cli) -> None:
    cert_file, key_file, _ = write_ca_files(cli.tmp)
    junk = cli.tmp / "junk.pem"
    junk.write_text("not a pem\n")

    output = cli.fail("ca", "import", "--name", "b", "--cert", str(junk), "--key", str(key_file))
    assert output == "Error: no PEM certificate found [invalid_input]\n"
    output = cli.fail("ca", "import", "--name", "b", "--cert", str(cert_file), "--key", str(junk))
    assert "private key is not PEM" in output
    output = cli.fail(
        "ca", "import", "--name", "b", "--cert", str(cli.tmp / "missing.pem"), "--key",
        str(key_file), code=2,
    )  # fmt: skip
    assert "No such file or directory" in output


# --- token ------------------------------------------------------------------------------


def test_token_create_prints_a_working_token(cli: Cli) -> None:
    output = cli.ok("token", "create", "--principal", "admin", "--name", "ci")
    lines = output.splitlines()
    assert len(lines) == 1, output
    token = lines[0]
    assert TOKEN_RE.match(token), token

    async def check(db: Database) -> tuple[str, str]:
        auth = Authenticator(db, SystemClock(), SecretVerifier())
        who = await auth.authenticate(f"Bearer {token}")
        with pytest.raises(Unauthorized):
            await auth.authenticate(f"Bearer {token[:-4]}AAAA")
        return who.principal.name, who.token.name

    assert cli.with_db(check) == ("admin", "ci")


def test_each_token_create_gives_a_new_token(cli: Cli) -> None:
    first = cli.ok("token", "create", "--principal", "admin").strip()
    second = cli.ok("token", "create", "--principal", "admin").strip()
    assert first != second


def test_token_create_for_an_unknown_principal_fails_cleanly(cli: Cli) -> None:
    output = cli.fail("token", "create", "--principal", "nobody")
    assert output == "Error: no principal named 'nobody'\n"


# --- cert issue ---------------------------------------------------------------------------


def test_cert_issue_with_a_server_side_key_writes_cert_chain_and_key(cli: Cli) -> None:
    out = cli.tmp / "out" / "x.pem"
    out.parent.mkdir()
    cert_id, serial = cli.issue("x.test", out)

    certs = certificates_pem(out.read_text())
    assert len(certs) >= 2  # leaf + issuing CA (+ root)
    leaf = certs[0]
    assert dns_names(leaf) == ["x.test"]
    assert common_name(leaf) == "x.test"
    assert f"{leaf.serial_number:x}" == serial.lstrip("0")
    issuing = cli.ca_named("issuing")
    assert leaf.issuer.rfc4514_string() == issuing.subject
    for child, parent in itertools.pairwise(certs):
        child.verify_directly_issued_by(parent)

    key_file = Path(f"{out}.key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert public_der(key) == public_der(leaf)
    assert not list(out.parent.glob("*.tmp"))

    assert [(c.id, c.status) for c in cli.certs()] == [(cert_id, "active")]


def test_cert_issue_with_a_key_type(cli: Cli) -> None:
    out = cli.tmp / "rsa.pem"
    cli.ok(
        "cert", "issue", "--app", "demo", "--profile", "tls-server", "--cn", "rsa.test",
        "--key-type", "rsa-2048", "--out", str(out),
    )  # fmt: skip
    leaf = certificates_pem(out.read_text())[0]
    leaf_key = leaf.public_key()
    assert isinstance(leaf_key, rsa.RSAPublicKey)
    assert leaf_key.key_size == 2048


def test_cert_issue_without_out_prints_cert_chain_and_key(cli: Cli) -> None:
    output = cli.ok(
        "cert", "issue", "--app", "demo", "--profile", "tls-server", "--san", "stdout.test"
    )
    leaf = certificates_pem(output)[0]
    assert dns_names(leaf) == ["stdout.test"]
    key = serialization.load_pem_private_key(output.encode(), password=None)
    assert public_der(key) == public_der(leaf)


def test_cert_issue_with_a_csr(cli: Cli) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr.test")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("csr.test"), x509.DNSName("alt.test")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    csr_file = cli.tmp / "req.csr"
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    out = cli.tmp / "csr.pem"

    output = cli.ok(
        "cert", "issue", "--app", "demo", "--profile", "tls-server", "--csr", str(csr_file),
        "--out", str(out),
    )  # fmt: skip

    assert output.startswith("issued ")
    leaf = certificates_pem(out.read_text())[0]
    assert public_der(leaf) == public_der(key)
    assert sorted(dns_names(leaf)) == ["alt.test", "csr.test"]
    assert common_name(leaf) == "csr.test"
    # The requester holds the key: nothing is written next to the certificate.
    assert not Path(f"{out}.key").exists()


def test_cert_issue_with_a_bad_csr_fails_cleanly(cli: Cli) -> None:
    csr_file = cli.tmp / "bad.csr"
    csr_file.write_text(
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    )
    output = cli.fail(
        "cert", "issue", "--app", "demo", "--profile", "tls-server", "--csr", str(csr_file)
    )
    assert output.startswith("Error: ")
    assert "[bad_csr]" in output
    assert cli.certs() == []


def test_cert_issue_for_a_denied_name_shows_the_policy_message(cli: Cli) -> None:
    out = cli.tmp / "evil.pem"
    output = cli.fail(
        "cert", "issue", "--app", "demo", "--profile", "tls-server", "--cn", "evil.com",
        "--san", "evil.com", "--out", str(out),
    )  # fmt: skip

    assert output.startswith("Error: ")
    assert "DNS name 'evil.com' is not allowed by the policy" in output
    assert "Subject CN 'evil.com' is not allowed by the policy" in output
    assert output.rstrip().endswith("[policy_denied]")
    assert not out.exists()
    assert not Path(f"{out}.key").exists()
    assert cli.certs() == []


@pytest.mark.parametrize(
    ("app", "profile", "message"),
    [
        pytest.param(
            "nope", "tls-server", "application 'nope' not found [not_found]", id="fail/app"
        ),
        pytest.param(
            "demo",
            "nope",
            "profile 'nope' is not attached to application 'demo' [not_found]",
            id="fail/profile",
        ),
    ],
)
def test_cert_issue_for_an_unknown_target_fails_cleanly(
    cli: Cli, app: str, profile: str, message: str
) -> None:
    output = cli.fail("cert", "issue", "--app", app, "--profile", profile, "--cn", "x.test")
    assert output == f"Error: {message}\n"


def test_cert_issue_needs_a_csr_or_names(cli: Cli) -> None:
    output = cli.fail("cert", "issue", "--app", "demo", "--profile", "tls-server", code=2)
    assert "give --csr, or --cn and/or --san" in output


def test_cert_issue_with_an_unknown_key_type_fails_cleanly(cli: Cli) -> None:
    output = cli.fail(
        "cert", "issue", "--app", "demo", "--profile", "tls-server", "--cn", "k.test",
        "--key-type", "dsa",
    )  # fmt: skip
    assert "unknown key_type 'dsa'" in output


def test_cert_issue_into_a_missing_directory_issues_nothing(cli: Cli) -> None:
    # A write failing after issuance would lose the server-side key (and print a traceback).
    out = cli.tmp / "no-such-dir" / "x.pem"
    output = cli.fail(
        "cert", "issue", "--app", "demo", "--profile", "tls-server", "--cn", "x.test",
        "--out", str(out),
    code=2)  # fmt: skip
    assert "does not exist" in output
    assert cli.certs() == []


# --- cert list / revoke ---------------------------------------------------------------


def test_cert_list_shows_issued_certificates(cli: Cli) -> None:
    first, serial_a = cli.issue("a.test", cli.tmp / "a.pem")
    second, serial_b = cli.issue("b.test", cli.tmp / "b.pem")

    rows = {r.id: r for r in cli.certs()}
    assert set(rows) == {first, second}
    assert rows[first].serial == serial_a and "a.test" in rows[first].names
    assert rows[second].serial == serial_b and "b.test" in rows[second].names
    assert {r.status for r in rows.values()} == {"active"}

    assert [r.id for r in cli.certs("--search", "b.test")] == [second]
    assert len(cli.certs("--limit", "1")) == 1
    assert cli.certs("--status", "revoked") == []


def test_cert_list_for_an_unknown_app_fails_cleanly(cli: Cli) -> None:
    output = cli.fail("cert", "list", "--app", "nope")
    assert output == "Error: application 'nope' not found [not_found]\n"


def test_cert_revoke_then_list_and_crl(cli: Cli) -> None:
    victim, serial = cli.issue("victim.test", cli.tmp / "victim.pem")
    keeper, _ = cli.issue("keeper.test", cli.tmp / "keeper.pem")

    output = cli.ok(
        "cert", "revoke", "--app", "demo", "--id", str(victim), "--reason", "key_compromise"
    )
    assert output == f"revoked {victim} serial {serial} (key_compromise)\n"

    assert [(r.id, r.status) for r in cli.certs("--status", "revoked")] == [(victim, "revoked")]
    assert [r.id for r in cli.certs("--status", "active")] == [keeper]

    # The issuing CA's CRL was rebuilt at once and lists the serial with the reason.
    issuing = cli.ca_named("issuing")

    async def crl_der(db: Database) -> bytes:
        async with db.transaction(read_only=True) as tx:
            record = await tx.crls.get(issuing.id)
        assert record is not None
        return bytes(record.der)

    crl = x509.load_der_x509_crl(cli.with_db(crl_der))
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise

    output = cli.fail("cert", "revoke", "--app", "demo", "--id", str(victim))
    assert output == "Error: certificate is already revoked [already_revoked]\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(
            ("--reason", "bored"), 1, "unknown revocation reason 'bored'", id="fail/reason"
        ),
        pytest.param(("--app", "nope"), 1, "application 'nope' not found", id="fail/app"),
    ],
)
def test_cert_revoke_errors_are_clean(
    cli: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    cert_id, _ = cli.issue("r.test", cli.tmp / "r.pem")
    opts = {"--app": "demo", "--id": str(cert_id), **dict(zip(args[::2], args[1::2], strict=True))}
    output = cli.fail("cert", "revoke", *[x for kv in opts.items() for x in kv], code=code)

    assert output.startswith("Error: ")
    assert message in output
    assert [r.status for r in cli.certs()] == ["active"]


def test_cert_revoke_an_unknown_id_fails_cleanly(cli: Cli) -> None:
    output = cli.fail("cert", "revoke", "--app", "demo", "--id", str(uuid.UUID(int=1)))
    assert output.startswith("Error: ")
    assert "not found" in output
