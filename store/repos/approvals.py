"""Approval policies and certificate requests."""

from __future__ import annotations

from store.repos._base import Repository


class ApprovalPolicyRepository(Repository):
    pass


class RequestRepository(Repository):
    pass
