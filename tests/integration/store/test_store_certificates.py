"""Certificate listing (filters, pagination), revocation and the CRL view."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from store_factories import NOW, World, add_world, application, make_world

from gateway.core.errors import InvalidInput
from gateway.core.model import Certificate, CertificateStatus, RevocationReason, new_id
from store.db import Database
from store.filters import CertificateFilter

LATER = NOW + timedelta(days=200)  # the default certificate (90 days) is expired by then


async def _seed(database: Database) -> tuple[World, World, dict[str, Certificate]]:
    """Nine certificates in two worlds, created one minute apart (c0 oldest, foreign newest)."""
    async with database.transaction() as tx:
        w = await add_world(tx)
        other = await add_world(tx)
        app2 = application(w.project.id, slug="second-app")
        await tx.applications.add(app2)
        specs: dict[str, dict[str, Any]] = {
            "c0": {"common_name": "www.example.com"},
            "c1": {"common_name": "API.Example.com", "sans": ("dns:api.example.com",)},
            "c2": {"common_name": None, "sans": ("dns:mail.test", "email:ops@corp.test")},
            "c3": {"application_id": app2.id, "not_after": NOW + timedelta(days=365)},
            "c4": {"application_id": None, "not_after": NOW + timedelta(days=10)},
            "c5": {"common_name": "100%_real", "sans": ()},
            "c6": {"not_after": NOW + timedelta(days=400)},
            "c7": {"common_name": "revoked.example.com", "not_after": NOW + timedelta(days=365)},
        }
        certs: dict[str, Certificate] = {}
        for i, (name, spec) in enumerate(specs.items()):
            cert = w.certificate(created_at=NOW + timedelta(minutes=i), **spec)
            await tx.certificates.add(cert)
            certs[name] = cert
        foreign = other.certificate(created_at=NOW + timedelta(minutes=10))
        await tx.certificates.add(foreign)
        certs["foreign"] = foreign
        await tx.certificates.revoke(certs["c7"].id, NOW, RevocationReason.SUPERSEDED)
        await tx.certificates.revoke(certs["c0"].id, NOW, RevocationReason.KEY_COMPROMISE)
    return w, other, certs


def _names(items: tuple[Certificate, ...], certs: dict[str, Certificate]) -> list[str]:
    by_id = {c.id: name for name, c in certs.items()}
    return [by_id[c.id] for c in items]


async def test_filters_and_pagination(database: Database) -> None:
    w, other, certs = await _seed(database)
    app2_id = certs["c3"].application_id

    cases: list[tuple[CertificateFilter, list[str]]] = [
        (
            CertificateFilter(project_id=w.project.id),
            ["c7", "c6", "c5", "c4", "c3", "c2", "c1", "c0"],
        ),
        (CertificateFilter(project_id=other.project.id), ["foreign"]),
        (CertificateFilter(application_id=w.app.id), ["c7", "c6", "c5", "c2", "c1", "c0"]),
        (CertificateFilter(application_id=app2_id), ["c3"]),
        (CertificateFilter(profile_id=other.profile.id), ["foreign"]),
        (CertificateFilter(ca_id=w.ca.id, status="revoked"), ["c7", "c0"]),
        (
            CertificateFilter(project_id=w.project.id, status="active", now=LATER),
            ["c6", "c3"],
        ),
        (
            CertificateFilter(project_id=w.project.id, status="expired", now=LATER),
            ["c5", "c4", "c2", "c1"],
        ),
        (
            CertificateFilter(project_id=w.project.id, status="active", now=NOW),
            ["c6", "c5", "c4", "c3", "c2", "c1"],
        ),
        (
            CertificateFilter(expiring_before=NOW + timedelta(days=30)),
            ["c4"],
        ),
        (
            CertificateFilter(status="active", expiring_before=NOW + timedelta(days=100), now=NOW),
            ["foreign", "c5", "c4", "c2", "c1"],
        ),
        (
            CertificateFilter(search="EXAMPLE.COM", project_id=w.project.id),
            ["c7", "c6", "c4", "c3", "c1", "c0"],
        ),
        (CertificateFilter(search="corp.test"), ["c2"]),
        (CertificateFilter(search="dns:mail"), ["c2"]),
        (CertificateFilter(search="api.example"), ["c1"]),
        (CertificateFilter(search="100%_"), ["c5"]),
        (CertificateFilter(search="%"), ["c5"]),
        (CertificateFilter(search="_"), ["c5"]),
        (CertificateFilter(search="nothing-like-this"), []),
        (CertificateFilter(search="www", application_id=w.app.id, status="revoked"), ["c7", "c0"]),
    ]
    async with database.transaction(read_only=True) as tx:
        for flt, expected in cases:
            page = await tx.certificates.list(flt, limit=100, offset=0)
            assert _names(page.items, certs) == expected, flt
            assert page.total == len(expected), flt

        everything = await tx.certificates.list(CertificateFilter(), limit=100, offset=0)
        assert everything.total == 9
        # Pages: same order, same total on each, no overlap, nothing lost.
        seen: list[Certificate] = []
        for offset in range(0, 10, 4):
            page = await tx.certificates.list(CertificateFilter(), limit=4, offset=offset)
            assert page.total == 9
            assert (page.limit, page.offset) == (4, offset)
            seen.extend(page.items)
        assert tuple(seen) == everything.items
        empty = await tx.certificates.list(CertificateFilter(), limit=4, offset=50)
        assert (empty.items, empty.total) == ((), 9)
        counted = await tx.certificates.list(CertificateFilter(project_id=w.project.id), 0, 0)
        assert (counted.items, counted.total) == ((), 8)


def test_filter_refuses_unknown_status() -> None:
    with pytest.raises(InvalidInput, match="unknown certificate status"):
        CertificateFilter(status="valid")  # type: ignore[arg-type]


async def test_revoke_only_once(database: Database) -> None:
    world = await make_world(database)
    cert = world.certificate()
    async with database.transaction() as tx:
        await tx.certificates.add(cert)
    at = NOW + timedelta(days=1)
    async with database.transaction() as tx:
        revoked = await tx.certificates.revoke(cert.id, at, RevocationReason.CESSATION_OF_OPERATION)
        assert revoked is not None
        assert revoked.status is CertificateStatus.REVOKED
        assert revoked.revoked_at == at
        assert revoked.revocation_reason is RevocationReason.CESSATION_OF_OPERATION
        assert await tx.certificates.revoke(cert.id, at, RevocationReason.UNSPECIFIED) is None
        assert await tx.certificates.revoke(new_id(), at, RevocationReason.UNSPECIFIED) is None
    async with database.transaction() as tx:
        assert await tx.certificates.get(cert.id) == revoked


async def test_list_revoked_for_crl(database: Database) -> None:
    w, other, certs = await _seed(database)
    async with database.transaction() as tx:
        at_seed = await tx.certificates.list_revoked(w.ca.id, now=NOW)
        assert sorted(at_seed) == sorted(
            [
                (certs["c0"].serial, NOW, RevocationReason.KEY_COMPROMISE),
                (certs["c7"].serial, NOW, RevocationReason.SUPERSEDED),
            ]
        )
        # c0 expired (90 days) by LATER: it leaves the CRL; c7 (365 days) stays.
        assert await tx.certificates.list_revoked(w.ca.id, now=LATER) == [
            (certs["c7"].serial, NOW, RevocationReason.SUPERSEDED)
        ]
        assert await tx.certificates.list_revoked(other.ca.id, now=NOW) == []
