"""The CMS (RFC 5652) subset SCEP uses (RFC 8894 §3): SignedData with signed attributes,
EnvelopedData with RSA key transport, and degenerate certs-only SignedData.

asn1crypto describes the structures, cryptography does the arithmetic; cryptography's own
PKCS#7 builders cannot carry SCEP's signed attributes or encrypt with what the client used.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import algos, cms, core, parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.core.scep import FailInfo, ScepFailure


class Undecodable(Exception):
    """Not a PKCS#7 SCEP message at all: answered with HTTP 400, not a CertRep."""


# What asn1crypto raises for damaged input. It parses lazily, so these can surface at any
# access to a field, not only at load(); every reader here catches all of them.
PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,
)


# RFC 8894 §3.5.2: SHA-1 for old devices, SHA-256 (mandatory), SHA-512 (announced); SHA-384
# costs nothing to accept.
DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

# Content-encryption algorithms (asn1crypto names) -> key length. RFC 8894 §3.5.2 names AES
# and DES3; single DES is still what micromdm's scepclient (and old devices) send, so it is
# accepted and answered in kind, but never announced.
CIPHERS: dict[str, int] = {
    "aes128_cbc": 16,
    "aes192_cbc": 24,
    "aes256_cbc": 32,
    "tripledes_3key": 24,
    "des": 8,
}


@dataclass(frozen=True)
class SignedMessage:
    """A parsed SignedData and its (single) signer."""

    signer_info: cms.SignerInfo
    certificates: tuple[x509.Certificate, ...]
    content: bytes | None
    digest_name: str
    attributes: dict[str, core.Asn1Value]  # first value of each signed attribute, by OID

    def attribute(self, oid: str) -> object | None:
        """The attribute's value; None when absent or unreadable (asn1crypto parses values
        lazily, so a damaged one shows only here)."""
        value = self.attributes.get(oid)
        if value is None:
            return None
        try:
            native: object = value.native
        except PARSE_ERRORS:
            return None
        return native

    @property
    def signing_time(self) -> datetime | None:
        value = self.attribute("1.2.840.113549.1.9.5")
        return value if isinstance(value, datetime) else None


def parse_signed(der: bytes) -> SignedMessage:
    """Undecodable unless `der` is a ContentInfo holding SignedData with one signerInfo."""
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise Undecodable("not a PKCS#7 SignedData")
        signed = info["content"]
        signer_infos = signed["signer_infos"]
        if len(signer_infos) != 1:
            raise Undecodable(f"SignedData must have one signerInfo, not {len(signer_infos)}")
        signer_info = signer_infos[0]
        certs = _certificates(signed["certificates"])
        content_value = signed["encap_content_info"]["content"]
        content = None if isinstance(content_value, core.Void) else bytes(content_value.native)
        attributes: dict[str, core.Asn1Value] = {}
        for attr in signer_info["signed_attrs"] or []:
            values = attr["values"]
            if len(values):
                attributes[attr["type"].dotted] = values[0]
        digest_name = signer_info["digest_algorithm"]["algorithm"].native
    except Undecodable:
        raise
    except PARSE_ERRORS as err:
        raise Undecodable(f"malformed PKCS#7 SignedData: {err}") from err
    return SignedMessage(signer_info, certs, content, str(digest_name), attributes)


def _certificates(choices: cms.CertificateSet | None) -> tuple[x509.Certificate, ...]:
    """The certificates cryptography can read. One it cannot is left out rather than making
    the message undecodable: a signer's certificate missing is a badMessageCheck CertRep."""
    certs = []
    for choice in choices or []:
        if choice.name != "certificate":
            continue
        try:
            certs.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        except (ValueError, x509.InvalidVersion):
            continue
    return tuple(certs)


def _digest(name: str) -> hashes.HashAlgorithm:
    algorithm = DIGESTS.get(name)
    if algorithm is None:
        raise ScepFailure(FailInfo.BAD_ALG, f"digest algorithm {name} is not supported")
    return algorithm()


def signer_certificate(message: SignedMessage) -> x509.Certificate:
    """The certificate named by the signerInfo's sid, from the SignedData's certificates."""
    try:
        return _signer_certificate(message)
    except PARSE_ERRORS as err:  # asn1crypto parses lazily
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, f"malformed signerInfo sid: {err}") from err


def _signer_certificate(message: SignedMessage) -> x509.Certificate:
    sid = message.signer_info["sid"]
    for cert in message.certificates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if cert.serial_number == wanted["serial_number"].native and _same_name(
                cert.issuer, wanted["issuer"]
            ):
                return cert
        elif _ski(cert) == sid.chosen.native:
            return cert
    raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the signer's certificate is not included")


def verify(message: SignedMessage, signer: x509.Certificate) -> None:
    """RFC 5652 §5.4/§5.6: the messageDigest attribute covers the content and the signature
    covers the DER of the signed attributes as a SET OF."""
    try:
        _verify(message, signer)
    except UnsupportedAlgorithm as err:  # the signer certificate's key type
        raise ScepFailure(FailInfo.BAD_ALG, f"signer key: {err}") from err
    except PARSE_ERRORS as err:  # asn1crypto parses lazily
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, f"malformed signerInfo: {err}") from err


def _verify(message: SignedMessage, signer: x509.Certificate) -> None:
    digest = _digest(message.digest_name)
    info = message.signer_info
    if not len(info["signed_attrs"]):
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the message has no signed attributes")
    expected = message.attribute("1.2.840.113549.1.9.4")
    hasher = hashes.Hash(digest)
    hasher.update(message.content or b"")
    if expected != hasher.finalize():
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "messageDigest does not match the content")
    signed_attrs = info["signed_attrs"].dump()
    to_verify = b"\x31" + signed_attrs[1:]  # [0] IMPLICIT -> SET OF (RFC 5652 §5.4)
    try:
        algo = info["signature_algorithm"].signature_algo
    except ValueError:  # an OID asn1crypto does not know: certainly not one we take
        algo = info["signature_algorithm"]["algorithm"].dotted
    public_key = signer.public_key()
    if algo != "rsassa_pkcs1v15" or not isinstance(public_key, rsa.RSAPublicKey):
        raise ScepFailure(FailInfo.BAD_ALG, f"signature algorithm {algo} is not supported")
    try:
        public_key.verify(info["signature"].native, to_verify, asym_padding.PKCS1v15(), digest)
    except InvalidSignature as err:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the signature does not verify") from err


def decrypt_enveloped(
    der: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey
) -> tuple[bytes, str]:
    """The plaintext of an EnvelopedData addressed to `cert`, and the content cipher used."""
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "enveloped_data":
            raise ScepFailure(FailInfo.BAD_REQUEST, "pkcsPKIEnvelope is not an EnvelopedData")
        enveloped = info["content"]
        recipient = _our_recipient(enveloped["recipient_infos"], cert)
        eci = enveloped["encrypted_content_info"]
        cipher = eci["content_encryption_algorithm"]["algorithm"].native
        key_algo = recipient["key_encryption_algorithm"]["algorithm"].native
        encrypted_key = recipient["encrypted_key"].native
        ciphertext = _encrypted_content(eci)
    except ScepFailure:
        raise
    except PARSE_ERRORS as err:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"malformed EnvelopedData: {err}") from err
    if cipher not in CIPHERS:
        raise ScepFailure(FailInfo.BAD_ALG, f"content encryption {cipher} is not supported")
    if key_algo == "rsaes_pkcs1v15":
        pad: asym_padding.AsymmetricPadding = asym_padding.PKCS1v15()
    elif key_algo == "rsaes_oaep":
        # RFC 8017 §A.2.1 default parameters: SHA-1 in OAEP is not a collision use.
        sha1 = hashes.SHA1()  # noqa: S303
        pad = asym_padding.OAEP(asym_padding.MGF1(sha1), sha1, None)
    else:
        raise ScepFailure(FailInfo.BAD_ALG, f"key transport {key_algo} is not supported")
    try:
        cek = key.decrypt(encrypted_key, pad)
    except ValueError as err:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the content key does not decrypt") from err
    if len(cek) != CIPHERS[cipher] or not ciphertext:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the content key has the wrong length")
    iv = eci["content_encryption_algorithm"].encryption_iv
    return _crypt(cipher, cek, iv, ciphertext, decrypt=True), cipher


_NO_MATCH: tuple[type[Exception], ...] = (ScepFailure, *PARSE_ERRORS)


def addressed_to(der: bytes) -> Callable[[x509.Certificate], bool]:
    """Whether an EnvelopedData has a KeyTransRecipientInfo for a certificate (RFC 5652
    §6.2.1 rid): how the RA a request was encrypted to is found. Unreadable input matches
    nothing; decrypt_enveloped then says what is wrong with it."""
    infos: cms.RecipientInfos | None = None
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native == "enveloped_data":
            infos = info["content"]["recipient_infos"]
    except PARSE_ERRORS:
        infos = None

    def matches(cert: x509.Certificate) -> bool:
        if infos is None:
            return False
        try:
            _our_recipient(infos, cert)
        except _NO_MATCH:
            return False
        return True

    return matches


def _encrypted_content(eci: cms.EncryptedContentInfo) -> bytes:
    """encryptedContent [0] IMPLICIT OCTET STRING, primitive or BER-constructed: Go's
    pkcs7 (scepclient) sends definite-length chunks, which asn1crypto only reads when the
    length is indefinite, so the TLVs are walked here."""
    for class_, method, tag, body in _tlvs(eci.contents):
        if class_ == 2 and tag == 0:  # context-specific [0]
            return _octets(method, body)
    raise ScepFailure(FailInfo.BAD_REQUEST, "EnvelopedData has no encryptedContent")


def _tlvs(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    offset = 0
    while offset < len(data):
        class_, method, tag, header, body, trailer = parser.parse(data[offset:])
        offset += len(header) + len(body) + len(trailer)
        yield class_, method, tag, body


def _octets(method: int, body: bytes) -> bytes:
    if method == 0:  # primitive
        return bytes(body)
    return b"".join(_octets(m, b) for _c, m, _t, b in _tlvs(body))


def _our_recipient(infos: cms.RecipientInfos, cert: x509.Certificate) -> cms.KeyTransRecipientInfo:
    for info in infos:
        if info.name != "ktri":
            continue
        rid = info.chosen["rid"]
        if rid.name == "issuer_and_serial_number":
            if rid.chosen["serial_number"].native == cert.serial_number and _same_name(
                cert.issuer, rid.chosen["issuer"]
            ):
                return info.chosen
        elif rid.chosen.native == _ski(cert):
            return info.chosen
    raise ScepFailure(
        FailInfo.BAD_MESSAGE_CHECK, "the request is not encrypted to this RA's certificate"
    )


def _crypt(cipher: str, key: bytes, iv: bytes, data: bytes, *, decrypt: bool) -> bytes:
    if cipher.startswith("aes"):
        algorithm: algorithms.AES | TripleDES = algorithms.AES(key)
    else:
        # Single DES is 3DES with K1 = K2 = K3 (EDE collapses to one DES pass).
        algorithm = TripleDES(key * 3 if len(key) == 8 else key)
    block = algorithm.block_size
    engine = Cipher(algorithm, modes.CBC(iv))
    if decrypt:
        if len(data) % (block // 8):
            raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "ciphertext is not whole blocks")
        decryptor = engine.decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(block).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError as err:
            raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the content does not decrypt") from err
    padder = padding.PKCS7(block).padder()
    encryptor = engine.encryptor()
    return encryptor.update(padder.update(data) + padder.finalize()) + encryptor.finalize()


# Answers are built as DER directly (X.690): asn1crypto's dict-driven builders cost more
# CPU than everything else in a CertRep. The fixed pieces are encoded once, by asn1crypto.
def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes((tag, size)) + body
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(raw))) + raw + body


def _oid(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


_OID_DATA = _oid("1.2.840.113549.1.7.1")
_OID_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_OID_ENVELOPED_DATA = _oid("1.2.840.113549.1.7.3")
_ATTR_CONTENT_TYPE = bytes(cms.CMSAttribute({"type": "content_type", "values": ["data"]}).dump())
_OID_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
_OID_SIGNING_TIME = _oid("1.2.840.113549.1.9.5")
_RSA = bytes(algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}).dump())
_RSA_KEY_TRANSPORT = bytes(
    cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()}).dump()
)
_DIGEST_ALGORITHMS = {
    name: bytes(algos.DigestAlgorithm({"algorithm": name}).dump()) for name in DIGESTS
}
_CIPHER_OIDS = {name: bytes(algos.EncryptionAlgorithmId(name).dump()) for name in CIPHERS}


@functools.lru_cache(maxsize=256)
def _issuer_and_serial_der(cert: x509.Certificate) -> bytes:
    return bytes(_issuer_and_serial(cert).dump())


def encrypt_enveloped(content: bytes, recipient: x509.Certificate, cipher: str) -> bytes:
    """EnvelopedData (RFC 5652 §6) of `content` for `recipient` with RSA key transport."""
    public_key = recipient.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ScepFailure(FailInfo.BAD_ALG, "the requester's key cannot receive an RSA envelope")
    cek = os.urandom(CIPHERS[cipher])
    iv = os.urandom(16 if cipher.startswith("aes") else 8)
    encrypted = _crypt(cipher, cek, iv, content, decrypt=False)
    # §6.2.1 KeyTransRecipientInfo v0, rid = issuerAndSerialNumber
    ktri = _tlv(
        0x30,
        b"\x02\x01\x00"
        + _issuer_and_serial_der(recipient)
        + _RSA_KEY_TRANSPORT
        + _tlv(0x04, public_key.encrypt(cek, asym_padding.PKCS1v15())),
    )
    algorithm = _tlv(0x30, _CIPHER_OIDS[cipher] + _tlv(0x04, iv))
    eci = _tlv(0x30, _OID_DATA + algorithm + _tlv(0x80, encrypted))  # [0] IMPLICIT
    enveloped = _tlv(0x30, b"\x02\x01\x00" + _tlv(0x31, ktri) + eci)
    return _tlv(0x30, _OID_ENVELOPED_DATA + _tlv(0xA0, enveloped))


def sign(
    content: bytes | None,
    attributes: list[cms.CMSAttribute],
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    digest_name: str,
) -> bytes:
    """SignedData over `content` (absent when None) with `attributes` plus contentType,
    signingTime and messageDigest, signed by `cert`/`key` (RFC 5652 §5)."""
    digest = _digest(digest_name)
    hasher = hashes.Hash(digest)
    hasher.update(content or b"")
    when = _now().strftime("%y%m%d%H%M%SZ").encode()  # UTCTime (RFC 5652 §11.3)
    encoded = [
        _ATTR_CONTENT_TYPE,
        _tlv(0x30, _OID_SIGNING_TIME + _tlv(0x31, _tlv(0x17, when))),
        _tlv(0x30, _OID_MESSAGE_DIGEST + _tlv(0x31, _tlv(0x04, hasher.finalize()))),
        *(bytes(a.dump()) for a in attributes),
    ]
    # DER: the elements of a SET OF are sorted by their encodings (X.690 §11.6); the
    # signature covers them as a SET OF, the SignerInfo carries them as [0] IMPLICIT.
    signed_attrs = b"".join(sorted(encoded))
    signature = key.sign(_tlv(0x31, signed_attrs), asym_padding.PKCS1v15(), digest)
    digest_algorithm = _DIGEST_ALGORITHMS.get(digest_name) or bytes(
        algos.DigestAlgorithm({"algorithm": digest_name}).dump()
    )
    signer_info = _tlv(
        0x30,
        b"\x02\x01\x01"
        + _issuer_and_serial_der(cert)
        + digest_algorithm
        + _tlv(0xA0, signed_attrs)
        + _RSA
        + _tlv(0x04, signature),
    )
    econtent = _tlv(0xA0, _tlv(0x04, content)) if content is not None else b""
    signed = _tlv(
        0x30,
        b"\x02\x01\x01"
        + _tlv(0x31, digest_algorithm)
        + _tlv(0x30, _OID_DATA + econtent)
        + _tlv(0xA0, cert.public_bytes(serialization.Encoding.DER))
        + _tlv(0x31, signer_info),
    )
    return _tlv(0x30, _OID_SIGNED_DATA + _tlv(0xA0, signed))


def degenerate(certs: list[x509.Certificate], crls: list[bytes] | None = None) -> bytes:
    """A certs-only (or CRL-only) SignedData with no signers (RFC 8894 §3.4, §4.2.1.2).
    The certificates stay in the given order (BER allows it; DER would sort the SET):
    clients that take the first certificate of GetCACert as the RA, or of a CertRep as the
    issued one, find it there."""
    body = b"\x02\x01\x01" + _tlv(0x31, b"") + _tlv(0x30, _OID_DATA)
    if certs:
        body += _tlv(0xA0, b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs))
    if crls:
        body += _tlv(0xA1, b"".join(crls))
    body += _tlv(0x31, b"")
    return _tlv(0x30, _OID_SIGNED_DATA + _tlv(0xA0, _tlv(0x30, body)))


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _issuer_and_serial(cert: x509.Certificate) -> cms.IssuerAndSerialNumber:
    parsed = _asn1_cert(cert)
    return cms.IssuerAndSerialNumber(
        {"issuer": parsed.issuer, "serial_number": parsed.serial_number}
    )


def _same_name(name: x509.Name, asn1_name: asn1_x509.Name) -> bool:
    if name.public_bytes() == asn1_name.dump():
        return True
    try:
        return name == to_x509_name(asn1_name)
    except ValueError:
        return False


def to_x509_name(asn1_name: asn1_x509.Name) -> x509.Name:
    """cryptography only parses Names inside certificates and CSRs; rebuild one from
    asn1crypto's reading (ValueError for attribute values cryptography refuses)."""
    return _parse_name(asn1_name.dump())


def _parse_name(der: bytes) -> x509.Name:
    parsed = asn1_x509.Name.load(der)
    rdns = []
    for rdn in parsed.chosen:
        attrs = []
        for attr in rdn:
            oid = x509.ObjectIdentifier(attr["type"].dotted)
            value = attr["value"].native
            attrs.append(x509.NameAttribute(oid, value if isinstance(value, str) else str(value)))
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)


def _ski(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
