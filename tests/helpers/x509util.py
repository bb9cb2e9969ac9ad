"""CSR and certificate helpers for tests (built with cryptography, checked with openssl)."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID


def make_key(
    kind: str = "ec",
) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(65537, 2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(
    cn: str | None = "app.localhost",
    sans: list[str] | None = None,
    kind: str = "ec",
    key: object | None = None,
) -> tuple[str, object]:
    key = key or make_key(kind)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    )
    names: list[x509.GeneralName] = []
    for san in sans if sans is not None else ([cn] if cn else []):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def load_cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def san_values(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    }


def openssl_verify(
    tmp: Path, root_pem: str, chain_pem: str, leaf_pem: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    (tmp / "root.pem").write_text(root_pem)
    (tmp / "chain.pem").write_text(chain_pem)
    (tmp / "leaf.pem").write_text(leaf_pem)
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(tmp / "root.pem"),
            "-untrusted",
            str(tmp / "chain.pem"),
            *extra,
            str(tmp / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
