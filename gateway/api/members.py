"""Routes for members (filled in by the access-control work)."""

from __future__ import annotations

from gateway.api.routing import Route


def routes() -> list[Route]:
    return []
