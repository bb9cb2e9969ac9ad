"""PKCS#10 certification requests (RFC 2986): parsing every form clients send, and the
few read-outs the rest of the core needs (SANs, key type, common name)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from gateway.core.errors import BadCSR

# RFC 7468 §7 names the label "CERTIFICATE REQUEST"; "NEW CERTIFICATE REQUEST" is the
# older Netscape/Microsoft spelling that certreq and some appliances still emit.
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ((?:NEW )?CERTIFICATE REQUEST)-----(.*?)-----END \1-----", re.DOTALL
)
_ANY_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=_\-\s]+")
_MAX_CSR_BYTES = 64 * 1024  # a CSR is a few KB; refuse to base64-decode megabytes

SIGNATURE_FAILED = "CSR signature does not verify (proof of possession failed)"


def parse_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse PEM, DER, or bare base64 of DER (RFC 7030 §4.2.1: EST bodies are base64 with
    line breaks), and verify the self-signature that proves possession of the key
    (RFC 2986 §3)."""
    if isinstance(data, str):
        try:
            raw = data.encode("ascii")
        except UnicodeEncodeError:
            raise BadCSR(
                "CSR text contains non-ASCII characters; send PEM, DER or base64"
            ) from None
    else:
        raw = bytes(data)
    if not raw.strip():
        raise BadCSR("CSR is empty")
    if len(raw) > _MAX_CSR_BYTES:
        raise BadCSR(f"CSR is too large ({len(raw)} bytes; at most {_MAX_CSR_BYTES})")
    csr = _load(raw)
    _check_structure(csr)
    try:
        valid = csr.is_signature_valid
    except Exception as err:  # unsupported signature/key algorithm surfaces here
        raise BadCSR(f"CSR signature cannot be checked: {err}") from err
    if not valid:
        raise BadCSR(SIGNATURE_FAILED)
    return csr


def _load(raw: bytes) -> x509.CertificateSigningRequest:
    # DER is tried untouched first: stripping "whitespace" would eat signature bytes.
    if raw[:1] == b"\x30":  # DER SEQUENCE tag (X.690 §8.9.2)
        try:
            return x509.load_der_x509_csr(raw)
        except ValueError as err:
            if not _BASE64_TEXT.fullmatch(raw):  # base64 can start with "0" too
                raise BadCSR(
                    "CSR is not a valid PKCS#10 certification request (the DER does not parse)"
                ) from err
    text = raw.strip()
    if b"-----BEGIN" in text:
        return _der_to_csr(_pem_body(text), "PEM")
    return _der_to_csr(_b64decode(text), "base64")


def _pem_body(raw: bytes) -> bytes:
    match = _PEM_BLOCK.search(raw)
    if match is None:
        label = _ANY_PEM_LABEL.search(raw)
        found = label.group(1).decode() if label else "an unterminated block"
        raise BadCSR(f"PEM input holds {found}, not a CERTIFICATE REQUEST")
    body = match.group(2)
    # RFC 1421-style headers ("Proc-Type: …") never occur in CSRs; refuse rather than guess.
    if b":" in body:
        raise BadCSR("PEM CERTIFICATE REQUEST block has headers; send it without them")
    return _b64decode(body)


def _b64decode(text: bytes) -> bytes:
    compact = b"".join(text.split())
    if not compact:
        raise BadCSR("CSR is empty")
    # Some clients use the URL-safe alphabet (RFC 4648 §5) and drop the padding.
    if b"-" in compact or b"_" in compact:
        compact = compact.replace(b"-", b"+").replace(b"_", b"/")
    compact += b"=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadCSR("CSR is neither PEM, DER nor base64-encoded DER") from err


def _der_to_csr(der: bytes, form: str) -> x509.CertificateSigningRequest:
    try:
        return x509.load_der_x509_csr(der)
    except ValueError as err:
        raise BadCSR(
            f"CSR is not a valid PKCS#10 certification request ({form} decoded, "
            "but the DER inside does not parse)"
        ) from err


def _check_structure(csr: x509.CertificateSigningRequest) -> None:
    """cryptography parses some parts lazily; touch them now so a malformed CSR fails here
    with BadCSR instead of deep inside the policy engine."""
    try:
        _ = csr.subject
        csr.public_key()
    except Exception as err:
        raise BadCSR(f"CSR subject or public key cannot be read: {err}") from err


def csr_extensions(csr: x509.CertificateSigningRequest) -> x509.Extensions:
    """The extensionRequest attribute (RFC 2986 §4.1, PKCS#9 §5.4.2); BadCSR if malformed."""
    try:
        return csr.extensions
    except Exception as err:  # ValueError, DuplicateExtension, unparseable values
        raise BadCSR(f"CSR extension request is malformed: {err}") from err


def csr_sans(csr: x509.CertificateSigningRequest) -> tuple[x509.GeneralName, ...]:
    """Requested subjectAltName entries (RFC 5280 §4.2.1.6); empty when none are asked."""
    try:
        ext = csr_extensions(csr).get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(ext.value)


# RFC 5280 §4.2.1.6 GeneralName CHOICE names, for the types we do not spell out.
_OTHER_SAN_TYPES: dict[type[x509.GeneralName], str] = {
    x509.OtherName: "otherName",
    x509.DirectoryName: "directoryName",
    x509.RegisteredID: "registeredID",
}


def san_type(name: x509.GeneralName) -> str:
    """The SAN's type: dns, ip, email, uri, or other:<RFC 5280 §4.2.1.6 CHOICE name>."""
    if isinstance(name, x509.DNSName):
        return "dns"
    if isinstance(name, x509.IPAddress):
        return "ip"
    if isinstance(name, x509.RFC822Name):
        return "email"
    if isinstance(name, x509.UniformResourceIdentifier):
        return "uri"
    return "other:" + _OTHER_SAN_TYPES.get(type(name), type(name).__name__)


def san_string(name: x509.GeneralName) -> str:
    """Typed string for one SAN: "dns:example.com", "ip:::1", "other:otherName", …"""
    kind = san_type(name)
    if kind.startswith("other:"):
        return kind
    return f"{kind}:{name.value}"


def san_strings(sans: Iterable[x509.GeneralName]) -> tuple[str, ...]:
    return tuple(san_string(name) for name in sans)


_CURVE_LABELS = {"secp256r1": "ec-p256", "secp384r1": "ec-p384", "secp521r1": "ec-p521"}


def key_type_label(public_key: CertificatePublicKeyTypes) -> str:
    """Label such as ec-p256, rsa-3072, ed25519 (model.KeyType's values, and more)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        return _CURVE_LABELS.get(curve, f"ec-{curve}")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"dsa-{public_key.key_size}"
    if isinstance(public_key, x25519.X25519PublicKey):
        return "x25519"
    if isinstance(public_key, x448.X448PublicKey):
        return "x448"
    return "unknown"


def common_name(name: x509.Name) -> str | None:
    """The subject's CN, or None. With several CNs the last (most specific RDN, as NSS
    reads it) wins; the policy engine checks every one of them anyway."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return None
    value = values[-1].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
