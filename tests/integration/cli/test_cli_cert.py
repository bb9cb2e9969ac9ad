"""`certgate cert issue|list|revoke`: server-side keys or a CSR, output files or stdout,
policy denials and unknown targets as clean errors, listing, revocation and the CRL."""

from __future__ import annotations

import itertools
import stat
import uuid
from pathlib import Path

import pytest
from cli_helpers import Cli, certificates_pem, common_name, dns_names, public_der
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from store.db import Database
from tests.helpers.data import data_path

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
    csr_file = data_path("csr", "garbage", "pem-body-truncated.pem")
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
