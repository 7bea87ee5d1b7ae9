"""Fixtures: an OTLP/HTTP logs receiver (fake_collector) on a free loopback port."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_collector import FakeCollector  # noqa: E402


@pytest.fixture
def collector():
    server = FakeCollector().start()
    yield server
    server.stop()
