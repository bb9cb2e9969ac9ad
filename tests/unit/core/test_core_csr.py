"""gateway.core.csr: every input form clients send, refusal of garbage and forged CSRs,
and the read-outs (SANs, key type, common name)."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable

import pytest
from core_helpers import build_csr, key
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from gateway.core.csr import (
    SIGNATURE_FAILED,
    common_name,
    csr_sans,
    key_type_label,
    parse_csr,
    san_strings,
)
from gateway.core.errors import BadCSR
from tests.helpers.data import read_bytes, read_text

BEGIN = "-----BEGIN CERTIFICATE REQUEST-----"
END = "-----END CERTIFICATE REQUEST-----"


def _der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def _pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def _wrapped_b64(der: bytes, width: int = 64, newline: str = "\r\n") -> str:
    text = base64.b64encode(der).decode()
    return newline.join(text[i : i + width] for i in range(0, len(text), width)) + newline


FORMS: dict[str, Callable[[x509.CertificateSigningRequest], bytes | str]] = {
    "ok/pem-bytes": _pem,
    "ok/pem-str": lambda c: _pem(c).decode(),
    "ok/pem-new-armour": lambda c: _pem(c).replace(
        b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"
    ),
    "ok/pem-with-leading-text": lambda c: b"Certificate Request:\n  Data: ...\n" + _pem(c),
    "ok/pem-crlf": lambda c: _pem(c).replace(b"\n", b"\r\n"),
    "ok/der": _der,
    "ok/base64-one-line": lambda c: base64.b64encode(_der(c)).decode(),
    "ok/base64-est-line-breaks": lambda c: _wrapped_b64(_der(c)),
    "ok/base64-76-lf-bytes": lambda c: _wrapped_b64(_der(c), 76, "\n").encode(),
    "ok/base64-spaces": lambda c: " ".join(_wrapped_b64(_der(c), 10, " ").split()),
    "ok/base64url-unpadded": lambda c: base64.urlsafe_b64encode(_der(c)).decode().rstrip("="),
    "ok/surrounding-whitespace": lambda c: b"\n\n  " + _pem(c) + b"\n  \n",
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
@pytest.mark.parametrize("key_kind", ["ec", "rsa-2048", "ed25519"])
def test_parse_csr_accepts_every_form(
    form: Callable[[x509.CertificateSigningRequest], bytes | str], key_kind: str
) -> None:
    csr = build_csr(key_kind=key_kind)
    parsed = parse_csr(form(csr))
    assert _der(parsed) == _der(csr)


GARBAGE: dict[str, bytes | str] = {
    "fail/empty": b"",
    "fail/whitespace": "  \n\t ",
    "fail/text": "hello world, this is not a CSR",
    "fail/random-bytes": bytes(range(256)),
    "fail/der-sequence-junk": read_bytes("csr", "garbage", "der-sequence-junk.der"),
    "fail/base64-of-junk": base64.b64encode(b"definitely not DER").decode(),
    "fail/non-ascii": read_text("csr", "garbage", "non-ascii.pem"),
    "fail/pem-unterminated": read_text("csr", "garbage", "pem-unterminated.pem"),
    "fail/pem-wrong-label": read_text("csr", "garbage", "pem-wrong-label.pem"),
    "fail/pem-bad-body": read_text("csr", "garbage", "pem-bad-body.pem"),
    "fail/pem-mismatched-labels": read_text("csr", "garbage", "pem-mismatched-labels.pem"),
    "fail/too-large": "A" * (200 * 1024),
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_parse_csr_refuses_garbage(data: bytes | str) -> None:
    with pytest.raises(BadCSR) as info:
        parse_csr(data)
    assert info.value.code == "bad_csr"
    assert info.value.message


def test_parse_csr_names_the_wrong_pem_type() -> None:
    with pytest.raises(BadCSR, match="CERTIFICATE, not a CERTIFICATE REQUEST"):
        parse_csr(GARBAGE["fail/pem-wrong-label"])


@pytest.mark.parametrize("form", ["der", "pem", "base64"], ids=lambda f: f"fail/{f}")
@pytest.mark.parametrize("key_kind", ["ec", "rsa-2048", "ed25519"])
def test_tampered_signature_is_refused(form: str, key_kind: str) -> None:
    der = bytearray(_der(build_csr(key_kind=key_kind)))
    der[-5] ^= 0x01  # the signature BIT STRING is the last element of the CSR
    data: bytes | str = bytes(der)
    if form == "pem":
        data = f"{BEGIN}\n{_wrapped_b64(bytes(der), 64, chr(10))}{END}\n"
    elif form == "base64":
        data = base64.b64encode(bytes(der))
    with pytest.raises(BadCSR) as info:
        parse_csr(data)
    assert info.value.message == SIGNATURE_FAILED


def test_signed_by_another_key_is_refused() -> None:
    # Proof of possession (RFC 2986 §3): the CSR carries key A but B signed it. Ed25519
    # signatures are always 64 bytes, so B's signature splices in without re-encoding.
    good = build_csr(key_kind="ed25519")
    signature = ed25519.Ed25519PrivateKey.generate().sign(good.tbs_certrequest_bytes)
    forged = _der(good)[:-64] + signature
    with pytest.raises(BadCSR, match="proof of possession"):
        parse_csr(forged)


def test_tampered_subject_is_refused() -> None:
    der = _der(build_csr(cn="aaaa.localhost", sans=()))
    forged = der.replace(b"aaaa.localhost", b"evil.localhost")
    with pytest.raises(BadCSR, match="proof of possession"):
        parse_csr(forged)


def test_truncated_der_is_refused() -> None:
    with pytest.raises(BadCSR, match="not a valid PKCS#10"):
        parse_csr(_der(build_csr())[:-10])


# --- SANs --------------------------------------------------------------------------------


def test_csr_sans_in_order() -> None:
    csr = build_csr(sans=["dns:a.test", "ip:127.0.0.1", "ip:::1", "email:ops@example.com"])
    assert csr_sans(csr) == (
        x509.DNSName("a.test"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.RFC822Name("ops@example.com"),
    )


def test_csr_sans_empty_without_extension() -> None:
    assert csr_sans(build_csr(sans=())) == ()


def test_csr_sans_empty_with_only_other_extensions() -> None:
    assert csr_sans(build_csr(sans=(), usages=["digital_signature"])) == ()


def test_csr_sans_malformed_extension_is_bad_csr() -> None:
    junk = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x04\x02no")
    csr = build_csr(sans=(), extra=[junk])
    with pytest.raises(BadCSR, match="extension request is malformed"):
        csr_sans(csr)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(x509.DNSName("example.com"), "dns:example.com", id="ok/dns"),
        pytest.param(
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), "ip:127.0.0.1", id="ok/ipv4"
        ),
        pytest.param(x509.IPAddress(ipaddress.ip_address("::1")), "ip:::1", id="ok/ipv6"),
        pytest.param(x509.RFC822Name("a@b.c"), "email:a@b.c", id="ok/email"),
        pytest.param(
            x509.UniformResourceIdentifier("https://x.test/p?q=1"),
            "uri:https://x.test/p?q=1",
            id="ok/uri",
        ),
        pytest.param(
            x509.RegisteredID(x509.ObjectIdentifier("1.2.3")), "other:registeredID", id="ok/rid"
        ),
        pytest.param(
            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])),
            "other:directoryName",
            id="ok/dirname",
        ),
        pytest.param(
            x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01a"),
            "other:otherName",
            id="ok/othername",
        ),
    ],
)
def test_san_strings(spec: x509.GeneralName, expected: str) -> None:
    assert san_strings([spec]) == (expected,)


def test_san_strings_empty() -> None:
    assert san_strings([]) == ()


# --- key type and common name ------------------------------------------------------------


LABELS = {
    "ec": "ec-p256",
    "ec-p384": "ec-p384",
    "ec-p521": "ec-p521",
    "ec-k256": "ec-secp256k1",
    "rsa-1024": "rsa-1024",
    "rsa-2048": "rsa-2048",
    "ed25519": "ed25519",
    "ed448": "ed448",
}


@pytest.mark.parametrize(("key_kind", "label"), LABELS.items(), ids=[f"ok/{k}" for k in LABELS])
def test_key_type_label(key_kind: str, label: str) -> None:
    assert key_type_label(key(key_kind).public_key()) == label


def test_key_type_label_rsa_any_size() -> None:
    public = rsa.generate_private_key(65537, 1536).public_key()
    assert key_type_label(public) == "rsa-1536"


def test_key_type_label_of_parsed_csr() -> None:
    assert key_type_label(parse_csr(_pem(build_csr(key_kind="ed25519"))).public_key()) == "ed25519"


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        pytest.param([], None, id="ok/empty"),
        pytest.param([(NameOID.ORGANIZATION_NAME, "Org")], None, id="ok/no-cn"),
        pytest.param([(NameOID.COMMON_NAME, "a.test")], "a.test", id="ok/one"),
        pytest.param(
            [(NameOID.COMMON_NAME, "first"), (NameOID.COMMON_NAME, "last")],
            "last",
            id="ok/last-wins",
        ),
    ],
)
def test_common_name(attrs: list[tuple[x509.ObjectIdentifier, str]], expected: str | None) -> None:
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])
    assert common_name(name) == expected


def test_rsa_pss_signed_csr_verifies() -> None:
    private = key("rsa-2048")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pss.test")]))
        .sign(
            private,
            hashes.SHA256(),
            rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        )
    )
    assert common_name(parse_csr(_der(csr)).subject) == "pss.test"
