"""Terminal output shared by ``roost`` and ``roostctl``."""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any, NoReturn

from rich.console import Console


@cache
def console() -> Console:
    return Console(highlight=False)


@cache
def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def echo_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> NoReturn:
    err_console().print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
    sys.exit(code)
