"""Fixtures of the core unit tests."""

from __future__ import annotations

import pytest
from core_world import World


@pytest.fixture
def world() -> World:
    return World()
