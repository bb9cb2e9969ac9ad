"""Wire types, one class per RFC 8555 object (certbot `acme/messages.py` style): josepy
JSONObjectWithFields, snake_case attributes, camelCase JSON. Request payloads decode with
`decode(cls, payload)`, which turns every decoding error into a `malformed` problem."""

from __future__ import annotations

from typing import Any, TypeVar

from josepy import json_util as jose
from josepy.errors import DeserializationError

from gateway.core.acme import Identifier, IdentifierType
from protocols.acme.problems import malformed

T = TypeVar("T", bound=jose.JSONObjectWithFields)


def decode(cls: type[T], payload: dict[str, Any]) -> T:
    try:
        return cls.from_json(payload)
    except (DeserializationError, TypeError, ValueError, AttributeError) as err:
        raise malformed(f"invalid {cls.__name__} payload: {err}") from None


def _identifier(value: Any) -> Identifier:
    if not isinstance(value, dict) or not isinstance(value.get("value"), str):
        raise DeserializationError("identifier must be {type, value}")
    try:
        kind = IdentifierType(str(value.get("type")))
    except ValueError:
        raise DeserializationError(f"unsupported identifier type {value.get('type')!r}") from None
    return Identifier(kind, value["value"])


def identifier_json(identifier: Identifier) -> dict[str, str]:
    return {"type": identifier.type.value, "value": identifier.value}


def _identifiers(value: Any) -> tuple[Identifier, ...]:
    if not isinstance(value, list):
        raise DeserializationError("identifiers must be a list")
    return tuple(_identifier(v) for v in value)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DeserializationError("must be a list of strings")
    return tuple(value)


def _optional_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise DeserializationError("must be a boolean")
    return value


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DeserializationError("must be a JSON object")
    return dict(value)


def _optional_str(value: Any) -> str:
    if not isinstance(value, str):
        raise DeserializationError("must be a string")
    return value


# --- request payloads ---------------------------------------------------------------------


class NewAccount(jose.JSONObjectWithFields):
    """RFC 8555 §7.3 newAccount payload (also the account-update payload, §7.3.2)."""

    contact: tuple[str, ...] = jose.field("contact", omitempty=True, default=(), decoder=_strings)
    status: str | None = jose.field("status", omitempty=True, decoder=_optional_str)
    terms_of_service_agreed: bool | None = jose.field(
        "termsOfServiceAgreed", omitempty=True, decoder=_optional_bool
    )
    only_return_existing: bool = jose.field(
        "onlyReturnExisting", omitempty=True, default=False, decoder=_optional_bool
    )
    external_account_binding: dict[str, Any] | None = jose.field(
        "externalAccountBinding", omitempty=True, decoder=_object
    )


class NewOrder(jose.JSONObjectWithFields):
    """RFC 8555 §7.4 newOrder payload; `replaces` from RFC 9773 §5."""

    identifiers: tuple[Identifier, ...] = jose.field("identifiers", decoder=_identifiers)
    not_before: str | None = jose.field("notBefore", omitempty=True, decoder=_optional_str)
    not_after: str | None = jose.field("notAfter", omitempty=True, decoder=_optional_str)
    replaces: str | None = jose.field("replaces", omitempty=True, decoder=_optional_str)
    profile: str | None = jose.field("profile", omitempty=True, decoder=_optional_str)


class Finalize(jose.JSONObjectWithFields):
    """RFC 8555 §7.4 finalize payload: base64url DER CSR."""

    csr: str = jose.field("csr", decoder=_optional_str)


class Revocation(jose.JSONObjectWithFields):
    """RFC 8555 §7.6 revokeCert payload."""

    certificate: str = jose.field("certificate", decoder=_optional_str)
    reason: int | None = jose.field("reason", omitempty=True)


class KeyChange(jose.JSONObjectWithFields):
    """RFC 8555 §7.3.5 inner payload."""

    account: str = jose.field("account", decoder=_optional_str)
    old_key: dict[str, Any] = jose.field("oldKey", decoder=_object)


class AuthorizationUpdate(jose.JSONObjectWithFields):
    """RFC 8555 §7.5.2 deactivation payload."""

    status: str | None = jose.field("status", omitempty=True, decoder=_optional_str)


# --- resources ----------------------------------------------------------------------------


class AccountResource(jose.JSONObjectWithFields):
    status: str = jose.field("status")
    contact: tuple[str, ...] = jose.field("contact", omitempty=True, default=())
    orders: str = jose.field("orders")
    terms_of_service_agreed: bool | None = jose.field("termsOfServiceAgreed", omitempty=True)
    external_account_binding: dict[str, Any] | None = jose.field(
        "externalAccountBinding", omitempty=True
    )


class OrderResource(jose.JSONObjectWithFields):
    status: str = jose.field("status")
    expires: str = jose.field("expires")
    identifiers: list[dict[str, str]] = jose.field("identifiers")
    authorizations: list[str] = jose.field("authorizations")
    finalize: str = jose.field("finalize")
    not_before: str | None = jose.field("notBefore", omitempty=True)
    not_after: str | None = jose.field("notAfter", omitempty=True)
    error: dict[str, Any] | None = jose.field("error", omitempty=True)
    certificate: str | None = jose.field("certificate", omitempty=True)
    replaces: str | None = jose.field("replaces", omitempty=True)


class ChallengeResource(jose.JSONObjectWithFields):
    type: str = jose.field("type")
    url: str = jose.field("url")
    status: str = jose.field("status")
    token: str = jose.field("token")
    validated: str | None = jose.field("validated", omitempty=True)
    error: dict[str, Any] | None = jose.field("error", omitempty=True)


class AuthorizationResource(jose.JSONObjectWithFields):
    identifier: dict[str, str] = jose.field("identifier")
    status: str = jose.field("status")
    expires: str = jose.field("expires")
    challenges: list[dict[str, Any]] = jose.field("challenges")
    wildcard: bool | None = jose.field("wildcard", omitempty=True)


class OrdersList(jose.JSONObjectWithFields):
    orders: list[str] = jose.field("orders")
