"""Tables for approval policies and certificate requests. Same metadata as store.tables."""

from __future__ import annotations
