"""`certgate ca list|create|import`: the bootstrapped CAs, roots and intermediates, imported
CAs with plain or encrypted keys, and clean errors that change nothing."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import UUID_RE, Cli
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.core.model import KeyType
from gateway.pki.ca import certificate_to_pem, create_root_ca
from gateway.pki.keys import generate_private_key, private_key_to_pem
from store.db import Database


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
