"""EST wire formats (protocols.est.wire): certs-only CMS (RFC 7030 §4.1.3), base64 lines,
the csrattrs encoding (§4.5.2) and the serverkeygen multipart (§4.4.2)."""

from __future__ import annotations

import base64

from asn1crypto import cms, core
from est_fakes import make_cert

from protocols.est import wire


def test_certs_only_roundtrip() -> None:
    a, _ = make_cert("a")
    b, _ = make_cert("b")
    info = cms.ContentInfo.load(wire.certs_only([a, b]))
    signed = info["content"]
    assert info["content_type"].native == "signed_data"
    assert len(signed["signer_infos"]) == 0
    assert len(signed["certificates"]) == 2


def test_b64_lines_are_64_wide() -> None:
    text = wire.b64_lines(b"x" * 300)
    lines = text.split(b"\r\n")
    assert all(len(line) <= 64 for line in lines)
    assert base64.b64decode(b"".join(lines)) == b"x" * 300


def test_csrattrs_encoding() -> None:
    attrs = wire.CsrAttrs()
    assert not attrs
    attrs.oid(wire.OID_CHALLENGE_PASSWORD)
    attrs.attribute(wire.OID_EC_PUBLIC_KEY, [wire.oid_der(wire.CURVE_OIDS["P-384"])])
    seq = core.Sequence.load(attrs.der())
    assert seq.dump()[0] == 0x30
    assert wire.oid_der("1.3.132.0.34") in attrs.der()


def test_multipart_has_key_then_cert() -> None:
    body, content_type = wire.multipart_keygen(b"KEY", b"CMS")
    boundary = content_type.split('boundary="')[1].rstrip('"')
    text = body.decode()
    assert text.index("application/pkcs8") < text.index("application/pkcs7-mime")
    assert text.endswith(f"--{boundary}--\r\n")
