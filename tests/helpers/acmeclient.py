"""A minimal ACME client for protocol tests: signs JWS with cryptography and can send
deliberately broken requests. Not a general client; real-client tests use certbot/lego."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(n: int, size: int | None = None) -> str:
    size = size or (n.bit_length() + 7) // 8
    return b64(n.to_bytes(size, "big"))


@dataclass
class Key:
    private: Any
    alg: str

    @classmethod
    def ec(cls, curve: ec.EllipticCurve | None = None) -> Key:
        curve = curve or ec.SECP256R1()
        alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[curve.name]
        return cls(ec.generate_private_key(curve), alg)

    @classmethod
    def rsa(cls, bits: int = 2048) -> Key:
        return cls(rsa.generate_private_key(65537, bits), "RS256")

    @classmethod
    def ed25519(cls) -> Key:
        return cls(ed25519.Ed25519PrivateKey.generate(), "EdDSA")

    def jwk(self) -> dict[str, str]:
        pub = self.private.public_key()
        if isinstance(pub, ec.EllipticCurvePublicKey):
            size = (pub.curve.key_size + 7) // 8
            nums = pub.public_numbers()
            crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
            return {
                "kty": "EC",
                "crv": crv[pub.curve.name],
                "x": _int(nums.x, size),
                "y": _int(nums.y, size),
            }
        if isinstance(pub, rsa.RSAPublicKey):
            nums = pub.public_numbers()
            return {"kty": "RSA", "n": _int(nums.n), "e": _int(nums.e)}
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}

    def thumbprint(self) -> str:
        jwk = self.jwk()
        members = {
            "EC": ("crv", "kty", "x", "y"),
            "RSA": ("e", "kty", "n"),
            "OKP": ("crv", "kty", "x"),
        }
        canonical = json.dumps(
            {m: jwk[m] for m in members[jwk["kty"]]}, separators=(",", ":"), sort_keys=True
        )
        return b64(hashlib.sha256(canonical.encode()).digest())

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            digest = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}
            der = self.private.sign(data, ec.ECDSA(digest[self.alg]))
            r, s = decode_dss_signature(der)
            size = (self.private.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.private.sign(data)


def jws(
    key: Key,
    url: str,
    payload: Any,
    *,
    nonce: str | None,
    kid: str | None = None,
    extra: dict[str, Any] | None = None,
    alg: str | None = None,
) -> dict[str, str]:
    protected: dict[str, Any] = {"alg": alg or key.alg, "url": url}
    if nonce is not None:
        protected["nonce"] = nonce
    if kid is not None:
        protected["kid"] = kid
    else:
        protected["jwk"] = key.jwk()
    protected.update(extra or {})
    p64 = b64(json.dumps(protected).encode())
    body = "" if payload is None else b64(json.dumps(payload).encode())
    sig = key.sign(f"{p64}.{body}".encode())
    return {"protected": p64, "payload": body, "signature": b64(sig)}


def eab(
    kid: str, hmac_key_b64: str, jwk: dict[str, str], url: str, alg: str = "HS256"
) -> dict[str, str]:
    key = base64.urlsafe_b64decode(hmac_key_b64 + "=" * (-len(hmac_key_b64) % 4))
    p64 = b64(json.dumps({"alg": alg, "kid": kid, "url": url}).encode())
    body = b64(json.dumps(jwk).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    mac = hmac.new(key, f"{p64}.{body}".encode(), digest).digest()
    return {"protected": p64, "payload": body, "signature": b64(mac)}


def csr_der(names: list[str], key: Any | None = None, cn: str | None = None) -> tuple[bytes, Any]:
    import ipaddress

    key = key or ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER), key


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any
    text: str = ""

    @property
    def problem(self) -> str:
        return str(self.body.get("type", "")).removeprefix("urn:ietf:params:acme:error:")


@dataclass
class AcmeClient:
    """Drives an aiohttp TestClient; URLs in the directory carry the public base URL, so
    requests go to their path while the JWS `url` keeps the full URL."""

    http: Any
    directory_path: str
    key: Key = field(default_factory=Key.ec)
    directory: dict[str, Any] = field(default_factory=dict)
    kid: str | None = None
    nonce: str | None = None

    def path(self, url: str) -> str:
        return "/" + url.split("/", 3)[3]

    async def start(self) -> AcmeClient:
        resp = await self.http.get(self.directory_path)
        assert resp.status == 200, await resp.text()
        self.directory = await resp.json()
        return self

    async def new_nonce(self) -> str:
        resp = await self.http.head(self.path(self.directory["newNonce"]))
        assert resp.status == 200
        return str(resp.headers["Replay-Nonce"])

    async def raw(
        self, url: str, body: bytes | str, content_type: str = "application/jose+json"
    ) -> Reply:
        resp = await self.http.post(
            self.path(url), data=body, headers={"Content-Type": content_type}
        )
        if "Replay-Nonce" in resp.headers:
            self.nonce = resp.headers["Replay-Nonce"]
        text = await resp.text()
        try:
            parsed: Any = json.loads(text) if text else {}
        except ValueError:
            parsed = {}
        return Reply(resp.status, resp.headers, parsed, text)

    async def post(
        self,
        url: str,
        payload: Any,
        *,
        key: Key | None = None,
        use_jwk: bool = False,
        nonce: str | None = None,
        extra: dict[str, Any] | None = None,
        sign_url: str | None = None,
    ) -> Reply:
        if nonce is None:
            nonce = self.nonce or await self.new_nonce()
            self.nonce = None
        body = jws(
            key or self.key,
            sign_url or url,
            payload,
            nonce=nonce,
            kid=None if use_jwk else self.kid,
            extra=extra,
        )
        return await self.raw(url, json.dumps(body))

    async def register(self, kid: str | None, hmac_key: str | None, **payload: Any) -> Reply:
        url = self.directory["newAccount"]
        body: dict[str, Any] = {"termsOfServiceAgreed": True, **payload}
        if kid is not None and hmac_key is not None:
            body["externalAccountBinding"] = eab(kid, hmac_key, self.key.jwk(), url)
        reply = await self.post(url, body, use_jwk=True)
        if reply.status in (200, 201):
            self.kid = reply.headers["Location"]
        return reply
