"""The organization's certificate inventory (Product Admin): every certificate of every
project, whether issued for an Application or through a legacy profile endpoint (no
application), filtered and paginated like an application's own list."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.core.errors import InvalidInput
from gateway.core.model import Certificate, Page
from gateway.services.graph import Services
from gateway.targets import SLUG, active_project
from store.db import Tx
from store.filters import CertificateFilter, CertificateListStatus


@dataclass(frozen=True)
class InventoryItem:
    certificate: Certificate
    # The slug of the certificate's application; None for legacy issuance.
    application: str | None


async def _application_id(tx: Tx, ref: str) -> uuid.UUID:
    """`ref` is an application's id (any project, so the old project's applications stay
    reachable after a switch) or a slug of the active project's. Unknown: invalid input,
    like an unknown profile in an application's list, rather than a silently empty page."""
    try:
        app_id = uuid.UUID(ref)
    except ValueError:
        if not SLUG.fullmatch(ref):
            raise InvalidInput(f"unknown application '{ref[:63]}'") from None
        project = await active_project(tx)
        app = await tx.applications.get_by_slug(project.id, ref)
        if app is None:
            raise InvalidInput(f"unknown application '{ref}' in the active project") from None
        return app.id
    if await tx.applications.get(app_id) is None:
        raise InvalidInput(f"unknown application {app_id}")
    return app_id


async def list_inventory(
    services: Services,
    *,
    project_id: uuid.UUID | None = None,
    profile_id: uuid.UUID | None = None,
    application: str | None = None,
    status: CertificateListStatus | None = None,
    expiring_before: datetime | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[InventoryItem]:
    """A page of every project's certificates, newest first. A project or profile id that
    does not exist is invalid input (a typo should not look like an empty inventory)."""
    async with services.db.transaction(read_only=True) as tx:
        if project_id is not None and await tx.projects.get(project_id) is None:
            raise InvalidInput(f"unknown project {project_id}")
        if profile_id is not None and await tx.profiles.get(profile_id) is None:
            raise InvalidInput(f"unknown profile {profile_id}")
        application_id = await _application_id(tx, application) if application else None
        page = await tx.certificates.list(
            CertificateFilter(
                project_id=project_id,
                application_id=application_id,
                profile_id=profile_id,
                status=status,
                now=services.clock.now(),
                expiring_before=expiring_before,
                search=search,
            ),
            limit,
            offset,
        )
        page = dataclasses.replace(
            page, items=tuple(await tx.certificates.with_renewed_by(page.items))
        )
        # One read per distinct application of the page (a page holds few of them).
        slugs: dict[uuid.UUID, str | None] = {}
        for cert in page.items:
            if cert.application_id is not None and cert.application_id not in slugs:
                app = await tx.applications.get(cert.application_id)
                slugs[cert.application_id] = app.slug if app is not None else None
    items = tuple(
        InventoryItem(c, slugs.get(c.application_id) if c.application_id else None)
        for c in page.items
    )
    return Page(items, page.total, page.limit, page.offset)
