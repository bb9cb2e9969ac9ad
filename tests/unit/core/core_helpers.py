"""Helpers for gateway.core tests: cached keys, a CSR builder, a demo-like policy and
profile (DESIGN.md: the demo `tls-server` profile). A plain module with a unique name
rather than a conftest, so test modules can import the builders for parametrize."""

from __future__ import annotations

import dataclasses
import ipaddress
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from gateway.core.errors import PolicyDenied, Violation
from gateway.core.model import KeyType, NameRule, PolicyRules, Profile, SubjectRule
from gateway.core.policy import evaluate
from gateway.core.template import CertificateTemplate

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

DEMO_RULES = PolicyRules(
    subject=(SubjectRule("CN"),),
    dns=NameRule(allow=("localhost", "*.localhost", "*.test", "*.example.com")),
    ip=NameRule(allow=("127.0.0.0/8", "::1/128")),
)

_KEY_MAKERS: dict[str, Callable[[], Any]] = {
    "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ec-p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ec-k256": lambda: ec.generate_private_key(ec.SECP256K1()),
    "rsa-1024": lambda: rsa.generate_private_key(65537, 1024),
    "rsa-2048": lambda: rsa.generate_private_key(65537, 2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
}
_KEYS: dict[str, Any] = {}

_ATTRS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "L": NameOID.LOCALITY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
}


def key(kind: str) -> Any:
    """A private key of `kind`, generated once per test session (RSA is slow)."""
    if kind not in _KEYS:
        _KEYS[kind] = _KEY_MAKERS[kind]()
    return _KEYS[kind]


def general_name(spec: str | x509.GeneralName) -> x509.GeneralName:
    """ "dns:a.test", "ip:::1", "email:a@b.test", "uri:https://x", "rid:1.2.3"."""
    if not isinstance(spec, str):
        return spec
    kind, _, value = spec.partition(":")
    if kind == "dns":
        return x509.DNSName(value)
    if kind == "ip":
        return x509.IPAddress(ipaddress.ip_address(value))
    if kind == "email":
        return x509.RFC822Name(value)
    if kind == "uri":
        return x509.UniformResourceIdentifier(value)
    if kind == "rid":
        return x509.RegisteredID(x509.ObjectIdentifier(value))
    raise ValueError(spec)


def key_usage(names: Iterable[str]) -> x509.KeyUsage:
    chosen = set(names)
    fields = (
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
    return x509.KeyUsage(**{name: name in chosen for name in fields})


def build_csr(
    *,
    key_kind: str = "ec",
    cn: str | None = "app.localhost",
    subject: Sequence[tuple[str, str]] = (),
    sans: Sequence[str | x509.GeneralName] = ("dns:app.localhost",),
    usages: Iterable[str] | None = None,
    ekus: Sequence[x509.ObjectIdentifier] | None = None,
    ca: bool | None = None,
    extra: Sequence[x509.ExtensionType] = (),
) -> x509.CertificateSigningRequest:
    """A signed CSR. `subject` adds attributes after the CN, by short name."""
    private = key(key_kind)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn is not None else []
    attrs += [x509.NameAttribute(_ATTRS[name], value) for name, value in subject]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if sans:
        names = [general_name(s) for s in sans]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usages is not None:
        builder = builder.add_extension(key_usage(usages), critical=True)
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    for ext in extra:
        builder = builder.add_extension(ext, critical=False)
    algorithm = None if key_kind in ("ed25519", "ed448") else hashes.SHA256()
    return builder.sign(private, algorithm)


def make_profile(**changes: Any) -> Profile:
    values: dict[str, Any] = {
        "id": uuid.UUID(int=1),
        "project_id": uuid.UUID(int=2),
        "slug": "tls-server",
        "name": "TLS server",
        "ca_id": uuid.UUID(int=3),
        "policy_id": uuid.UUID(int=4),
        "validity_days": 90,
        "key_usages": ("digital_signature", "key_encipherment"),
        "extended_key_usages": ("server_auth",),
        "renew_before_days": 30,
        "default_key_type": KeyType.EC_P256,
        "enrollment": {},
        "created_at": NOW,
    }
    values.update(changes)
    return Profile(**values)


def rules(**changes: Any) -> PolicyRules:
    """DEMO_RULES with some fields changed."""
    return dataclasses.replace(DEMO_RULES, **changes)


def run(
    csr_args: dict[str, Any] | None = None,
    policy: PolicyRules = DEMO_RULES,
    profile_args: dict[str, Any] | None = None,
    **kwargs: Any,
) -> CertificateTemplate:
    """evaluate() on a freshly built CSR and profile; kwargs go to evaluate."""
    csr = build_csr(**(csr_args or {}))
    return evaluate(csr, make_profile(**(profile_args or {})), policy, NOW, **kwargs)


def denied(
    csr_args: dict[str, Any] | None = None,
    policy: PolicyRules = DEMO_RULES,
    profile_args: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[Violation, ...]:
    """The violations evaluate() raises; fails the test if it does not raise."""
    with pytest.raises(PolicyDenied) as info:
        run(csr_args, policy, profile_args, **kwargs)
    assert info.value.code == "policy_denied"
    return info.value.violations
