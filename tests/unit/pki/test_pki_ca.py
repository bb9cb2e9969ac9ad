from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from gateway.core.errors import InvalidInput
from gateway.core.model import KeyType
from gateway.pki.ca import (
    certificate_to_pem,
    create_intermediate_ca,
    create_root_ca,
    load_ca_import,
    load_certificates_pem,
)
from gateway.pki.keys import (
    PrivateKey,
    generate_private_key,
    key_type_of,
    private_key_to_pem,
    public_key_der,
    signing_hash,
)
from tests.helpers.data import read_text

if TYPE_CHECKING:
    from conftest import FakeUrls, Openssl


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(kind)


def _craft(
    key: PrivateKey,
    *,
    issuer: tuple[x509.Certificate, PrivateKey] | None = None,
    ca: bool = True,
    key_cert_sign: bool = True,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    cn: str = "crafted",
) -> x509.Certificate:
    """A certificate with exactly the flaws a test needs."""
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_key = key if issuer is None else issuer[1]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name if issuer is None else issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=key_cert_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(signer_key, signing_hash(signer_key))


@pytest.mark.parametrize("key_type", list(KeyType), ids=[f"ok/{k.value}" for k in KeyType])
def test_root_ca_shape(key_type: KeyType) -> None:
    cert, key = create_root_ca("Test Root", key_type, 3650, organization="certgate tests")
    assert key_type_of(key.public_key()) is key_type
    assert public_key_der(cert.public_key()) == public_key_der(key.public_key())
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Test Root"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "certgate tests"
    )
    cert.verify_directly_issued_by(cert)

    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length is None
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign and ku.value.digital_signature
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest

    # RFC 5280 §4.1.2.2: positive, at most 20 octets; ours are >= 128 random bits.
    assert 2**158 <= cert.serial_number < 2**159
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=3650) <= lifetime <= timedelta(days=3650, minutes=10)


def test_root_ca_without_organization() -> None:
    cert, _ = create_root_ca("Only CN", KeyType.EC_P256, 10)
    assert cert.subject.rfc4514_string() == "CN=Only CN"


@pytest.mark.parametrize(
    ("common_name", "days"),
    [("", 10), ("Root", 0), ("x" * 65, 10)],
    ids=["fail/empty-cn", "fail/zero-days", "fail/long-cn"],
)
def test_root_ca_rejects_bad_input(common_name: str, days: int) -> None:
    with pytest.raises(InvalidInput):
        create_root_ca(common_name, KeyType.EC_P256, days)


def test_root_verifies_with_openssl(openssl: Openssl) -> None:
    cert, _ = create_root_ca("Root", KeyType.EC_P384, 30)
    path = openssl.write_cert("root.pem", cert)
    result = openssl.run("verify", "-x509_strict", "-CAfile", path, path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: OK"


def test_intermediate_with_urls(urls: FakeUrls) -> None:
    root, root_key = create_root_ca("Root", KeyType.EC_P384, 3650)
    root_id = uuid.uuid4()
    inter, inter_key = create_intermediate_ca(
        "Issuing CA", KeyType.EC_P256, 1825, root, root_key, issuer_ca_id=root_id, urls=urls
    )
    inter.verify_directly_issued_by(root)
    assert key_type_of(inter_key.public_key()) is KeyType.EC_P256
    bc = _ext(inter, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert _ext(inter, x509.AuthorityKeyIdentifier).value.key_identifier == (
        _ext(root, x509.SubjectKeyIdentifier).value.digest
    )
    cdp = _ext(inter, x509.CRLDistributionPoints).value
    assert [n.value for n in cdp[0].full_name] == [urls.crl_url(root_id)]
    aia = _ext(inter, x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.CA_ISSUERS, urls.issuer_url(root_id))
    ]


def test_intermediate_without_urls_has_no_cdp_or_aia() -> None:
    root, root_key = create_root_ca("Root", KeyType.EC_P256, 3650)
    inter, _ = create_intermediate_ca("Sub", KeyType.EC_P256, 30, root, root_key, path_length=None)
    assert _ext(inter, x509.BasicConstraints).value.path_length is None
    for kind in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            _ext(inter, kind)


def test_intermediate_validity_clamped_to_issuer() -> None:
    root, root_key = create_root_ca("Root", KeyType.EC_P256, 30)
    inter, _ = create_intermediate_ca("Sub", KeyType.EC_P256, 3650, root, root_key)
    assert inter.not_valid_after_utc == root.not_valid_after_utc
    assert inter.not_valid_before_utc >= root.not_valid_before_utc


def test_intermediate_respects_issuer_path_length() -> None:
    root, root_key = create_root_ca("Root", KeyType.EC_P256, 30)
    sub, sub_key = create_intermediate_ca("Sub", KeyType.EC_P256, 30, root, root_key)
    with pytest.raises(InvalidInput, match="pathLenConstraint"):
        create_intermediate_ca("Sub-sub", KeyType.EC_P256, 30, sub, sub_key)


@pytest.mark.parametrize("case", ["wrong-key", "not-ca", "expired"], ids=lambda c: f"fail/{c}")
def test_intermediate_rejects_bad_issuer(case: str) -> None:
    root, root_key = create_root_ca("Root", KeyType.EC_P256, 30)
    issuer_cert, issuer_key = root, root_key
    if case == "wrong-key":
        issuer_key = generate_private_key(KeyType.EC_P256)
    elif case == "not-ca":
        issuer_cert = _craft(root_key, ca=False)
    else:
        past = datetime.now(UTC) - timedelta(days=10)
        issuer_cert = _craft(root_key, not_before=past, not_after=past + timedelta(days=1))
    with pytest.raises(InvalidInput):
        create_intermediate_ca("Sub", KeyType.EC_P256, 30, issuer_cert, issuer_key)


# --- PEM helpers --------------------------------------------------------------------------


def test_certificates_pem_round_trip() -> None:
    a, _ = create_root_ca("A", KeyType.EC_P256, 10)
    b, _ = create_root_ca("B", KeyType.ED25519, 10)
    bundle = certificate_to_pem(a) + certificate_to_pem(b)
    assert bundle.startswith("-----BEGIN CERTIFICATE-----")
    assert load_certificates_pem(bundle) == [a, b]


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "garbage",
        read_text("pki", "cert-body-not-der.pem"),
        read_text("pki", "cert-body-not-base64.pem"),
    ],
    ids=["fail/empty", "fail/text", "fail/not-der", "fail/not-base64"],
)
def test_load_certificates_pem_garbage(pem: str) -> None:
    with pytest.raises(InvalidInput):
        load_certificates_pem(pem)


# --- import -------------------------------------------------------------------------------


Chain = tuple[x509.Certificate, PrivateKey, x509.Certificate, PrivateKey]


@pytest.fixture(scope="module")
def chain() -> Chain:
    root, root_key = create_root_ca("Import Root", KeyType.EC_P384, 365)
    inter, inter_key = create_intermediate_ca("Import Sub", KeyType.RSA_2048, 90, root, root_key)
    return root, root_key, inter, inter_key


def test_import_intermediate_with_chain(chain: Chain) -> None:
    root, _, inter, inter_key = chain
    cert, key, parents = load_ca_import(
        certificate_to_pem(inter),
        private_key_to_pem(inter_key, "pass phrase"),
        passphrase="pass phrase",
        chain_pem=certificate_to_pem(root),
    )
    assert cert == inter
    assert public_key_der(key.public_key()) == public_key_der(inter_key.public_key())
    assert parents == [root]


def test_import_fullchain_in_cert_field(chain: Chain) -> None:
    root, _, inter, inter_key = chain
    cert, _, parents = load_ca_import(
        certificate_to_pem(inter) + certificate_to_pem(root), private_key_to_pem(inter_key)
    )
    assert (cert, parents) == (inter, [root])


def test_import_root_without_chain(chain: Chain) -> None:
    root, root_key, _, _ = chain
    cert, _, parents = load_ca_import(certificate_to_pem(root), private_key_to_pem(root_key))
    assert (cert, parents) == (root, [])


def _import_failure(case: str, chain: Chain) -> tuple[str, str, str | None, str | None]:
    _, root_key, inter, inter_key = chain
    inter_pem, inter_key_pem = certificate_to_pem(inter), private_key_to_pem(inter_key)
    if case == "garbage-cert":
        return read_text("pki", "cert-body-truncated.pem"), inter_key_pem, None, None
    if case == "garbage-key":
        return inter_pem, read_text("pki", "key-body-truncated.pem"), None, None
    if case == "mismatched-key":
        return inter_pem, private_key_to_pem(root_key), None, None
    if case == "wrong-passphrase":
        return inter_pem, private_key_to_pem(inter_key, "right"), "wrong", None
    if case == "not-ca":
        key = generate_private_key(KeyType.EC_P256)
        return certificate_to_pem(_craft(key, ca=False)), private_key_to_pem(key), None, None
    if case == "no-keycertsign":
        key = generate_private_key(KeyType.EC_P256)
        cert = _craft(key, key_cert_sign=False)
        return certificate_to_pem(cert), private_key_to_pem(key), None, None
    if case == "expired":
        key = generate_private_key(KeyType.EC_P256)
        past = datetime.now(UTC) - timedelta(days=30)
        cert = _craft(key, not_before=past, not_after=past + timedelta(days=1))
        return certificate_to_pem(cert), private_key_to_pem(key), None, None
    if case == "unsupported-key":
        key = ec.generate_private_key(ec.SECP521R1())
        return certificate_to_pem(_craft(key)), private_key_to_pem(key), None, None
    if case == "wrong-chain":
        other, _ = create_root_ca("Other Root", KeyType.EC_P256, 30)
        return inter_pem, inter_key_pem, None, certificate_to_pem(other)
    if case == "garbage-chain":
        return inter_pem, inter_key_pem, None, read_text("pki", "cert-unterminated.pem")
    if case == "non-ca-in-chain":
        # A leaf "issuer" that really did sign the certificate, but is not a CA.
        leaf_key = generate_private_key(KeyType.EC_P256)
        fake_issuer = _craft(leaf_key, ca=False, cn="not a ca")
        key = generate_private_key(KeyType.EC_P256)
        cert = _craft(key, issuer=(fake_issuer, leaf_key))
        return (
            certificate_to_pem(cert),
            private_key_to_pem(key),
            None,
            (certificate_to_pem(fake_issuer)),
        )
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param(case, message, id=f"fail/{case}")
        for case, message in [
            ("garbage-cert", "malformed PEM certificate"),
            ("garbage-key", "malformed PEM private key"),
            ("mismatched-key", "does not match"),
            ("wrong-passphrase", "wrong passphrase"),
            ("not-ca", "not a CA"),
            ("no-keycertsign", "keyCertSign"),
            ("expired", "expired"),
            ("unsupported-key", "unsupported CA key type"),
            ("wrong-chain", "chain certificate 1 .*did not sign"),
            ("garbage-chain", "malformed PEM certificate"),
            ("non-ca-in-chain", "chain certificate 1 .* is not a CA"),
        ]
    ],
)
def test_import_failures(chain: Chain, case: str, message: str) -> None:
    cert_pem, key_pem, passphrase, chain_pem = _import_failure(case, chain)
    with pytest.raises(InvalidInput, match=message) as info:
        load_ca_import(cert_pem, key_pem, passphrase, chain_pem)
    assert "PRIVATE KEY" not in info.value.message
