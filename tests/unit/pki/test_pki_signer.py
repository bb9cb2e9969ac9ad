from __future__ import annotations

import ipaddress
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from gateway.core.errors import CAUnavailable, InvalidInput
from gateway.core.model import CertificateAuthority, KeyType
from gateway.core.ports import Signer
from gateway.core.template import CertificateTemplate, SignedCertificate
from gateway.pki.ca import create_intermediate_ca, create_root_ca
from gateway.pki.keys import generate_private_key, public_key_der
from gateway.pki.kms import Kms
from gateway.pki.signer import CaSigner, encrypt_ca_key, random_serial

if TYPE_CHECKING:
    from conftest import FakeUrls, KmsWorld, MakeCa, Openssl


# --- serials ------------------------------------------------------------------------------


def test_serials_unique_and_long_enough() -> None:
    serials = [random_serial() for _ in range(2000)]
    assert len(set(serials)) == 2000
    for serial in serials:
        # Bit 158 is fixed, so 158 bits (>= 128) are random; 159 bits encode as a
        # 20-octet DER INTEGER with a clear sign bit (RFC 5280 §4.1.2.2 limit).
        assert serial.bit_length() == 159
        assert serial > 0
        assert len(serial.to_bytes(20, "big", signed=True)) == 20
    # Crude randomness check: every low bit position varies across the draws.
    for bit in range(158):
        assert len({(s >> bit) & 1 for s in serials}) == 2


# --- fixtures -----------------------------------------------------------------------------


class Pki:
    """A root + intermediate pair as the CA service would store them."""

    def __init__(
        self,
        root: x509.Certificate,
        inter: x509.Certificate,
        root_ca: CertificateAuthority,
        inter_ca: CertificateAuthority,
    ) -> None:
        self.root, self.inter = root, inter
        self.root_ca, self.inter_ca = root_ca, inter_ca


async def _pki(
    make_ca: MakeCa, urls: FakeUrls, root_type: KeyType, inter_type: KeyType, days: int = 365
) -> Pki:
    root, root_key = create_root_ca("Test Root", root_type, days * 2, organization="certgate")
    root_ca = await make_ca(root, root_key, name="root")
    inter, inter_key = create_intermediate_ca(
        "Test Issuing CA", inter_type, days, root, root_key, issuer_ca_id=root_ca.id, urls=urls
    )
    inter_ca = await make_ca(inter, inter_key, parent=root_ca, name="issuing")
    return Pki(root, inter, root_ca, inter_ca)


def _template(
    *,
    subject: x509.Name | None = None,
    sans: tuple[x509.GeneralName, ...] = (
        x509.DNSName("app.example.com"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ),
    key_type: KeyType = KeyType.EC_P256,
    days: int = 90,
    key_usages: frozenset[str] = frozenset({"digital_signature", "key_encipherment"}),
    ekus: tuple[x509.ObjectIdentifier, ...] = (
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ),
) -> CertificateTemplate:
    now = datetime.now(UTC)
    return CertificateTemplate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example.com")])
        if subject is None
        else subject,
        sans=sans,
        public_key=generate_private_key(key_type).public_key(),
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=days),
        key_usages=key_usages,
        extended_key_usages=ekus,
    )


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(kind)


def _load(signed: SignedCertificate) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(signed.pem.encode())
    assert x509.load_der_x509_certificate(signed.der) == cert
    return cert


# --- issuance -----------------------------------------------------------------------------


def test_casigner_is_a_signer_port(kms: Kms, urls: FakeUrls) -> None:
    signer: Signer = CaSigner(kms, urls)  # mypy checks the Protocol; runtime checks the shape
    assert callable(signer.issue)


@pytest.mark.parametrize(
    ("root_type", "inter_type", "leaf_type"),
    [
        pytest.param(KeyType.EC_P384, KeyType.EC_P256, KeyType.EC_P256, id="ok/ec"),
        pytest.param(KeyType.RSA_3072, KeyType.RSA_2048, KeyType.RSA_2048, id="ok/rsa"),
        pytest.param(KeyType.ED25519, KeyType.ED25519, KeyType.ED25519, id="ok/ed25519"),
        pytest.param(KeyType.RSA_2048, KeyType.EC_P384, KeyType.RSA_2048, id="ok/mixed"),
    ],
)
async def test_chain_verifies_with_openssl(
    kms: Kms,
    urls: FakeUrls,
    make_ca: MakeCa,
    openssl: Openssl,
    root_type: KeyType,
    inter_type: KeyType,
    leaf_type: KeyType,
) -> None:
    pki = await _pki(make_ca, urls, root_type, inter_type)
    signed = await CaSigner(kms, urls).issue(pki.inter_ca, _template(key_type=leaf_type))
    root_pem = openssl.write_cert("root.pem", pki.root)
    inter_pem = openssl.write("inter.pem", pki.inter_ca.certificate_pem)
    leaf_pem = openssl.write("leaf.pem", signed.pem)

    result = openssl.run("verify", "-CAfile", root_pem, "-untrusted", inter_pem, leaf_pem)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{leaf_pem}: OK"

    # RFC 5280 strictness and the TLS server purpose (needs EKU serverAuth + KU).
    strict = openssl.run(
        "verify", "-x509_strict", "-purpose", "sslserver",
        "-CAfile", root_pem, "-untrusted", inter_pem, leaf_pem,
    )  # fmt: skip
    assert strict.returncode == 0, strict.stdout + strict.stderr

    # Without the intermediate the chain must not build: the leaf really is issued by it.
    alone = openssl.run("verify", "-CAfile", root_pem, leaf_pem)
    assert alone.returncode != 0


async def test_leaf_contents(kms: Kms, urls: FakeUrls, make_ca: MakeCa, openssl: Openssl) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    template = _template()
    signed = await CaSigner(kms, urls).issue(pki.inter_ca, template)
    cert = _load(signed)

    assert signed.serial == cert.serial_number
    assert signed.serial_hex == format(cert.serial_number, "x")
    assert cert.serial_number.bit_length() == 159
    assert cert.issuer == pki.inter.subject
    assert cert.subject == template.subject
    assert public_key_der(cert.public_key()) == public_key_der(template.public_key)
    assert cert.not_valid_before_utc == template.not_before.replace(microsecond=0)
    assert cert.not_valid_after_utc == template.not_after.replace(microsecond=0)
    assert (signed.not_before, signed.not_after) == (
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )
    cert.verify_directly_issued_by(pki.inter)

    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature and ku.value.key_encipherment
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.content_commitment)
    eku = _ext(cert, x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = _ext(cert, x509.SubjectAlternativeName)
    assert san.critical is False  # the subject is not empty
    assert san.value.get_values_for_type(x509.DNSName) == ["app.example.com"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert _ext(cert, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(template.public_key)
    )
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == (
        _ext(pki.inter, x509.SubjectKeyIdentifier).value.digest
    )
    cdp = _ext(cert, x509.CRLDistributionPoints).value
    assert [name.value for name in cdp[0].full_name] == [urls.crl_url(pki.inter_ca.id)]
    aia = _ext(cert, x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.CA_ISSUERS, urls.issuer_url(pki.inter_ca.id)),
        (AuthorityInformationAccessOID.OCSP, urls.ocsp_url(pki.inter_ca.id)),
    ]

    # OpenSSL reads the same extensions.
    text = openssl.run("x509", "-in", openssl.write("leaf.pem", signed.pem), "-noout", "-text")
    assert text.returncode == 0, text.stderr
    for expected in (
        "DNS:app.example.com",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "Digital Signature, Key Encipherment",
        f"URI:{urls.crl_url(pki.inter_ca.id)}",
        f"CA Issuers - URI:{urls.issuer_url(pki.inter_ca.id)}",
        f"OCSP - URI:{urls.ocsp_url(pki.inter_ca.id)}",
        "CA:FALSE",
    ):
        assert expected in text.stdout


async def test_empty_subject_makes_san_critical(
    kms: Kms, urls: FakeUrls, make_ca: MakeCa, openssl: Openssl
) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    signed = await CaSigner(kms, urls).issue(pki.inter_ca, _template(subject=x509.Name([])))
    cert = _load(signed)
    assert len(cert.subject) == 0
    assert _ext(cert, x509.SubjectAlternativeName).critical
    root_pem = openssl.write_cert("root.pem", pki.root)
    inter_pem = openssl.write_cert("inter.pem", pki.inter)
    result = openssl.run(
        "verify", "-x509_strict", "-CAfile", root_pem, "-untrusted", inter_pem,
        openssl.write("leaf.pem", signed.pem),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


async def test_optional_extensions_omitted_when_empty(
    kms: Kms, urls: FakeUrls, make_ca: MakeCa
) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    template = _template(sans=(), key_usages=frozenset(), ekus=())
    cert = _load(await CaSigner(kms, urls).issue(pki.inter_ca, template))
    for kind in (x509.KeyUsage, x509.ExtendedKeyUsage, x509.SubjectAlternativeName):
        with pytest.raises(x509.ExtensionNotFound):
            _ext(cert, kind)


async def test_validity_clamped_to_ca(kms: Kms, urls: FakeUrls, make_ca: MakeCa) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256, days=30)
    cert = _load(await CaSigner(kms, urls).issue(pki.inter_ca, _template(days=3650)))
    assert cert.not_valid_after_utc == pki.inter.not_valid_after_utc


async def test_naive_template_times_are_utc(kms: Kms, urls: FakeUrls, make_ca: MakeCa) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    aware = _template()
    naive = replace(
        aware,
        not_before=aware.not_before.replace(tzinfo=None),
        not_after=aware.not_after.replace(tzinfo=None),
    )
    cert = _load(await CaSigner(kms, urls).issue(pki.inter_ca, naive))
    assert cert.not_valid_after_utc == aware.not_after.replace(microsecond=0)


async def test_root_can_issue_directly(
    kms: Kms, urls: FakeUrls, make_ca: MakeCa, openssl: Openssl
) -> None:
    root, root_key = create_root_ca("Root", KeyType.ED25519, 30)
    root_ca = await make_ca(root, root_key)
    signed = await CaSigner(kms, urls).issue(root_ca, _template())
    root_pem = openssl.write_cert("root.pem", root)
    result = openssl.run("verify", "-CAfile", root_pem, openssl.write("leaf.pem", signed.pem))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("usages", "message"),
    [
        pytest.param(frozenset({"frobnicate"}), "unknown key usage", id="fail/unknown"),
        pytest.param(
            frozenset({"digital_signature", "key_cert_sign"}),
            "only allowed in CA",
            id="fail/cert-sign",
        ),
        pytest.param(frozenset({"encipher_only"}), "require key_agreement", id="fail/enc-only"),
    ],
)
async def test_bad_key_usages(
    kms: Kms, urls: FakeUrls, make_ca: MakeCa, usages: frozenset[str], message: str
) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    with pytest.raises(InvalidInput, match=message):
        await CaSigner(kms, urls).issue(pki.inter_ca, _template(key_usages=usages))


async def test_empty_subject_without_sans_refused(
    kms: Kms, urls: FakeUrls, make_ca: MakeCa
) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    with pytest.raises(InvalidInput, match="empty subject"):
        await CaSigner(kms, urls).issue(pki.inter_ca, _template(subject=x509.Name([]), sans=()))


async def test_expired_ca_refused(kms: Kms, urls: FakeUrls, make_ca: MakeCa) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    template = _template()
    late = replace(
        template,
        not_before=pki.inter.not_valid_after_utc + timedelta(days=1),
        not_after=pki.inter.not_valid_after_utc + timedelta(days=90),
    )
    with pytest.raises(CAUnavailable):
        await CaSigner(kms, urls).issue(pki.inter_ca, late)


# --- CA key handling ----------------------------------------------------------------------


class CountingKms(Kms):
    decrypts = 0

    async def decrypt(self, project_id: uuid.UUID, blob: bytes, aad: bytes) -> bytes:
        self.decrypts += 1
        return await super().decrypt(project_id, blob, aad)


async def test_ca_key_decrypted_once_and_recached_on_new_blob(
    kms_world: KmsWorld, urls: FakeUrls, make_ca: MakeCa
) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    counting = CountingKms(kms_world.root, kms_world.loader)  # same root key and project "DB"
    signer = CaSigner(counting, urls)
    for _ in range(3):
        await signer.issue(pki.inter_ca, _template())
    assert counting.decrypts == 1
    key = await signer.load_ca_key(pki.inter_ca)
    assert counting.decrypts == 1
    assert public_key_der(key.public_key()) == public_key_der(pki.inter.public_key())

    # A re-encrypted key (new blob, e.g. after rewrap) is decrypted again.
    reencrypted = replace(
        pki.inter_ca,
        encrypted_key=await encrypt_ca_key(counting, pki.inter_ca.project_id, pki.inter_ca.id, key),
    )
    await signer.issue(reencrypted, _template())
    assert counting.decrypts == 2


async def test_ca_key_blob_moved_to_other_ca_is_refused(
    kms: Kms, urls: FakeUrls, make_ca: MakeCa
) -> None:
    """The AAD binds the encrypted key to its CA row."""
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    moved = replace(pki.inter_ca, encrypted_key=pki.root_ca.encrypted_key)
    with pytest.raises(CAUnavailable, match="cannot be loaded") as info:
        await CaSigner(kms, urls).issue(moved, _template())
    assert info.value.__cause__ is not None  # the private cause is kept for the log


async def test_ca_key_not_matching_certificate_is_refused(
    kms: Kms, urls: FakeUrls, make_ca: MakeCa
) -> None:
    pki = await _pki(make_ca, urls, KeyType.EC_P256, KeyType.EC_P256)
    stranger = generate_private_key(KeyType.EC_P256)
    swapped = replace(
        pki.inter_ca,
        encrypted_key=await encrypt_ca_key(kms, pki.inter_ca.project_id, pki.inter_ca.id, stranger),
    )
    with pytest.raises(CAUnavailable, match="does not match"):
        await CaSigner(kms, urls).issue(swapped, _template())


def test_signer_repr_has_no_key_material(kms: Kms, urls: FakeUrls) -> None:
    assert repr(CaSigner(kms, urls)) == "CaSigner(cached_keys=0)"
