"""The policy engine: CSR + profile + policy rules -> CertificateTemplate or PolicyDenied.

`evaluate` checks every rule and reports every violation at once (a requester fixes a
CSR in one round trip, not one per rule). It never raises on the first problem; only an
unusable CSR (bad signature, malformed extensions) raises BadCSR straight away, because
then nothing about its contents can be trusted.

Rule ids in `Violation.rule` are stable and public:
  identity.missing
  subject.attribute.not_allowed  subject.attribute.required
  subject.value.not_allowed      subject.value.denied  subject.value.invalid
  subject.cn.invalid  subject.cn.not_in_sans
  san.required  san.too_many
  san.<dns|ip|email|uri>.<invalid|not_allowed|denied>  san.other.not_allowed
  key.algorithm.not_allowed  key.rsa.too_small  key.ec.curve_not_allowed
  key_usage.ca  key_usage.empty  key_usage.unknown  key_usage.incompatible_key
  key_usage.none_usable  key_usage.not_allowed  key_usage.required
  basic_constraints.ca
  eku.unknown  eku.not_allowed  eku.required
  validity.invalid  validity.too_long  validity.ca_expired
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.core import names
from gateway.core.csr import SIGNATURE_FAILED, common_name, csr_extensions, key_type_label
from gateway.core.errors import BadCSR, PolicyDenied
from gateway.core.model import PolicyRules, Profile
from gateway.core.names import Findings, has_control_character, listing
from gateway.core.template import CertificateTemplate

_E = TypeVar("_E", bound=x509.ExtensionType)

# RFC 5280 §4.1.2.5 leaves clock skew to the issuer; five minutes of backdating keeps
# relying parties with slightly slow clocks from rejecting a fresh certificate.
CLOCK_SKEW = timedelta(minutes=5)

# cryptography's KeyUsage attribute names, in RFC 5280 §4.2.1.3 bit order.
KEY_USAGE_NAMES: tuple[str, ...] = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)
# Only a CA signs certificates or CRLs (RFC 5280 §4.2.1.3); this path never makes one.
_CA_USAGES = frozenset({"key_cert_sign", "crl_sign"})
# RFC 5280 §4.2.1.3: encipherOnly/decipherOnly are meaningless without keyAgreement.
_AGREEMENT_MODIFIERS = frozenset({"encipher_only", "decipher_only"})

# Which usages a key of each algorithm can honour at all:
#   RSA     RFC 3279 §2.3.1 (no keyAgreement)
#   EC      RFC 5480 §3 as updated by RFC 8813 §3 (no keyEncipherment/dataEncipherment)
#   EdDSA   RFC 8410 §5 (signatures only)
_SIGNING = frozenset({"digital_signature", "content_commitment", "key_cert_sign", "crl_sign"})
_USAGES_FOR_ALGORITHM: dict[str, frozenset[str]] = {
    "rsa": _SIGNING | {"key_encipherment", "data_encipherment"},
    "ec": _SIGNING | {"key_agreement", "encipher_only", "decipher_only"},
    "ed25519": _SIGNING,
    "ed448": _SIGNING,
}
_ALGORITHM_TITLES = {"rsa": "RSA", "ec": "EC", "ed25519": "Ed25519", "ed448": "Ed448"}
_USAGE_RFC = {
    "rsa": "RFC 3279 §2.3.1",
    "ec": "RFC 8813 §3",
    "ed25519": "RFC 8410 §5",
    "ed448": "RFC 8410 §5",
}

_EKU_NAMES: dict[str, x509.ObjectIdentifier] = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "time_stamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "any_extended_key_usage": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "ipsec_ike": ExtendedKeyUsageOID.IPSEC_IKE,
    "smartcard_logon": ExtendedKeyUsageOID.SMARTCARD_LOGON,
    "kerberos_pkinit_kdc": ExtendedKeyUsageOID.KERBEROS_PKINIT_KDC,
}
_EKU_BY_OID = {oid: name for name, oid in _EKU_NAMES.items()}
_DOTTED_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")

_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def eku_oid(name: str) -> x509.ObjectIdentifier:
    """OID for an EKU short name (server_auth, …) or a dotted OID; ValueError if neither."""
    key = name.strip()
    if key.lower() in _EKU_NAMES:
        return _EKU_NAMES[key.lower()]
    if _DOTTED_OID.fullmatch(key):
        return x509.ObjectIdentifier(key)
    raise ValueError(f"unknown extended key usage {name!r}")


def eku_name(oid: x509.ObjectIdentifier) -> str:
    """Short name for a known EKU OID, the dotted OID otherwise."""
    return _EKU_BY_OID.get(oid, oid.dotted_string)


def key_algorithm(public_key: CertificatePublicKeyTypes) -> str:
    """The policy's algorithm name (rsa, ec, ed25519, ed448); else the key label's prefix."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ec"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    return key_type_label(public_key).split("-", 1)[0]


# --- evaluate ----------------------------------------------------------------------------


def evaluate(
    csr: x509.CertificateSigningRequest,
    profile: Profile,
    rules: PolicyRules,
    now: datetime,
    *,
    requested_validity_days: int | None = None,
    ca_not_after: datetime | None = None,
) -> CertificateTemplate:
    """Decide the certificate for `csr` under `profile` and `rules`, or raise PolicyDenied
    listing every violated rule."""
    # Checked again here (parse_csr already did) because front-ends may hand over CSR
    # objects they parsed themselves, e.g. SCEP from inside PKCS#7 (RFC 2986 §3).
    try:
        signature_ok = csr.is_signature_valid
    except Exception as err:
        raise BadCSR(f"CSR signature cannot be checked: {err}") from err
    if not signature_ok:
        raise BadCSR(SIGNATURE_FAILED)
    extensions = csr_extensions(csr)
    try:
        public_key = csr.public_key()
    except Exception as err:  # e.g. a key algorithm cryptography does not support
        raise BadCSR(f"CSR public key cannot be read: {err}") from err
    algorithm = key_algorithm(public_key)
    sans = _extension(extensions, x509.SubjectAlternativeName)
    san_list: tuple[x509.GeneralName, ...] = tuple(sans) if sans is not None else ()

    out = Findings()
    cn = common_name(csr.subject)
    if not cn and not san_list:
        out.add(
            "identity.missing",
            "The CSR names nothing to certify: it has neither a subject common name "
            "(CN) nor any subject alternative name",
        )
    # The EKUs decide whether this is a TLS server certificate, which the name checks
    # need; their findings still come after the key's, in the documented order.
    eku_findings = Findings()
    ekus = _extended_key_usages(extensions, profile, rules, eku_findings)
    tls = ExtendedKeyUsageOID.SERVER_AUTH in ekus
    names.check_subject(csr.subject, rules, out, tls=tls)
    san_list = names.unique_sans(san_list)
    if tls and cn and names.cn_host_problem(cn) is None and not has_control_character(cn):
        san_list = _cn_in_sans(cn, san_list, rules, out)
    names.check_sans(san_list, rules, out)
    _check_key(public_key, algorithm, rules, out)
    key_usages = _key_usages(extensions, profile, algorithm, rules, out)
    basic = _extension(extensions, x509.BasicConstraints)
    if basic is not None and basic.ca:
        out.add(
            "basic_constraints.ca",
            "The CSR asks for a CA certificate (basicConstraints cA=TRUE); "
            "CA certificates cannot be enrolled through a profile",
        )
    out.extend(eku_findings)
    not_before, not_after = _validity(
        profile, rules, now, requested_validity_days, ca_not_after, out
    )
    if out:
        raise PolicyDenied(list(dict.fromkeys(out)))  # a repeated SAN is reported once
    return CertificateTemplate(
        subject=csr.subject,
        sans=san_list,
        public_key=public_key,
        not_before=not_before,
        not_after=not_after,
        key_usages=key_usages,
        extended_key_usages=ekus,
    )


def _cn_in_sans(
    cn: str, sans: tuple[x509.GeneralName, ...], rules: PolicyRules, out: Findings
) -> tuple[x509.GeneralName, ...]:
    """A TLS client matches only the SANs once there are any (RFC 6125 §6.4.4), and the
    CA/Browser Forum BRs §7.1.4.3 require the CN to be one of them. A profile has no
    setting for this (it would need a migration), so the policy decides: under
    `require_san` the requester must list the CN, otherwise it is added for them."""
    if names.cn_among_sans(cn, sans):
        return sans
    if rules.require_san:
        if sans:  # with no SAN at all, san.required already says what is missing
            out.add(
                "subject.cn.not_in_sans",
                f"Subject CN '{cn}' is not among the subject alternative names; the policy "
                "requires the CSR to list every name it certifies as a SAN",
                cn,
            )
        return sans
    return (*sans, names.cn_as_san(cn))


def _extension(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


# --- key -------------------------------------------------------------------------------


def _check_key(
    public_key: CertificatePublicKeyTypes, algorithm: str, rules: PolicyRules, out: Findings
) -> None:
    label = key_type_label(public_key)
    if algorithm not in rules.key_algorithms:
        out.add(
            "key.algorithm.not_allowed",
            f"Key algorithm '{algorithm}' ({label}) is not allowed by the policy "
            f"(allowed: {listing(rules.key_algorithms)})",
            label,
        )
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < rules.min_rsa_bits:
        out.add(
            "key.rsa.too_small",
            f"RSA key of {public_key.key_size} bits is too small; the policy requires "
            f"at least {rules.min_rsa_bits} bits",
            label,
        )
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = _CURVE_NAMES.get(public_key.curve.name, public_key.curve.name)
        if curve not in rules.ec_curves:
            out.add(
                "key.ec.curve_not_allowed",
                f"Elliptic curve '{curve}' is not allowed by the policy "
                f"(allowed: {listing(rules.ec_curves)})",
                curve,
            )


# --- key usage (RFC 5280 §4.2.1.3) -------------------------------------------------------


def _requested_key_usages(usage: x509.KeyUsage) -> frozenset[str]:
    chosen = set()
    for name in KEY_USAGE_NAMES:
        try:
            if getattr(usage, name):
                chosen.add(name)
        except ValueError:
            pass  # encipher_only/decipher_only are undefined without key_agreement
    return frozenset(chosen)


def _key_usages(
    extensions: x509.Extensions,
    profile: Profile,
    algorithm: str,
    rules: PolicyRules,
    out: Findings,
) -> frozenset[str]:
    compatible = _USAGES_FOR_ALGORITHM.get(algorithm)
    title = _ALGORITHM_TITLES.get(algorithm, algorithm)
    requested_ext = _extension(extensions, x509.KeyUsage)
    from_csr = requested_ext is not None
    if requested_ext is not None:
        usages = _requested_key_usages(requested_ext)
        if not usages:
            # RFC 5280 §4.2.1.3: when the extension appears, at least one bit MUST be set.
            out.add("key_usage.empty", "The CSR requests a key usage extension with no usage set")
        for name in sorted(usages - _CA_USAGES):
            if compatible is not None and name not in compatible:
                rfc = _USAGE_RFC[algorithm]
                out.add(
                    "key_usage.incompatible_key",
                    f"Key usage '{name}' cannot be used with an {title} key ({rfc})",
                    name,
                )
    else:
        defaults = set(profile.key_usages)
        for name in sorted(defaults - set(KEY_USAGE_NAMES)):
            out.add(
                "key_usage.unknown",
                f"The profile's default key usage '{name}' is not a known key usage",
                name,
            )
        defaults &= set(KEY_USAGE_NAMES)
        # Defaults are meant for any key type: quietly drop what this key cannot do
        # (e.g. keyEncipherment for EC, RFC 8813 §3) instead of refusing the request.
        usable = defaults if compatible is None else defaults & compatible
        if "key_agreement" not in usable:
            usable -= _AGREEMENT_MODIFIERS
        if defaults and not usable:
            out.add(
                "key_usage.none_usable",
                f"None of the profile's default key usages ({listing(sorted(defaults))}) "
                f"can be used with an {title} key",
            )
        usages = frozenset(usable)
    for name in sorted(usages & _CA_USAGES):
        out.add(
            "key_usage.ca",
            f"Key usage '{name}' is only for CA certificates, which cannot be enrolled "
            "through a profile",
            name,
        )
    for name in sorted(usages - _CA_USAGES - set(rules.allowed_key_usages)):
        out.add(
            "key_usage.not_allowed",
            f"Key usage '{name}' is not allowed by the policy "
            f"(allowed: {listing(rules.allowed_key_usages)})",
            name,
        )
    where = "the CSR does not request it"
    if not from_csr:
        where = f"the profile's default key usages for an {title} key do not include it"
    for name in rules.required_key_usages:
        if name not in usages:
            out.add(
                "key_usage.required",
                f"Key usage '{name}' is required by the policy, but {where}",
                name,
            )
    return usages


# --- extended key usage (RFC 5280 §4.2.1.12) ---------------------------------------------


def _oids(names_: Iterable[str]) -> dict[x509.ObjectIdentifier, str]:
    result: dict[x509.ObjectIdentifier, str] = {}
    for name in names_:
        try:
            result.setdefault(eku_oid(name), name)
        except ValueError:
            continue  # an unknown name in the policy can match nothing
    return result


def _extended_key_usages(
    extensions: x509.Extensions, profile: Profile, rules: PolicyRules, out: Findings
) -> tuple[x509.ObjectIdentifier, ...]:
    requested_ext = _extension(extensions, x509.ExtendedKeyUsage)
    where = "the CSR does not request it"
    if requested_ext is not None:
        ekus = tuple(dict.fromkeys(requested_ext))
    else:
        where = "the profile's default extended key usages do not include it"
        chosen: list[x509.ObjectIdentifier] = []
        for name in profile.extended_key_usages:
            try:
                chosen.append(eku_oid(name))
            except ValueError:
                out.add(
                    "eku.unknown",
                    f"The profile's default extended key usage '{name}' is not a known name or OID",
                    name,
                )
        ekus = tuple(dict.fromkeys(chosen))
    allowed = _oids(rules.allowed_extended_key_usages)
    for oid in ekus:
        if oid not in allowed:
            out.add(
                "eku.not_allowed",
                f"Extended key usage '{eku_name(oid)}' is not allowed by the policy "
                f"(allowed: {listing(rules.allowed_extended_key_usages)})",
                eku_name(oid),
            )
    for oid, name in _oids(rules.required_extended_key_usages).items():
        if oid not in ekus:
            out.add(
                "eku.required",
                f"Extended key usage '{name}' is required by the policy, but {where}",
                name,
            )
    return ekus


# --- validity (RFC 5280 §4.1.2.5) --------------------------------------------------------


def _validity(
    profile: Profile,
    rules: PolicyRules,
    now: datetime,
    requested_days: int | None,
    ca_not_after: datetime | None,
    out: Findings,
) -> tuple[datetime, datetime]:
    limit = rules.max_validity_days
    if requested_days is not None:
        days = requested_days
        if days <= 0:
            out.add(
                "validity.invalid",
                f"Requested validity of {days} days is not a positive number of days",
                str(days),
            )
        elif days > limit:
            out.add(
                "validity.too_long",
                f"Requested validity of {days} days exceeds the policy maximum of {limit} days",
                str(days),
            )
    else:
        # A profile default above the maximum is the operator's slip, not the
        # requester's: issue for the maximum instead of refusing.
        days = min(profile.validity_days, limit)
        if days <= 0:
            out.add(
                "validity.invalid",
                f"The profile's validity of {profile.validity_days} days is not a "
                "positive number of days",
                str(profile.validity_days),
            )
    not_before = now - CLOCK_SKEW
    not_after = now + timedelta(days=max(days, 0))
    # A certificate outliving its issuer would fail path validation after the CA expires
    # (RFC 5280 §6.1.3 (a)(2)); cut it to the CA's end instead.
    if ca_not_after is not None and not_after > ca_not_after:
        not_after = ca_not_after
        if not_after <= now:
            out.add(
                "validity.ca_expired",
                f"The issuing CA expires at {ca_not_after.isoformat()}, so no "
                "certificate can be valid after now",
            )
    return not_before, not_after


# --- profile checks for the REST API -----------------------------------------------------

# Key types a profile may name for server-side generation, as (algorithm, size or curve).
_KEY_TYPE_PARTS: dict[str, tuple[str, str]] = {
    "ec-p256": ("ec", "P-256"),
    "ec-p384": ("ec", "P-384"),
    "ec-p521": ("ec", "P-521"),
    "rsa-2048": ("rsa", "2048"),
    "rsa-3072": ("rsa", "3072"),
    "rsa-4096": ("rsa", "4096"),
    "ed25519": ("ed25519", ""),
    "ed448": ("ed448", ""),
}


def validate_profile_against_policy(profile: Profile, rules: PolicyRules) -> list[str]:
    """Problems with a profile's defaults under `rules`, in plain English; empty when the
    profile is usable. The REST API refuses a profile for which this is non-empty."""
    problems: list[str] = []
    if profile.validity_days <= 0:
        problems.append(f"validity_days must be positive (got {profile.validity_days})")
    elif profile.validity_days > rules.max_validity_days:
        problems.append(
            f"validity_days {profile.validity_days} exceeds the policy maximum of "
            f"{rules.max_validity_days}"
        )
    if profile.renew_before_days < 0:
        problems.append(f"renew_before_days must not be negative (got {profile.renew_before_days})")
    elif 0 < profile.validity_days <= profile.renew_before_days:
        problems.append(
            f"renew_before_days ({profile.renew_before_days}) must be less than "
            f"validity_days ({profile.validity_days})"
        )

    usages = set(profile.key_usages)
    for name in sorted(usages - set(KEY_USAGE_NAMES)):
        problems.append(f"key usage '{name}' is not a known key usage")
    for name in sorted(usages & _CA_USAGES):
        problems.append(f"key usage '{name}' is for CA certificates only")
    for name in sorted(usages & set(KEY_USAGE_NAMES) - _CA_USAGES - set(rules.allowed_key_usages)):
        problems.append(f"key usage '{name}' is not allowed by the policy")
    for name in rules.required_key_usages:
        if name not in usages:
            problems.append(f"key usage '{name}' is required by the policy but not in the defaults")
    if usages & _AGREEMENT_MODIFIERS and "key_agreement" not in usages:
        problems.append("encipher_only/decipher_only need key_agreement (RFC 5280 §4.2.1.3)")

    ekus: set[x509.ObjectIdentifier] = set()
    for name in profile.extended_key_usages:
        try:
            ekus.add(eku_oid(name))
        except ValueError:
            problems.append(f"extended key usage '{name}' is not a known name or OID")
            continue
        if eku_oid(name) not in _oids(rules.allowed_extended_key_usages):
            problems.append(f"extended key usage '{name}' is not allowed by the policy")
    for oid, name in _oids(rules.required_extended_key_usages).items():
        if oid not in ekus:
            problems.append(
                f"extended key usage '{name}' is required by the policy but not in the defaults"
            )

    key_type = str(profile.default_key_type)
    algorithm, detail = _KEY_TYPE_PARTS.get(key_type, (key_type, ""))
    if algorithm not in rules.key_algorithms:
        problems.append(
            f"default key type '{key_type}' uses an algorithm the policy does not allow"
        )
    elif algorithm == "rsa" and int(detail) < rules.min_rsa_bits:
        problems.append(
            f"default key type '{key_type}' is below the policy minimum of "
            f"{rules.min_rsa_bits} RSA bits"
        )
    elif algorithm == "ec" and detail not in rules.ec_curves:
        problems.append(f"default key type '{key_type}' uses a curve the policy does not allow")
    compatible = _USAGES_FOR_ALGORITHM.get(algorithm)
    known = usages & set(KEY_USAGE_NAMES)
    if compatible is not None and known and not known & compatible:
        problems.append(
            f"none of the default key usages can be used with the default key type '{key_type}'"
        )
    return problems
