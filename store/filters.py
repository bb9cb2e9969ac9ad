"""Query filters for the listing repositories (certificates, audit)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from gateway.core.errors import InvalidInput

CertificateListStatus = Literal["active", "revoked", "expired"]
CERTIFICATE_LIST_STATUSES: tuple[str, ...] = get_args(CertificateListStatus)


@dataclass(frozen=True)
class CertificateFilter:
    """Every field left None is ignored; the rest are ANDed.

    status: "active" = not revoked and not yet expired; "expired" = not revoked but
    `not_after < now`; "revoked" = revoked (expired or not). `now` defaults to the
    current time. expiring_before: `not_after < expiring_before` (any status; combine
    with status="active" for "about to expire"). search: case-insensitive substring of
    the common name or of any SAN (SANs are typed, e.g. "dns:www.example.com").
    """

    project_id: uuid.UUID | None = None
    application_id: uuid.UUID | None = None
    profile_id: uuid.UUID | None = None
    ca_id: uuid.UUID | None = None
    status: CertificateListStatus | None = None
    expiring_before: datetime | None = None
    search: str | None = None
    now: datetime | None = None

    def __post_init__(self) -> None:
        # The REST layer passes query strings straight through: refuse junk here, once.
        if self.status is not None and self.status not in CERTIFICATE_LIST_STATUSES:
            raise InvalidInput(
                f"unknown certificate status {self.status!r}; "
                f"expected one of {', '.join(CERTIFICATE_LIST_STATUSES)}"
            )


@dataclass(frozen=True)
class AuditFilter:
    """Every field left None is ignored; `since` is inclusive, `until` exclusive."""

    project_id: uuid.UUID | None = None
    application_id: uuid.UUID | None = None
    actor: str | None = None
    action: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
