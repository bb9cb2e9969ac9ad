"""The /csrattrs answer (RFC 7030 §4.5.2, with the RFC 9908 reading of Attribute values):
what a CSR for this profile should carry, derived from the profile and its policy."""

from __future__ import annotations

from asn1crypto import core
from asn1crypto import x509 as a_x509
from cryptography import x509

from gateway.core.model import KeyType, PolicyRules
from gateway.core.policy import eku_oid
from gateway.core.target import EnrollmentTarget
from gateway.pki.keys import key_type_of
from protocols.est import wire

_EC_CURVES = {KeyType.EC_P256: "P-256", KeyType.EC_P384: "P-384"}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}


def csr_attributes(target: EnrollmentTarget, policy: PolicyRules) -> wire.CsrAttrs:
    out = wire.CsrAttrs()
    if target.methods.est.require_tls_unique:
        # §3.5: the challengePassword must hold base64(tls-unique).
        out.oid(wire.OID_CHALLENGE_PASSWORD)
    _key(out, target.profile.default_key_type, policy)
    extensions = _extensions(target, policy)
    if extensions is not None:
        out.attribute(wire.OID_EXTENSION_REQUEST, [extensions])
    return out


def key_type_allowed(key_type: KeyType, policy: PolicyRules) -> bool:
    """Would the policy accept a key of `key_type`?"""
    if key_type in _EC_CURVES:
        return "ec" in policy.key_algorithms and _EC_CURVES[key_type] in policy.ec_curves
    if key_type in _RSA_BITS:
        return "rsa" in policy.key_algorithms and _RSA_BITS[key_type] >= policy.min_rsa_bits
    return key_type is KeyType.ED25519 and "ed25519" in policy.key_algorithms


def serverkeygen_type(
    csr: x509.CertificateSigningRequest, default: KeyType, policy: PolicyRules | None
) -> KeyType:
    """RFC 7030 §4.4 leaves the server-generated key's type to the server: the type of the
    CSR's own key where the policy accepts it (clients such as libest's estclient expect
    the key type they asked with, and refuse a shorter key), else the profile's default."""
    try:
        requested = key_type_of(csr.public_key())
    except ValueError:  # a key type cryptography cannot read
        requested = None
    if requested is not None and policy is not None and key_type_allowed(requested, policy):
        return requested
    return default


def _key(out: wire.CsrAttrs, key_type: KeyType, policy: PolicyRules) -> None:
    """The profile's key type, when the policy accepts it (what serverkeygen would make)."""
    if key_type in _EC_CURVES and "ec" in policy.key_algorithms:
        curve = _EC_CURVES[key_type]
        if curve in policy.ec_curves:
            out.attribute(wire.OID_EC_PUBLIC_KEY, [wire.oid_der(wire.CURVE_OIDS[curve])])
    elif key_type in _RSA_BITS and "rsa" in policy.key_algorithms:
        bits = max(_RSA_BITS[key_type], policy.min_rsa_bits)
        out.attribute(wire.OID_RSA_ENCRYPTION, [bytes(core.Integer(bits).dump())])
    elif key_type is KeyType.ED25519 and "ed25519" in policy.key_algorithms:
        out.oid(wire.OID_ED25519)


def _extensions(target: EnrollmentTarget, policy: PolicyRules) -> bytes | None:
    """extensionRequest with the EKUs the certificate will carry and any key usages the
    policy requires, so a device can build a CSR that passes the policy first time."""
    ekus: list[str] = []
    for name in (*target.profile.extended_key_usages, *policy.required_extended_key_usages):
        dotted = eku_oid(name).dotted_string
        if dotted not in ekus:
            ekus.append(dotted)
    items: list[dict[str, object]] = []
    if ekus:
        items.append({"extn_id": "extended_key_usage", "critical": False, "extn_value": ekus})
    if policy.required_key_usages:
        usages = {_KU_NAMES[u] for u in policy.required_key_usages if u in _KU_NAMES}
        if usages:
            items.append({"extn_id": "key_usage", "critical": True, "extn_value": usages})
    if not items:
        return None
    return bytes(a_x509.Extensions(items).dump())


# cryptography's KeyUsage attribute names (policy) -> asn1crypto's bit names.
_KU_NAMES = {
    "digital_signature": "digital_signature",
    "content_commitment": "non_repudiation",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "key_cert_sign": "key_cert_sign",
    "crl_sign": "crl_sign",
    "encipher_only": "encipher_only",
    "decipher_only": "decipher_only",
}
