"""Application members (access control)."""

from __future__ import annotations

from store.repos._base import Repository


class MemberRepository(Repository):
    pass
