from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.core.model import KeyType, RevocationReason
from gateway.core.template import CertificateTemplate
from gateway.pki.ca import create_intermediate_ca, create_root_ca
from gateway.pki.crl import RevokedEntry, build_crl
from gateway.pki.keys import generate_private_key
from gateway.pki.kms import Kms
from gateway.pki.signer import CaSigner

if TYPE_CHECKING:
    from conftest import FakeUrls, MakeCa, Openssl


def _template(name: str) -> CertificateTemplate:
    now = datetime.now(UTC)
    return CertificateTemplate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
        sans=(x509.DNSName(name),),
        public_key=generate_private_key(KeyType.EC_P256).public_key(),
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=30),
        key_usages=frozenset({"digital_signature"}),
        extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
    )


@pytest.mark.parametrize(
    "ca_type",
    [KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519],
    ids=lambda k: f"ok/{k}",
)
async def test_crl_accepted_and_enforced_by_openssl(
    kms: Kms, urls: FakeUrls, make_ca: MakeCa, openssl: Openssl, ca_type: KeyType
) -> None:
    root, root_key = create_root_ca("CRL Root", ca_type, 365)
    root_ca = await make_ca(root, root_key)
    inter, inter_key = create_intermediate_ca(
        "CRL Issuing", ca_type, 180, root, root_key, issuer_ca_id=root_ca.id, urls=urls
    )
    inter_ca = await make_ca(inter, inter_key, parent=root_ca)
    signer = CaSigner(kms, urls)
    leaves = [await signer.issue(inter_ca, _template(f"host{i}.test")) for i in range(3)]

    now = datetime.now(UTC)
    revoked = [
        RevokedEntry(leaves[0].serial, now - timedelta(hours=1), RevocationReason.KEY_COMPROMISE),
        RevokedEntry(leaves[1].serial, now - timedelta(minutes=5), RevocationReason.UNSPECIFIED),
    ]
    # The CRL service signs through the signer's cached key path.
    ca_key = await signer.load_ca_key(inter_ca)
    der = build_crl(inter, ca_key, 42, revoked, now, now + timedelta(days=7))

    crl_der = openssl.write("ca.crl", der)
    root_pem = openssl.write_cert("root.pem", root)
    inter_pem = openssl.write_cert("inter.pem", inter)
    to_pem = openssl.run("crl", "-inform", "DER", "-in", crl_der, "-out", "crl.pem")
    assert to_pem.returncode == 0, to_pem.stderr

    # 1. The signature verifies under the issuing CA (and only it).
    verified = openssl.run("crl", "-inform", "DER", "-in", crl_der, "-CAfile", inter_pem, "-noout")
    assert verified.returncode == 0, verified.stderr
    assert "verify OK" in verified.stdout + verified.stderr
    wrong_ca = openssl.run("crl", "-inform", "DER", "-in", crl_der, "-CAfile", root_pem, "-noout")
    assert wrong_ca.returncode != 0
    assert "verify OK" not in wrong_ca.stdout + wrong_ca.stderr

    # 2. Path validation with CRL checking: revoked leaves fail, the third passes.
    for index, signed in enumerate(leaves):
        leaf_pem = openssl.write(f"leaf{index}.pem", signed.pem)
        result = openssl.run(
            "verify", "-crl_check", "-CAfile", root_pem, "-untrusted", inter_pem,
            "-CRLfile", "crl.pem", leaf_pem,
        )  # fmt: skip
        output = result.stdout + result.stderr
        if index < 2:
            assert result.returncode != 0, output
            assert "certificate revoked" in output
        else:
            assert result.returncode == 0, output
            assert output.strip() == f"{leaf_pem}: OK"

    # 3. The text form shows number, entries and reasons.
    text = openssl.run("crl", "-inform", "DER", "-in", crl_der, "-noout", "-text")
    assert text.returncode == 0, text.stderr
    assert re.search(r"X509v3 CRL Number:\s*\n\s*42\b", text.stdout)
    assert "Version 2" in text.stdout
    assert "X509v3 Authority Key Identifier" in text.stdout
    for signed in leaves[:2]:
        assert format(signed.serial, "X") in text.stdout.replace(":", "")
    assert format(leaves[2].serial, "X") not in text.stdout
    assert text.stdout.count("X509v3 CRL Reason Code") == 1  # none for "unspecified"
    assert "Key Compromise" in text.stdout


async def test_crl_structure(kms: Kms, urls: FakeUrls, make_ca: MakeCa) -> None:
    root, root_key = create_root_ca("Root", KeyType.EC_P256, 30)
    this_update = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    entries = [
        RevokedEntry(1234, datetime(2029, 12, 31, tzinfo=UTC), RevocationReason.SUPERSEDED),
        RevokedEntry(5678, datetime(2029, 12, 30, tzinfo=UTC), RevocationReason.UNSPECIFIED),
    ]
    crl = x509.load_der_x509_crl(
        build_crl(root, root_key, 7, entries, this_update, this_update + timedelta(days=1))
    )
    assert crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    assert crl.issuer == root.subject
    assert crl.last_update_utc == this_update
    assert crl.next_update_utc == this_update + timedelta(days=1)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    assert (number.critical, number.value.crl_number) == (False, 7)
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.critical is False and aki.value.key_identifier == ski.digest

    superseded = crl.get_revoked_certificate_by_serial_number(1234)
    assert superseded is not None
    assert superseded.revocation_date_utc == datetime(2029, 12, 31, tzinfo=UTC)
    assert superseded.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.superseded
    )
    unspecified = crl.get_revoked_certificate_by_serial_number(5678)
    assert unspecified is not None
    assert len(unspecified.extensions) == 0  # RFC 5280 §5.3.1


@pytest.mark.parametrize(
    "reason",
    [r for r in RevocationReason if r is not RevocationReason.UNSPECIFIED],
    ids=lambda r: f"ok/{r}",
)
def test_every_reason_maps_to_its_code(reason: RevocationReason) -> None:
    root, root_key = create_root_ca("Root", KeyType.ED25519, 30)
    now = datetime.now(UTC)
    crl = x509.load_der_x509_crl(
        build_crl(root, root_key, 1, [RevokedEntry(99, now, reason)], now, now + timedelta(hours=1))
    )
    entry = crl.get_revoked_certificate_by_serial_number(99)
    assert entry is not None
    flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert flag.name == reason.value
    # The DER ENUMERATED carries RFC 5280 §5.3.1's code.
    ext_der = entry.extensions.get_extension_for_class(x509.CRLReason).value.public_bytes()
    assert ext_der == bytes([0x0A, 0x01, reason.code])


def test_empty_crl_and_naive_times() -> None:
    root, root_key = create_root_ca("Root", KeyType.RSA_2048, 30)
    naive = datetime(2031, 5, 1, 8, 30)
    crl = x509.load_der_x509_crl(build_crl(root, root_key, 0, [], naive, naive + timedelta(days=1)))
    assert len(crl) == 0
    assert crl.last_update_utc == naive.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "delta", "wrong_key", "message"),
    [
        pytest.param(-1, timedelta(days=1), False, "non-negative", id="fail/negative-number"),
        pytest.param(2**160, timedelta(days=1), False, "20 octets", id="fail/huge-number"),
        pytest.param(1, timedelta(0), False, "after this_update", id="fail/no-window"),
        pytest.param(1, timedelta(days=1), True, "does not match", id="fail/wrong-key"),
    ],
)
def test_build_crl_rejects(number: int, delta: timedelta, wrong_key: bool, message: str) -> None:
    root, root_key = create_root_ca("Root", KeyType.EC_P256, 30)
    key = generate_private_key(KeyType.EC_P256) if wrong_key else root_key
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match=message):
        build_crl(root, key, number, [], now, now + delta)
