"""A small SCEP (RFC 8894) client for tests: builds pkiMessages with any cipher, digest,
message type and signingTime, and reads CertReps. Real-client interop is the e2e tests'
job (scepclient); this one reaches the corners scepclient never sends."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from protocols.scep import cms as scep_cms
from protocols.scep.messages import (
    OID_FAIL_INFO,
    OID_MESSAGE_TYPE,
    OID_PKI_STATUS,
    OID_RECIPIENT_NONCE,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, bits)


def make_csr(
    key: rsa.RSAPrivateKey,
    cn: str,
    challenge: str | None = None,
    sans: tuple[str, ...] = (),
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    if challenge is not None:
        builder = builder.add_attribute(
            x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode()
        )
    return builder.sign(key, hashes.SHA256())


def self_signed(key: rsa.RSAPrivateKey, cn: str, days: int = 1) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


def _asn1_name(name: x509.Name) -> asn1_x509.Name:
    return asn1_x509.Name.load(name.public_bytes())


def issuer_and_serial(issuer: x509.Name, serial: int) -> bytes:
    value = cms.IssuerAndSerialNumber({"issuer": _asn1_name(issuer), "serial_number": serial})
    return bytes(value.dump())


def issuer_and_subject(issuer: x509.Name, subject: x509.Name) -> bytes:
    """RFC 8894 §3.3.3 IssuerAndSubject: SEQUENCE { issuer Name, subject Name }."""
    body = issuer.public_bytes() + subject.public_bytes()
    return b"\x30" + _der_len(len(body)) + body


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


@dataclass
class Requester:
    """A device: its key and the certificate it signs with (self-signed until enrolled)."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @classmethod
    def new(cls, cn: str = "device", bits: int = 2048) -> Requester:
        key = rsa_key(bits)
        return cls(key, self_signed(key, cn))


@dataclass
class Reply:
    status: int
    fail_info: int | None
    transaction_id: str
    recipient_nonce: bytes
    sender_nonce: bytes
    signer: x509.Certificate
    certificates: list[x509.Certificate] = field(default_factory=list)
    crls: list[bytes] = field(default_factory=list)
    cipher: str | None = None
    digest: str = ""


def pki_message(
    requester: Requester,
    ra_cert: x509.Certificate,
    message_type: int,
    content: bytes,
    *,
    transaction_id: str = "tx-1",
    nonce: bytes | None = None,
    cipher: str = "aes256_cbc",
    digest: str = "sha256",
    signing_time: datetime | None = None,
    extra: list[cms.CMSAttribute] | None = None,
    omit: tuple[str, ...] = (),
    tamper: bool = False,
) -> bytes:
    envelope = scep_cms.encrypt_enveloped(content, ra_cert, cipher)
    attrs = {
        OID_MESSAGE_TYPE: core.PrintableString(str(message_type)),
        OID_TRANSACTION_ID: core.PrintableString(transaction_id),
        OID_SENDER_NONCE: core.OctetString(nonce or os.urandom(16)),
    }
    attributes = [
        cms.CMSAttribute({"type": oid, "values": [value]})
        for oid, value in attrs.items()
        if oid not in omit
    ]
    der = scep_cms.sign(
        envelope, [*attributes, *(extra or [])], requester.cert, requester.key, digest
    )
    if signing_time is not None or tamper:
        der = _rewrite(der, signing_time, tamper, requester, digest)
    return der


def _rewrite(
    der: bytes,
    signing_time: datetime | None,
    tamper: bool,
    requester: Requester,
    digest: str,
) -> bytes:
    """Re-sign with another signingTime, or flip a content byte after signing."""
    info = cms.ContentInfo.load(der)
    signed = info["content"]
    signer_info = signed["signer_infos"][0]
    if signing_time is not None:
        attrs = [a for a in signer_info["signed_attrs"] if a["type"].native != "signing_time"]
        attrs.append(
            cms.CMSAttribute(
                {"type": "signing_time", "values": [cms.Time(name="utc_time", value=signing_time)]}
            )
        )
        signed_attrs = cms.CMSAttributes(sorted(attrs, key=lambda a: a.dump()))
        algorithm = scep_cms.DIGESTS[digest]()
        signer_info["signed_attrs"] = signed_attrs
        signer_info["signature"] = requester.key.sign(
            signed_attrs.dump(force=True), padding.PKCS1v15(), algorithm
        )
    if tamper:
        content = bytearray(signed["encap_content_info"]["content"].native)
        content[-1] ^= 1
        signed["encap_content_info"]["content"] = bytes(content)
    return bytes(
        cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump(force=True)
    )


def read_reply(der: bytes, requester: Requester) -> Reply:
    message = scep_cms.parse_signed(der)
    signer = scep_cms.signer_certificate(message)
    scep_cms.verify(message, signer)
    status = int(str(message.attribute(OID_PKI_STATUS)))
    fail = message.attribute(OID_FAIL_INFO)
    reply = Reply(
        status=status,
        fail_info=int(str(fail)) if fail is not None else None,
        transaction_id=str(message.attribute(OID_TRANSACTION_ID)),
        recipient_nonce=bytes(message.attribute(OID_RECIPIENT_NONCE) or b""),  # type: ignore[arg-type]
        sender_nonce=bytes(message.attribute(OID_SENDER_NONCE) or b""),  # type: ignore[arg-type]
        signer=signer,
        digest=message.digest_name,
    )
    if status == 0:
        assert message.content is not None
        inner, reply.cipher = scep_cms.decrypt_enveloped(
            message.content, requester.cert, requester.key
        )
        certs_only = cms.ContentInfo.load(inner)["content"]
        reply.certificates = [
            x509.load_der_x509_certificate(c.chosen.dump())
            for c in (certs_only["certificates"] or [])
        ]
        reply.crls = [bytes(c.chosen.dump()) for c in (certs_only["crls"] or [])]
    else:
        assert message.content is None
    return reply


def ca_certs(der: bytes) -> list[x509.Certificate]:
    signed = cms.ContentInfo.load(der)["content"]
    return [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]


def b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


def csr_der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def attr(oid: str, value: Any) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": oid, "values": [value]})
