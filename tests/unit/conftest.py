"""Fixtures for the unit tier."""

from __future__ import annotations

import pytest

from tests.agent_helpers import built_home, copy_home, make_app


@pytest.fixture
def app(home, tmp_path_factory, embedder):
    """A small built home (ml-small slice, injection item, near-duplicate twins), copied per test."""
    copy_home(built_home(tmp_path_factory.getbasetemp(), embedder), home)
    a = make_app(home, embedder)
    yield a
    a.close()
