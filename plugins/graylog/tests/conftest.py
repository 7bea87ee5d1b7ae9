"""Fixtures: a Graylog GELF HTTP input (fake_graylog) on a free loopback port, and flow builders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_graylog import FakeGraylog  # noqa: E402


@pytest.fixture
def graylog():
    """A GELF HTTP input with Graylog's defaults (bulk receiving off, 64 KiB requests)."""
    server = FakeGraylog().start()
    yield server
    server.stop()


@pytest.fixture
def bulk_graylog():
    """A GELF HTTP input with *Enable Bulk Receiving* checked."""
    server = FakeGraylog(bulk_receiving=True).start()
    yield server
    server.stop()
