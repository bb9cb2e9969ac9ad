"""EST (RFC 7030) domain types and the port the protocol front-end calls.

`protocols.est` speaks the wire format; everything it needs from the rest of the gateway
(resolving a URL to its enrollment target, checking credentials, issuing) goes through
`EstBackend`, implemented by `protocols.est.settings`. What a URL names is the gateway's one
`EnrollmentTarget` (gateway.core.target); its typed EST settings are `target.methods.est`.
Settings live per attached profile (`ProfileAttachment.methods["est"]`) or, for legacy
profiles, in `Profile.enrollment["est"]`; the Basic-auth passphrase is stored apart, as a
salted hash.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509

from gateway.core.enrollment import EnrollmentRequest, Issued, Pending
from gateway.core.errors import InvalidInput
from gateway.core.model import Certificate, PolicyRules

if TYPE_CHECKING:  # gateway.core.target imports this module's EstSettings (via methods)
    from gateway.core.target import EnrollmentTarget

# DESIGN.md, URLs: the application-scoped form, and one segment that is either the label
# "{app}.{profile}" (slugs cannot contain dots) or a legacy profile's UUID.
NEW_PATH = "/.well-known/est/applications/{app}/profiles/{profile}/{op}"
LABEL_PATH = "/.well-known/est/{label}/{op}"
OPERATIONS = ("cacerts", "simpleenroll", "simplereenroll", "csrattrs", "serverkeygen")
DEFAULT_USERNAME = "est"
MIN_PASSWORD_LENGTH = 8


class EstAuth(enum.StrEnum):
    """How a device authenticates an enrollment (RFC 7030 §3.2.3 HTTP, §3.3.2 TLS)."""

    BASIC = "basic"
    CLIENT_CERT = "client_cert"


@dataclass(frozen=True)
class EstSettings:
    """Non-secret EST settings of one enrollment target (what the REST API shows)."""

    enabled: bool = False
    # Methods a device may use for simpleenroll/serverkeygen; simplereenroll always needs
    # the certificate being renewed (RFC 7030 §4.2.2).
    accepted: tuple[EstAuth, ...] = (EstAuth.BASIC, EstAuth.CLIENT_CERT)
    # Methods that must all be present (e.g. a factory certificate AND the passphrase).
    required: tuple[EstAuth, ...] = ()
    require_tls_unique: bool = False
    username: str = DEFAULT_USERNAME
    # PEM certificates that issue factory (bootstrap) device certificates.
    bootstrap_ca_pem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "accepted_auth": [a.value for a in self.accepted],
            "required_auth": [a.value for a in self.required],
            "require_tls_unique": self.require_tls_unique,
            "username": self.username,
            "bootstrap_ca_pem": self.bootstrap_ca_pem,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> EstSettings:
        """Parse stored or submitted settings; InvalidInput names the bad field."""
        data = data or {}
        enabled = data.get("enabled", False)
        tls_unique = data.get("require_tls_unique", False)
        if not isinstance(enabled, bool) or not isinstance(tls_unique, bool):
            raise InvalidInput("enabled and require_tls_unique must be booleans")
        accepted = _auth_list(data.get("accepted_auth", ["basic", "client_cert"]), "accepted_auth")
        required = _auth_list(data.get("required_auth", []), "required_auth")
        if not accepted:
            raise InvalidInput("accepted_auth must name at least one method")
        if not set(required) <= set(accepted):
            raise InvalidInput("every required_auth method must also be in accepted_auth")
        username = data.get("username", DEFAULT_USERNAME)
        if not isinstance(username, str) or not 1 <= len(username) <= 64 or ":" in username:
            raise InvalidInput("username must be 1 to 64 characters without ':' (RFC 7617 §2)")
        bundle = data.get("bootstrap_ca_pem", "") or ""
        if not isinstance(bundle, str):
            raise InvalidInput("bootstrap_ca_pem must be a PEM string")
        if bundle.strip():
            load_bundle(bundle)  # validates
        return cls(enabled, accepted, required, tls_unique, username, bundle)


def _auth_list(value: Any, what: str) -> tuple[EstAuth, ...]:
    if not isinstance(value, list):
        raise InvalidInput(f"{what} must be a list of: basic, client_cert")
    out: list[EstAuth] = []
    for item in value:
        try:
            method = EstAuth(item)
        except ValueError:
            raise InvalidInput(f"{what}: unknown method {item!r} (basic, client_cert)") from None
        if method not in out:
            out.append(method)
    return tuple(out)


def load_bundle(pem: str) -> list[x509.Certificate]:
    """CA certificates of a bootstrap bundle; InvalidInput unless each one is a CA."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as err:
        raise InvalidInput("bootstrap_ca_pem holds no valid PEM certificates") from err
    for cert in certs:
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise InvalidInput(
                f"bootstrap_ca_pem: '{cert.subject.rfc4514_string()}' is not a CA certificate"
            )
    return certs


def est_label(target: EnrollmentTarget) -> str:
    """How EST names a target in its answers and the Basic realm: the one-segment URL
    label "{app}.{profile}" (DESIGN.md, URLs), or the legacy profile's id."""
    if target.application is None:
        return str(target.profile.id)
    return f"{target.application.slug}.{target.profile.slug}"


def chain_problem(
    cert: x509.Certificate, anchors: Iterable[x509.Certificate], now: datetime
) -> str | None:
    """Why `cert` is not a currently valid certificate issued directly by one of `anchors`;
    None when it is. Every certificate of a bootstrap bundle is a trust anchor of its own
    (an operator lists the intermediate that signs factory certificates), so one step is
    enough; TLS already proved possession of the key (RFC 7030 §3.3.2)."""
    pool = list(anchors)
    if not pool:
        return "no bootstrap CA is configured for client certificates here"
    subject = cert.subject.rfc4514_string()
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        return f"client certificate '{subject}' is expired or not yet valid"
    for anchor in pool:
        if _issued(cert, anchor):
            if not anchor.not_valid_before_utc <= now < anchor.not_valid_after_utc:
                return f"the CA that issued '{subject}' is expired or not yet valid"
            return None
    return f"client certificate '{subject}' was not issued by a configured bootstrap CA"


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, ValueError, TypeError (unsupported key types)
        return False
    return True


class EstBackend(Protocol):
    """What the EST front-end needs; errors are gateway.core.errors (NotFound → 404,
    MethodNotEnabled → 404, Unauthorized → 401, PolicyDenied → 403, BadCSR → 400)."""

    async def resolve(self, application: str, profile: str) -> EnrollmentTarget:
        """The attached profile, if EST is enabled there; NotFound otherwise."""

    async def resolve_legacy(self, profile_id: uuid.UUID) -> EnrollmentTarget:
        """The legacy profile, if EST is enabled there; NotFound otherwise."""

    async def has_password(self, target: EnrollmentTarget) -> bool:
        """Whether an EST passphrase is set for the target (else Basic cannot succeed)."""

    async def ca_certificates(self, target: EnrollmentTarget) -> list[x509.Certificate]:
        """The profile's issuing CA first, then its issuers up to the root (RFC 7030 §4.1.3)."""

    async def check_password(
        self, target: EnrollmentTarget, username: str, password: str
    ) -> bool: ...

    async def current_certificate(
        self, target: EnrollmentTarget, cert: x509.Certificate
    ) -> Certificate:
        """The stored certificate `cert` is, if we issued it under this target's profile CA
        and it is active and unexpired; Unauthorized (with the reason) otherwise."""

    async def enrollment_cert_problem(
        self, target: EnrollmentTarget, cert: x509.Certificate
    ) -> str | None:
        """Why a TLS client certificate does not authenticate simpleenroll/serverkeygen:
        it must come from the target's bootstrap CA bundle (factory certificates) or be one
        we issued under the profile's CA that is still good; None when it does."""

    async def policy(self, target: EnrollmentTarget) -> PolicyRules: ...

    async def enroll(self, request: EnrollmentRequest) -> Issued | Pending: ...

    async def server_keygen(
        self, target: EnrollmentTarget, request: EnrollmentRequest
    ) -> tuple[Issued | Pending, bytes | None]:
        """Enroll a fresh key of the profile's type for the CSR's names (RFC 7030 §4.4);
        returns the outcome and the PKCS#8 DER key (None while pending). Under approval the
        key is held, encrypted, until the same requester repeats the same CSR after the
        decision (§4.2.3), and handed out once."""
