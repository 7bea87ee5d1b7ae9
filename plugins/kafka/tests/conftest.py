"""One Tansu broker and one schema registry fake for the session; each test uses topics of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_support import Broker, FakeSchemaRegistry


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    running = Broker(Path(tmp_path_factory.mktemp("tansu")) / "broker.log")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def registry() -> Iterator[FakeSchemaRegistry]:
    fake = FakeSchemaRegistry().start()
    try:
        yield fake
    finally:
        fake.stop()
