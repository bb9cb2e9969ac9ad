"""protocols.scep.cms and .messages: round trips, BER input, and OpenSSL reading what we
write (an implementation that is not ours)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core.scep import FailInfo, Outcome, PkiStatus, RaCredentials, ScepFailure
from protocols.scep import cms as scep_cms
from protocols.scep.cms import Undecodable
from protocols.scep.messages import (
    OID_TRANSACTION_ID,
    cert_rep,
    decode,
    issuer_and_serial,
    issuer_and_subject,
)
from tests.helpers import scepclient as sc

CIPHERS = ["aes128_cbc", "aes192_cbc", "aes256_cbc", "tripledes_3key", "des"]


@pytest.fixture(scope="module")
def ra() -> sc.Requester:
    return sc.Requester.new("RA")


@pytest.mark.parametrize("cipher", [pytest.param(c, id=f"ok/{c}") for c in CIPHERS])
def test_envelope_round_trip(ra: sc.Requester, cipher: str) -> None:
    der = scep_cms.encrypt_enveloped(b"x" * 100, ra.cert, cipher)
    assert scep_cms.decrypt_enveloped(der, ra.cert, ra.key) == (b"x" * 100, cipher)


def test_envelope_for_someone_else_is_bad_message_check(ra: sc.Requester) -> None:
    other = sc.Requester.new("other")
    der = scep_cms.encrypt_enveloped(b"data", other.cert, "aes128_cbc")
    with pytest.raises(ScepFailure) as failure:
        scep_cms.decrypt_enveloped(der, ra.cert, ra.key)
    assert failure.value.fail_info is FailInfo.BAD_MESSAGE_CHECK


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + sc._der_len(len(body)) + body


def test_envelope_with_ber_chunked_content(ra: sc.Requester) -> None:
    """Go's pkcs7 (scepclient) sends encryptedContent as definite-length BER chunks."""
    der = scep_cms.encrypt_enveloped(b"y" * 40, ra.cert, "aes128_cbc")
    enveloped = cms.ContentInfo.load(der)["content"]
    eci = enveloped["encrypted_content_info"]
    ciphertext = eci["encrypted_content"].native
    chunked = _tlv(0xA0, _tlv(0x04, ciphertext[:16]) + _tlv(0x04, ciphertext[16:]))
    eci_der = _tlv(
        0x30, eci["content_type"].dump() + eci["content_encryption_algorithm"].dump() + chunked
    )
    body = enveloped["version"].dump() + enveloped["recipient_infos"].dump() + eci_der
    content_type = cms.ContentType("enveloped_data").dump()
    rebuilt = _tlv(0x30, content_type + _tlv(0xA0, _tlv(0x30, body)))
    assert scep_cms.decrypt_enveloped(rebuilt, ra.cert, ra.key)[0] == b"y" * 40


def test_degenerate_keeps_order(ra: sc.Requester) -> None:
    certs = [sc.self_signed(ra.key, name) for name in ("zz", "aa", "mm")]
    assert sc.ca_certs(scep_cms.degenerate(certs)) == certs


def _message(ra: sc.Requester, device: sc.Requester) -> bytes:
    csr = sc.make_csr(device.key, "m.test", "challenge-1")
    return sc.pki_message(device, ra.cert, 19, sc.csr_der(csr), transaction_id="tid-9")


def test_decode_reads_scep_attributes(ra: sc.Requester) -> None:
    device = sc.Requester.new("device")
    message = decode(_message(ra, device))
    assert (message.message_type, message.transaction_id) == (19, "tid-9")
    assert len(message.sender_nonce) == 16
    signer = scep_cms.signer_certificate(message.signed)
    assert signer == device.cert
    scep_cms.verify(message.signed, signer)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="fail/empty"),
        pytest.param(b"\x30\x03\x02\x01\x01", id="fail/not-content-info"),
        pytest.param(b"\x04" * 300, id="fail/garbage"),
    ],
)
def test_decode_refuses_non_messages(data: bytes) -> None:
    with pytest.raises(Undecodable):
        decode(data)


def test_issuer_and_serial_and_subject_parse() -> None:
    name = x509.Name.from_rfc4514_string("CN=Issuing,O=certgate")
    subject = x509.Name.from_rfc4514_string("CN=device.test,C=US")
    assert issuer_and_serial(sc.issuer_and_serial(name, 77)) == (name, 77)
    assert issuer_and_subject(sc.issuer_and_subject(name, subject)) == (name, subject)
    with pytest.raises(ScepFailure):
        issuer_and_serial(b"\x30\x00")


def _openssl(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    "cipher", [pytest.param(c, id=f"ok/{c}") for c in ("aes256_cbc", "tripledes_3key")]
)
def test_openssl_reads_our_cert_rep(ra: sc.Requester, tmp_path: Path, cipher: str) -> None:
    device = sc.Requester.new("device")
    request = decode(_message(ra, device))
    issued = sc.self_signed(device.key, "issued")
    credentials = RaCredentials(ra.cert, ra.key, ())
    der = cert_rep(request, Outcome.success(issued), credentials, device.cert, cipher)
    (tmp_path / "rep.der").write_bytes(der)
    (tmp_path / "ra.pem").write_bytes(ra.cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "dev.pem").write_bytes(device.cert.public_bytes(serialization.Encoding.PEM))
    key_pem = device.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "dev.key").write_bytes(key_pem)
    out = _openssl(
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        "rep.der",
        "-CAfile",
        "ra.pem",
        "-out",
        "env.der",
        "-binary",
        cwd=tmp_path,
    )
    assert "Verification successful" in out
    _openssl(
        "cms",
        "-decrypt",
        "-inform",
        "DER",
        "-in",
        "env.der",
        "-recip",
        "dev.pem",
        "-inkey",
        "dev.key",
        "-out",
        "certs.der",
        "-binary",
        cwd=tmp_path,
    )
    text = _openssl("pkcs7", "-inform", "DER", "-in", "certs.der", "-print_certs", cwd=tmp_path)
    assert "subject=CN = issued" in text or "subject=CN=issued" in text


def test_failure_cert_rep_has_fail_info_and_no_envelope(ra: sc.Requester) -> None:
    device = sc.Requester.new("device")
    request = decode(_message(ra, device))
    credentials = RaCredentials(ra.cert, ra.key, ())
    outcome = Outcome.failure(FailInfo.BAD_TIME, "clock")
    reply = sc.read_reply(cert_rep(request, outcome, credentials, None, None), device)
    assert (reply.status, reply.fail_info) == (int(PkiStatus.FAILURE), int(FailInfo.BAD_TIME))
    assert reply.recipient_nonce == request.sender_nonce and reply.transaction_id == "tid-9"


def test_transaction_id_echoed_as_sent(ra: sc.Requester) -> None:
    """RFC 8894 §3.3.2: the CertRep carries the request's transactionID; one sent as a
    UTF8String (not the RFC's PrintableString) comes back unchanged, not re-encoded."""
    device = sc.Requester.new("device")
    csr = sc.make_csr(device.key, "m.test", "challenge-1")
    der = sc.pki_message(
        device,
        ra.cert,
        19,
        sc.csr_der(csr),
        omit=(OID_TRANSACTION_ID,),
        extra=[sc.attr(OID_TRANSACTION_ID, core.UTF8String("智-42"))],
    )
    request = decode(der)
    assert request.transaction_id == "智-42"
    outcome = Outcome.failure(FailInfo.BAD_REQUEST, "no")
    reply = cert_rep(request, outcome, RaCredentials(ra.cert, ra.key, ()), None, None)
    sent = scep_cms.parse_signed(der).attributes[OID_TRANSACTION_ID].dump()
    assert scep_cms.parse_signed(reply).attributes[OID_TRANSACTION_ID].dump() == sent
