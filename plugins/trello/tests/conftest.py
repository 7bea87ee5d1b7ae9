"""Fixtures: a fake Trello API on a free loopback port, with a board of two lists."""

from __future__ import annotations

import base64
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_trello import FakeTrello  # noqa: E402
from trello_support import KEY, READ_TOKEN, TOKEN  # noqa: E402


@dataclass
class Board:
    board: dict[str, Any]
    todo: dict[str, Any]
    done: dict[str, Any]


@pytest.fixture
def trello():
    server = FakeTrello(KEY, {TOKEN: "write", READ_TOKEN: "read"}).start()
    yield server
    server.stop()


@pytest.fixture
def board(trello) -> Board:
    b = trello.add_board("Ops")
    return Board(b, trello.add_list(b, "To do"), trello.add_list(b, "Done"))


@pytest.fixture(autouse=True)
def trello_secrets(monkeypatch):
    for key, value in {
        "TRELLO_API_KEY": KEY,
        "TRELLO_API_TOKEN": TOKEN,
        "TRELLO_READ_TOKEN": READ_TOKEN,
    }.items():
        monkeypatch.setenv(f"SECRET_{key}", base64.b64encode(value.encode()).decode())


@pytest.fixture
def conn(trello):
    return {
        "apiKey": "{{ secret('TRELLO_API_KEY') }}",
        "apiToken": "{{ secret('TRELLO_API_TOKEN') }}",
        "apiBaseUrl": trello.url,
    }
