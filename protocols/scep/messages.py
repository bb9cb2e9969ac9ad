"""SCEP pkiMessages (RFC 8894 §3.2): reading a request's signed attributes and content, and
building the CertRep answer (§3.3.2)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from gateway.core.scep import FailInfo, Outcome, PkiStatus, RaCredentials, ScepFailure
from protocols.scep.cms import (
    DIGESTS,
    PARSE_ERRORS,
    SignedMessage,
    Undecodable,
    degenerate,
    encrypt_enveloped,
    parse_signed,
    sign,
    to_x509_name,
)

# RFC 8894 §3.2.1: the SCEP attributes live under the VeriSign arc 2.16.840.1.113733.1.9.
OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"

MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class PkiMessage:
    """A request whose SCEP attributes could be read, so a CertRep can answer it."""

    signed: SignedMessage
    message_type: int | None  # None when the attribute is not a decimal number
    transaction_id: str
    sender_nonce: bytes
    # The transactionID as received, echoed byte for byte (RFC 8894 §3.2.1.1 says
    # PrintableString; a client that sends another string type gets the same one back).
    transaction_id_value: core.Asn1Value | None = None

    @property
    def digest_name(self) -> str:
        """The digest for the answer: the client's, when we support it (RFC 8894 §3.5.2)."""
        return self.signed.digest_name if self.signed.digest_name in DIGESTS else "sha256"


def decode(der: bytes) -> PkiMessage:
    """Undecodable when there is nothing a CertRep could be addressed to: no SignedData, or
    no transactionID/senderNonce/messageType (RFC 8894 §3.2.1: all three are mandatory)."""
    if len(der) > MAX_MESSAGE_BYTES:
        raise Undecodable(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    signed = parse_signed(der)
    transaction_id = signed.attribute(OID_TRANSACTION_ID)
    nonce = signed.attribute(OID_SENDER_NONCE)
    raw_type = signed.attribute(OID_MESSAGE_TYPE)
    if not isinstance(transaction_id, str) or not transaction_id:
        raise Undecodable("no transactionID attribute")
    if not isinstance(nonce, bytes) or not nonce:
        raise Undecodable("no senderNonce attribute")
    if raw_type is None:
        raise Undecodable("no messageType attribute")
    try:
        message_type: int | None = int(str(raw_type))
    except ValueError:
        message_type = None
    raw_id = signed.attributes[OID_TRANSACTION_ID]
    return PkiMessage(signed, message_type, transaction_id, nonce, raw_id)


class _IssuerAndSubject(core.Sequence):  # type: ignore[misc]
    """RFC 8894 §3.3.3: the CertPoll (GetCertInitial) content."""

    _fields = [("issuer", asn1_x509.Name), ("subject", asn1_x509.Name)]


def issuer_and_subject(der: bytes) -> tuple[x509.Name, x509.Name]:
    try:
        parsed = _IssuerAndSubject.load(der)
        return to_x509_name(parsed["issuer"]), to_x509_name(parsed["subject"])
    except PARSE_ERRORS as err:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"malformed IssuerAndSubject: {err}") from err


def issuer_and_serial(der: bytes) -> tuple[x509.Name, int]:
    """RFC 8894 §3.3.4 (GetCert) and §3.3.5 (GetCRL): IssuerAndSerialNumber."""
    try:
        parsed = cms.IssuerAndSerialNumber.load(der)
        return to_x509_name(parsed["issuer"]), int(parsed["serial_number"].native)
    except PARSE_ERRORS as err:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"malformed IssuerAndSerialNumber: {err}") from err


def _printable(oid: str, value: str) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": oid, "values": [core.PrintableString(value)]})


def _octets(oid: str, value: bytes) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": oid, "values": [core.OctetString(value)]})


def _transaction_id(request: PkiMessage) -> cms.CMSAttribute:
    if request.transaction_id_value is None:
        return _printable(OID_TRANSACTION_ID, request.transaction_id)
    return cms.CMSAttribute({"type": OID_TRANSACTION_ID, "values": [request.transaction_id_value]})


def cert_rep(
    request: PkiMessage,
    outcome: Outcome,
    ra: RaCredentials,
    recipient: x509.Certificate | None,
    cipher: str | None,
) -> bytes:
    """RFC 8894 §3.3.2: signed by the RA with transactionID echoed, recipientNonce = the
    request's senderNonce and a fresh senderNonce; on SUCCESS the certificates (or CRL) go
    in a degenerate SignedData encrypted to the requester with the client's cipher."""
    attributes = [
        _printable(OID_MESSAGE_TYPE, "3"),
        _printable(OID_PKI_STATUS, str(int(outcome.status))),
        _octets(OID_SENDER_NONCE, os.urandom(16)),
        _octets(OID_RECIPIENT_NONCE, request.sender_nonce),
        _transaction_id(request),
    ]
    content = None
    if outcome.status is PkiStatus.SUCCESS:
        if recipient is None or cipher is None:
            raise ScepFailure(FailInfo.BAD_REQUEST, "no requester certificate to encrypt to")
        inner = degenerate(
            list(outcome.certificates), [outcome.crl_der] if outcome.crl_der else None
        )
        content = encrypt_enveloped(inner, recipient, cipher)
    elif outcome.status is PkiStatus.FAILURE:
        fail_info = outcome.fail_info if outcome.fail_info is not None else FailInfo.BAD_REQUEST
        attributes.append(_printable(OID_FAIL_INFO, str(int(fail_info))))
    # §3.3.2.2: FAILURE and PENDING carry no pkcsPKIEnvelope.
    return sign(content, attributes, ra.certificate, ra.key, request.digest_name)
