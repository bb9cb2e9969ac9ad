"""The stateless JWS steps of RFC 8555 §6.2 (protocols.acme.jws)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from protocols.acme import jws as jwslib
from protocols.acme.problems import Problem
from tests.helpers.acmeclient import Key, b64, jws

URL = "http://x/acme/new-order"


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(Key.ec(), id="ok/ES256"),
        pytest.param(Key.ec(ec.SECP384R1()), id="ok/ES384"),
        pytest.param(Key.ec(ec.SECP521R1()), id="ok/ES512"),
        pytest.param(Key.rsa(), id="ok/RS256"),
        pytest.param(Key.ed25519(), id="ok/EdDSA"),
    ],
)
def test_ok_verify_every_algorithm(key: Key) -> None:
    body = json.dumps(jws(key, URL, {"a": 1}, nonce="n")).encode()
    parsed = jwslib.parse("application/jose+json", body)
    jwslib.verify(parsed, parsed.protected["jwk"])
    assert parsed.payload() == {"a": 1}
    assert jwslib.thumbprint(key.jwk()) == key.thumbprint()


def _signed(**over: object) -> dict[str, object]:
    body: dict[str, object] = dict(jws(Key.ec(), URL, {}, nonce="n"))
    body.update(over)
    return body


@pytest.mark.parametrize(
    ("content_type", "body", "problem"),
    [
        pytest.param("application/json", _signed(), "malformed", id="fail/content-type"),
        pytest.param("application/jose+json", {"signatures": []}, "malformed", id="fail/general"),
        pytest.param(
            "application/jose+json", _signed(header={"a": 1}), "malformed", id="fail/unprotected"
        ),
        pytest.param("application/jose+json", "garbage", "malformed", id="fail/garbage"),
        pytest.param("application/jose+json", _signed(payload="###"), "malformed", id="fail/b64"),
        pytest.param(
            "application/jose+json",
            jws(Key.ec(), URL, {}, nonce="n", extra={"crit": ["exp"], "exp": 1}),
            "malformed",
            id="fail/crit",
        ),
    ],
)
def test_fail_parse(content_type: str, body: object, problem: str) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    with pytest.raises(Problem) as err:
        jwslib.parse(content_type, raw)
    assert err.value.type == problem


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "PS256"])
def test_fail_algorithm_not_allowed(alg: str) -> None:
    key = Key.ec()
    body = json.dumps(jws(key, URL, {}, nonce="n", alg=alg)).encode()
    with pytest.raises(Problem) as err:
        jwslib.parse("application/jose+json", body)
    assert err.value.type == "badSignatureAlgorithm"
    assert "ES256" in err.value.to_json()["algorithms"]


def test_fail_signature_by_other_key() -> None:
    body = json.dumps(jws(Key.ec(), URL, {}, nonce="n")).encode()
    parsed = jwslib.parse("application/jose+json", body)
    with pytest.raises(Problem) as err:
        jwslib.verify(parsed, Key.ec().jwk())
    assert err.value.type == "malformed"


def test_fail_alg_does_not_fit_key() -> None:
    key = Key.ec()
    body = json.dumps(jws(key, URL, {}, nonce="n", alg="RS256")).encode()
    parsed = jwslib.parse("application/jose+json", body)
    with pytest.raises(Problem) as err:
        jwslib.verify(parsed, key.jwk())
    assert err.value.type == "badSignatureAlgorithm"


def test_fail_small_rsa_key() -> None:
    with pytest.raises(Problem) as err:
        jwslib.public_key(Key.rsa(1024).jwk())
    assert err.value.type == "badPublicKey"


def test_public_jwk_drops_private_members() -> None:
    assert "d" not in jwslib.public_jwk({**Key.ec().jwk(), "d": b64(b"secret")})
