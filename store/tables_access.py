"""Tables for access control (application members). Same metadata as store.tables."""

from __future__ import annotations
