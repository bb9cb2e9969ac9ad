"""The JWS checks of RFC 8555 §6.2 that need no server state: parse the flattened JSON
serialization, refuse what the profile forbids, and verify a signature with the JWK.
The stateful steps (nonce, url, kid lookup) follow in `protocols.acme.server.verify_post`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from gateway.core.acme import b64url, b64url_decode
from protocols.acme.problems import Problem, malformed

JOSE_JSON = "application/jose+json"

# RFC 8555 §6.2: servers MUST support ES256 and SHOULD support EdDSA; RS256 for certbot's
# RSA account keys. "none" and MAC algorithms are never acceptable for requests.
ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "EdDSA")
_EC: dict[str, tuple[str, type[ec.EllipticCurve], hashes.HashAlgorithm, int]] = {
    "ES256": ("P-256", ec.SECP256R1, hashes.SHA256(), 32),
    "ES384": ("P-384", ec.SECP384R1, hashes.SHA384(), 48),
    "ES512": ("P-521", ec.SECP521R1, hashes.SHA512(), 66),
}
_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
MIN_RSA_BITS = 2048

PublicKey = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


@dataclass(frozen=True)
class Jws:
    protected: dict[str, Any]
    protected_b64: str
    payload_b64: str
    signature: bytes

    @property
    def signing_input(self) -> bytes:
        return f"{self.protected_b64}.{self.payload_b64}".encode("ascii")

    @property
    def post_as_get(self) -> bool:
        """RFC 8555 §6.3: an empty payload is a POST-as-GET."""
        return self.payload_b64 == ""

    def payload(self) -> dict[str, Any]:
        """The payload as a JSON object; malformed otherwise."""
        if self.post_as_get:
            raise malformed("this resource needs a JSON payload, not POST-as-GET")
        return json_object(_b64(self.payload_b64, "payload"), "payload")


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise malformed(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise malformed(f"{what} must be a JSON object")
    return value


def _b64(text: Any, what: str) -> bytes:
    try:
        return b64url_decode(text)
    except ValueError:
        raise malformed(f"{what} is not base64url") from None


def parse(content_type: str, body: bytes) -> Jws:
    """RFC 8555 §6.2 steps 1-3: content type, flattened JSON with exactly one signature and
    no unprotected header, then the algorithm."""
    if content_type != JOSE_JSON:
        raise Problem("malformed", f"Content-Type must be {JOSE_JSON}", status=415)
    outer = json_object(body, "request body")
    if "signatures" in outer:
        raise malformed("JWS must use the flattened JSON serialization with one signature")
    if "header" in outer:
        raise malformed("JWS must not have an unprotected header")
    unknown = set(outer) - {"protected", "payload", "signature"}
    if unknown or not all(isinstance(outer.get(k), str) for k in ("protected", "payload")):
        raise malformed("JWS must have string members protected, payload and signature only")
    if not isinstance(outer.get("signature"), str):
        raise malformed("JWS must have a signature")
    protected = json_object(_b64(outer["protected"], "protected header"), "protected header")
    _b64(outer["payload"], "payload")
    jws = Jws(
        protected, outer["protected"], outer["payload"], _b64(outer["signature"], "signature")
    )
    check_algorithm(protected.get("alg"))
    _check_crit(protected)
    return jws


def _check_crit(protected: dict[str, Any]) -> None:
    """RFC 7515 §4.1.11: a recipient MUST reject a JWS whose `crit` names an extension it
    does not understand; ACME defines none (RFC 8555 §6.2), so any `crit` is refused."""
    if "crit" in protected:
        raise malformed("JWS crit header parameters are not supported (RFC 7515 §4.1.11)")


def check_algorithm(alg: Any) -> None:
    if alg not in ALGORITHMS:
        raise Problem(
            "badSignatureAlgorithm",
            f"JWS algorithm {alg!r} is not accepted",
            extra={"algorithms": list(ALGORITHMS)},
        )


# Parsed account keys by their JWK members: building a key (the EC point check above all)
# costs as much as verifying a signature, and an account signs every request with one key.
_KEYS: dict[tuple[Any, ...], PublicKey] = {}
_KEYS_KEPT = 4096
_MEMBERS = ("kty", "crv", "x", "y", "n", "e")


def public_key(jwk: Any) -> PublicKey:
    """RFC 7517/7518/8037 JWK → key; badPublicKey for anything we cannot use."""
    if not isinstance(jwk, dict):
        raise malformed("jwk must be a JSON object")
    members = tuple(jwk.get(m) for m in _MEMBERS)
    try:
        return _KEYS[members]
    except (KeyError, TypeError):  # TypeError: an unhashable member, refused below
        pass
    key = _public_key(jwk)
    if len(_KEYS) >= _KEYS_KEPT:
        _KEYS.clear()
    _KEYS[members] = key
    return key


def _public_key(jwk: dict[str, Any]) -> PublicKey:
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            curves: dict[str, ec.EllipticCurve] = {
                "P-256": ec.SECP256R1(),
                "P-384": ec.SECP384R1(),
                "P-521": ec.SECP521R1(),
            }
            curve = curves[jwk["crv"]]
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(b64url_decode(jwk["x"])),
                int.from_bytes(b64url_decode(jwk["y"])),
                curve,
            )
            return numbers.public_key()
        if kty == "RSA":
            key = rsa.RSAPublicNumbers(
                int.from_bytes(b64url_decode(jwk["e"])), int.from_bytes(b64url_decode(jwk["n"]))
            ).public_key()
            if key.key_size < MIN_RSA_BITS:
                raise Problem("badPublicKey", f"RSA keys must have at least {MIN_RSA_BITS} bits")
            return key
        if kty == "OKP":
            raw = b64url_decode(jwk["x"])
            if jwk.get("crv") == "Ed25519":
                return ed25519.Ed25519PublicKey.from_public_bytes(raw)
            if jwk.get("crv") == "Ed448":
                return ed448.Ed448PublicKey.from_public_bytes(raw)
    except Problem:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise Problem("badPublicKey", f"unusable {kty} JWK") from err
    raise Problem("badPublicKey", f"unsupported JWK key type {kty!r}")


def verify(jws: Jws, jwk: dict[str, Any]) -> None:
    """RFC 8555 §6.2: the signature must verify with the account (or given) key, with an
    algorithm that fits the key."""
    key = public_key(jwk)
    alg = jws.protected.get("alg")
    data = jws.signing_input
    try:
        if alg in _EC:
            crv, curve, digest, size = _EC[alg]
            if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, curve):
                raise Problem("badSignatureAlgorithm", f"{alg} needs an EC key on {crv}")
            if len(jws.signature) != 2 * size:
                raise malformed("JWS signature has the wrong length")
            r = int.from_bytes(jws.signature[:size])
            s = int.from_bytes(jws.signature[size:])
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))
        elif alg == "RS256":
            if not isinstance(key, rsa.RSAPublicKey):
                raise Problem("badSignatureAlgorithm", "RS256 needs an RSA key")
            key.verify(jws.signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "EdDSA":
            if not isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
                raise Problem("badSignatureAlgorithm", "EdDSA needs an OKP key")
            key.verify(jws.signature, data)
        else:
            check_algorithm(alg)
    except InvalidSignature:
        raise malformed("JWS signature does not verify") from None


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace."""
    required = {
        "EC": ("crv", "kty", "x", "y"),
        "RSA": ("e", "kty", "n"),
        "OKP": ("crv", "kty", "x"),
    }
    members = required.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(m), str) for m in members):
        raise Problem("badPublicKey", "JWK lacks the members its key type needs")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """Only the public members (a client might send "d" by mistake; never store it)."""
    keep = {"kty", "crv", "x", "y", "n", "e"}
    return {k: v for k, v in jwk.items() if k in keep}


def verify_mac(jws: Jws, key: bytes) -> None:
    """RFC 8555 §7.3.4: the EAB JWS is MAC'ed with HS256/384/512 under the EAB key."""
    alg = jws.protected.get("alg")
    digest = _HMAC.get(str(alg))
    if digest is None:
        raise malformed(f"externalAccountBinding must use HS256, HS384 or HS512, not {alg!r}")
    expected = hmac.new(key, jws.signing_input, digest).digest()
    if not hmac.compare_digest(expected, jws.signature):
        raise unauthorized_mac()


def unauthorized_mac() -> Problem:
    return Problem("unauthorized", "externalAccountBinding MAC does not verify")


def parse_inner(value: Any, what: str) -> Jws:
    """A JWS nested inside a payload (EAB, keyChange): same flattened form, any alg."""
    if not isinstance(value, dict):
        raise malformed(f"{what} must be a flattened JWS object")
    raw = json.dumps(value).encode()
    outer = json_object(raw, what)
    if "signatures" in outer or "header" in outer:
        raise malformed(f"{what} must be a flattened JWS with one signature")
    if not all(isinstance(outer.get(k), str) for k in ("protected", "payload", "signature")):
        raise malformed(f"{what} must have protected, payload and signature")
    protected = json_object(_b64(outer["protected"], f"{what} header"), f"{what} header")
    _check_crit(protected)
    _b64(outer["payload"], f"{what} payload")
    return Jws(protected, outer["protected"], outer["payload"], _b64(outer["signature"], what))
