"""SCEP wire behaviour through an in-process gateway: operations, ciphers and digests, GET
and POST, both URL forms, every failInfo and the HTTP 400 for undecodable input."""

from __future__ import annotations

import base64
import logging
import os
import random
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.core.scep import FailInfo
from protocols.scep import cms as scep_cms
from tests.helpers import scepclient as sc
from tests.helpers.data import read_bytes
from tests.integration.scep.conftest import SCEP_PATH, STATIC

pytestmark = pytest.mark.asyncio

# Damaged copies of one message per run; FZSEED picks another sequence (a longer hunt:
# FZSEED=n with FUZZ_ROUNDS raised).
FUZZ_ROUNDS = 150


async def test_ok_get_ca_caps(scep) -> None:
    resp = await scep.client.get(SCEP_PATH + "?operation=GetCACaps")
    assert resp.status == 200 and resp.content_type == "text/plain"
    # RFC 8894 §3.5.2: one capability per line.
    lines = (await resp.text()).strip("\n").split("\n")
    assert all(line and line == line.strip() for line in lines), lines
    wanted = {"POSTPKIOperation", "SHA-256", "SHA-512", "AES", "DES3", "SCEPStandard", "Renewal"}
    assert wanted <= set(lines)
    for url in ("/profiles/{legacy}/scep", SCEP_PATH + "/cgi-bin/pkiclient.exe"):
        legacy = scep.bootstrap["legacy_profile_id"]
        resp = await scep.client.get(url.format(legacy=legacy) + "?operation=GetCACaps")
        assert resp.status == 200 and wanted <= set((await resp.text()).split("\n"))


async def test_ok_get_ca_cert_ra_then_chain(scep) -> None:
    ra, *chain = await scep.ca_certs()
    assert len(chain) == 2  # issuing CA, root
    usage = ra.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    ra.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(chain[1])
    for path in ("/pkiclient.exe", "/cgi-bin/pkiclient.exe"):
        assert (await scep.ca_certs(SCEP_PATH + path))[0] == ra


@pytest.mark.parametrize(
    ("cipher", "digest"),
    [
        pytest.param("aes128_cbc", "sha256", id="ok/aes128-sha256"),
        pytest.param("aes192_cbc", "sha512", id="ok/aes192-sha512"),
        pytest.param("aes256_cbc", "sha1", id="ok/aes256-sha1"),
        pytest.param("tripledes_3key", "sha1", id="ok/des3-sha1"),
        pytest.param("tripledes_3key", "sha256", id="ok/des3-sha256"),
        pytest.param("des", "sha512", id="ok/des-sha512"),
    ],
)
async def test_ok_pkcsreq_ciphers_and_digests(scep, cipher: str, digest: str) -> None:
    device = sc.Requester.new("dev.test")
    csr = sc.make_csr(device.key, "dev.test", STATIC, sans=("dev.test", "alt.test"))
    nonce = b"n" * 16
    reply = await scep.enroll(
        device, csr, cipher=cipher, digest=digest, nonce=nonce, transaction_id=f"t-{cipher}"
    )
    assert reply.status == 0, reply
    # RFC 8894 §3.3.2: answered in the client's algorithms, nonces and transactionID echoed.
    assert (reply.cipher, reply.digest) == (cipher, digest)
    assert reply.recipient_nonce == nonce and reply.sender_nonce != nonce
    assert reply.transaction_id == f"t-{cipher}"
    ra, issuing, _root = await scep.ca_certs()
    assert reply.signer == ra
    cert = reply.certificates[0]
    cert.verify_directly_issued_by(issuing)
    assert cert.subject == csr.subject
    assert cert.public_key().public_numbers() == device.key.public_key().public_numbers()
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["alt.test", "dev.test"]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku


@pytest.mark.parametrize("tail", ["", "/pkiclient.exe", "/cgi-bin/pkiclient.exe"])
async def test_ok_pkioperation_on_every_url_form(scep, tail: str) -> None:
    """RFC 8894 §4.1: the base URL, and with /pkiclient.exe or /cgi-bin/pkiclient.exe."""
    device = sc.Requester.new("url.test")
    der = sc.pki_message(
        device, await scep.ra(), 19, sc.csr_der(sc.make_csr(device.key, "url.test", STATIC))
    )
    resp = await scep.client.post(SCEP_PATH + tail + "?operation=PKIOperation", data=der)
    assert resp.status == 200 and resp.content_type == "application/x-pki-message"
    first = sc.read_reply(await resp.read(), device)
    assert first.status == 0
    # The retry's answer has a fresh senderNonce of its own (RFC 8894 §3.2.1.5).
    resp = await scep.client.post(SCEP_PATH + tail + "?operation=PKIOperation", data=der)
    again = sc.read_reply(await resp.read(), device)
    assert again.certificates == first.certificates and again.sender_nonce != first.sender_nonce


async def test_ok_pkioperation_by_get(scep) -> None:
    device = sc.Requester.new("get.test")
    csr = sc.make_csr(device.key, "get.test", STATIC)
    reply = await scep.enroll(device, csr, get=True)
    assert reply.status == 0
    # A '+' that was not percent-encoded arrives as a space; it still decodes.
    ra = await scep.ra()
    der = sc.pki_message(device, ra, 19, sc.csr_der(csr), transaction_id="get-2")
    query = "operation=PKIOperation&message=" + base64.b64encode(der).decode()
    resp = await scep.client.get(SCEP_PATH + "?" + query)
    assert resp.status == 200
    assert sc.read_reply(await resp.read(), device).status == 0


async def test_ok_legacy_url(scep) -> None:
    legacy = scep.bootstrap["legacy_profile_id"]
    settings = f"/api/v1/profiles/{legacy}/scep"
    view = await scep.api("PATCH", settings, {"enabled": True})
    assert view["urls"]["scep_url"].endswith(f"/profiles/{legacy}/scep")
    challenge = (await scep.api("POST", settings + "/challenge", {}, status=201))["challenge"]
    path = f"/profiles/{legacy}/scep"
    device = sc.Requester.new("legacy.test")
    reply = await scep.enroll(device, sc.make_csr(device.key, "legacy.test", challenge), path=path)
    assert reply.status == 0
    # The application's static challenge does not open the legacy enrollment.
    other = sc.Requester.new("legacy2.test")
    reply = await scep.enroll(other, sc.make_csr(other.key, "legacy2.test", STATIC), path=path)
    assert (reply.status, reply.fail_info) == (2, 2)


async def _fail(scep, device: sc.Requester, der: bytes, fail_info: int, why: str) -> None:
    """A signed FAILURE with `fail_info`, and a warning log line that says `why`."""
    handler = _Records()
    logger = logging.getLogger("certgate.scep")
    logger.addHandler(handler)
    try:
        reply = sc.read_reply(await scep.send(der), device)
    finally:
        logger.removeHandler(handler)
    assert (reply.status, reply.fail_info) == (2, fail_info), reply
    assert reply.signer == await scep.ra()
    lines = [r.getMessage() for r in handler.records if r.levelno == logging.WARNING]
    name = FailInfo(fail_info).name
    assert any(f"FAILURE {name}: " in line and why in line for line in lines), lines


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_fail_bad_alg_digest(scep, monkeypatch) -> None:
    device = sc.Requester.new("alg.test")
    csr = sc.make_csr(device.key, "alg.test", STATIC)
    ra = await scep.ra()
    with monkeypatch.context() as m:  # let the test client sign with SHA-224
        m.setitem(scep_cms.DIGESTS, "sha224", hashes.SHA224)
        der = sc.pki_message(device, ra, 19, sc.csr_der(csr), digest="sha224")
    await _fail(scep, device, der, 0, "digest algorithm sha224 is not supported")


async def test_fail_bad_alg_cipher(scep, monkeypatch) -> None:
    device = sc.Requester.new("alg.test")
    csr = sc.make_csr(device.key, "alg.test", STATIC)
    ra = await scep.ra()
    der = sc.pki_message(device, ra, 19, sc.csr_der(csr), cipher="aes128_cbc")
    # Announce an algorithm we do not take (AES-128-OFB) in place of AES-128-CBC; re-sign.
    ofb = read_bytes("scep", "oid-aes128-ofb.der")  # 2.16.840.1.101.3.4.1.3
    aes = read_bytes("scep", "oid-aes128-cbc.der")  # 2.16.840.1.101.3.4.1.2
    inner = scep_cms.parse_signed(der).content
    assert inner is not None and aes in inner
    forged = inner.replace(aes, ofb)
    der = scep_cms.sign(
        forged,
        [sc.attr(oid, v) for oid, v in _scep_attrs(der)],
        device.cert,
        device.key,
        "sha256",
    )
    await _fail(scep, device, der, 0, "content encryption aes128_ofb is not supported")


def _scep_attrs(der: bytes) -> list[tuple[str, object]]:
    message = scep_cms.parse_signed(der)
    return [
        (oid, v) for oid, v in message.attributes.items() if oid.startswith("2.16.840.1.113733")
    ]


async def test_fail_bad_message_check(scep) -> None:
    device = sc.Requester.new("check.test")
    csr = sc.make_csr(device.key, "check.test", STATIC)
    der = sc.pki_message(device, await scep.ra(), 19, sc.csr_der(csr), tamper=True)
    await _fail(scep, device, der, 1, "messageDigest does not match")


async def test_fail_bad_message_check_not_for_our_ra(scep) -> None:
    device = sc.Requester.new("check.test")
    stranger = sc.Requester.new("someone else")
    csr = sc.make_csr(device.key, "check.test", STATIC)
    der = sc.pki_message(device, stranger.cert, 19, sc.csr_der(csr))
    await _fail(scep, device, der, 1, "not encrypted to this RA")


@pytest.mark.parametrize(
    "challenge",
    [pytest.param(None, id="fail/no-challenge"), pytest.param("wrong-one", id="fail/wrong")],
)
async def test_fail_bad_request_challenge(scep, challenge: str | None) -> None:
    device = sc.Requester.new("chal.test")
    csr = sc.make_csr(device.key, "chal.test", challenge)
    der = sc.pki_message(device, await scep.ra(), 19, sc.csr_der(csr))
    await _fail(scep, device, der, 2, "missing or wrong challenge password")


async def test_fail_bad_request_policy(scep) -> None:
    device = sc.Requester.new("evil.example.org")
    csr = sc.make_csr(device.key, "evil.example.org", STATIC)
    der = sc.pki_message(device, await scep.ra(), 19, sc.csr_der(csr))
    await _fail(scep, device, der, 2, "evil.example.org")


async def test_fail_bad_request_message_type(scep) -> None:
    device = sc.Requester.new("type.test")
    csr = sc.make_csr(device.key, "type.test", STATIC)
    der = sc.pki_message(device, await scep.ra(), 18, sc.csr_der(csr))
    await _fail(scep, device, der, 2, "messageType 18 is not supported")
    der = sc.pki_message(device, await scep.ra(), 19, sc.csr_der(csr), omit=(_TYPE,))
    der = _with_attrs(device, der, [sc.attr(_TYPE, core.PrintableString("PKCSReq"))])
    await _fail(scep, device, der, 2, "messageType None is not supported")


_TYPE = "2.16.840.1.113733.1.9.2"


def _with_attrs(
    device: sc.Requester, der: bytes, extra: list, content: bytes | None = b""
) -> bytes:
    """`der` re-signed by `device` with its SCEP attributes plus `extra`, and another
    content when given (None: no content at all)."""
    message = scep_cms.parse_signed(der)
    body = message.content if content == b"" else content
    attrs = [sc.attr(oid, v) for oid, v in _scep_attrs(der)]
    return scep_cms.sign(body, [*attrs, *extra], device.cert, device.key, "sha256")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        pytest.param(None, "no pkcsPKIEnvelope", id="fail/no-envelope"),
        pytest.param(b"not DER at all", "malformed EnvelopedData", id="fail/garbage-envelope"),
        pytest.param(
            scep_cms.degenerate([]), "pkcsPKIEnvelope is not an EnvelopedData", id="fail/signed"
        ),
    ],
)
async def test_fail_bad_request_envelope_is_a_cert_rep_not_http_400(
    scep, content: bytes | None, why: str
) -> None:
    """The message decodes (signed, with transactionID, nonce and type): whatever is wrong
    inside gets a signed FAILURE, never an HTTP error."""
    device = sc.Requester.new("env.test")
    csr = sc.make_csr(device.key, "env.test", STATIC)
    der = sc.pki_message(device, await scep.ra(), 19, sc.csr_der(csr))
    await _fail(scep, device, _with_attrs(device, der, [], content), 2, why)


async def test_fail_bad_request_not_a_csr(scep) -> None:
    device = sc.Requester.new("csr.test")
    der = sc.pki_message(device, await scep.ra(), 19, b"\x30\x03\x02\x01\x01")
    await _fail(scep, device, der, 2, "not a valid PKCS#10")


async def test_fail_bad_time(scep) -> None:
    device = sc.Requester.new("time.test")
    csr = sc.make_csr(device.key, "time.test", STATIC)
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    der = sc.pki_message(device, await scep.ra(), 19, sc.csr_der(csr), signing_time=when)
    await _fail(scep, device, der, 3, "signingTime")


async def test_fail_bad_cert_id(scep) -> None:
    device = sc.Requester.new("id.test")
    ra, issuing, _ = await scep.ca_certs()
    content = sc.issuer_and_serial(issuing.subject, 0x1234)
    der = sc.pki_message(device, ra, 21, content)
    await _fail(scep, device, der, 4, "no certificate with serial 1234")
    poll = sc.issuer_and_subject(issuing.subject, device.cert.subject)
    der = sc.pki_message(device, ra, 20, poll, transaction_id="nope")
    await _fail(scep, device, der, 4, "no enrollment with transactionID nope")
    crl = sc.issuer_and_serial(device.cert.subject, 1)  # not our CA
    der = sc.pki_message(device, ra, 22, crl)
    await _fail(scep, device, der, 4, "this enrollment's CA is not that issuer")


@pytest.mark.parametrize(
    ("method", "query", "body"),
    [
        pytest.param("POST", "operation=PKIOperation", b"garbage", id="fail/post-garbage"),
        pytest.param("GET", "operation=PKIOperation&message=%%%", b"", id="fail/get-not-b64"),
        pytest.param("GET", "operation=PKIOperation", b"", id="fail/get-no-message"),
        pytest.param("GET", "operation=Nope", b"", id="fail/unknown-operation"),
    ],
)
async def test_fail_undecodable_is_http_400(scep, method: str, query: str, body: bytes) -> None:
    resp = await scep.client.request(method, SCEP_PATH + "?" + query, data=body)
    assert resp.status == 400
    assert resp.content_type == "text/plain"


async def test_fail_no_transaction_id_is_http_400(scep) -> None:
    device = sc.Requester.new("x.test")
    csr = sc.make_csr(device.key, "x.test", STATIC)
    ra = await scep.ra()
    der = sc.pki_message(device, ra, 19, sc.csr_der(csr), omit=("2.16.840.1.113733.1.9.7",))
    resp = await scep.client.post(SCEP_PATH + "?operation=PKIOperation", data=der)
    assert resp.status == 400


async def test_fail_disabled_or_unknown_is_404(scep) -> None:
    await scep.api(
        "PATCH", "/api/v1/applications/demo/profiles/tls-server/scep", {"enabled": False}
    )
    resp = await scep.client.get(SCEP_PATH + "?operation=GetCACaps")
    assert resp.status == 404
    resp = await scep.client.get("/applications/demo/profiles/nope/scep?operation=GetCACaps")
    assert resp.status == 404
    resp = await scep.client.get("/profiles/not-a-uuid/scep?operation=GetCACaps")
    assert resp.status == 404


async def test_fail_mutated_messages_never_crash(scep) -> None:
    """Damaged messages (flipped bytes, truncations) get a CertRep or an HTTP 400, never a
    server error: only what cannot be decoded at all is refused over HTTP."""
    rng = random.Random(int(os.environ.get("FZSEED", "8894")))
    device = sc.Requester.new("fuzz.test")
    csr = sc.make_csr(device.key, "fuzz.test", STATIC)
    good = sc.pki_message(device, await scep.ra(), 19, sc.csr_der(csr), transaction_id="fz")
    variants = [good[:cut] for cut in range(0, len(good), max(1, len(good) // 40))]
    for _ in range(FUZZ_ROUNDS):
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        variants.append(bytes(damaged))
    statuses: dict[int, int] = {}
    for der in variants:
        resp = await scep.client.post(SCEP_PATH + "?operation=PKIOperation", data=der)
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        assert resp.status in (200, 400), (resp.status, await resp.text(), der.hex())
        if resp.status == 200:
            reply = sc.read_reply(await resp.read(), device)
            assert reply.status in (0, 2, 3)
    assert statuses.get(200) and statuses.get(400), statuses
