"""roostctl output: rich tables or JSON on stdout; messages and progress on stderr."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

STATE_STYLE = {"SUCCESS": "green", "WARNING": "yellow", "FAILED": "red", "KILLED": "red", "CANCELLED": "yellow",
               "RUNNING": "cyan", "CREATED": "dim", "QUEUED": "dim", "PAUSED": "magenta", "KILLING": "red"}  # fmt: skip


class Renderer:
    def __init__(self, output: str = "table") -> None:
        self.output = output
        tty = sys.stdout.isatty()
        self.out = Console(highlight=False, soft_wrap=not tty, width=None if tty else 200)
        self.err = Console(stderr=True, highlight=False)

    @property
    def json_mode(self) -> bool:
        return self.output == "json"

    # -- stdout ------------------------------------------------------------------------------------------------
    def json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None,
              footer: str | None = None) -> None:  # fmt: skip
        table = Table(
            title=title,
            show_edge=False,
            header_style="bold",
            pad_edge=False,
            box=None,
            show_header=any(columns),
        )
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(
                *("-" if v is None or v == "" else (v if hasattr(v, "__rich__") else str(v)) for v in row)
            )
        self.out.print(table)
        if footer:
            self.out.print(footer)

    def state(self, state: str | None) -> str:
        style = STATE_STYLE.get(state or "", "white")
        return f"[{style}]{state}[/]"

    def line(self, text: str, markup: bool = True) -> None:
        self.out.print(text, markup=markup, highlight=False, soft_wrap=True)

    def raw(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    def result(self, value: Any, text: str) -> None:
        """A one-line outcome: JSON, or a sentence."""
        if self.json_mode:
            self.json(value)
        else:
            self.line(text)

    # -- stderr -------------------------------------------------------------------------------------------------
    def note(self, text: str) -> None:
        self.err.print(text, highlight=False, soft_wrap=True)

    def error(self, text: str) -> None:
        self.err.print(f"[red]error:[/red] {text}", highlight=False, soft_wrap=True, markup=True)

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Any]:
        """A progress bar on a terminal (stderr); a no-op advance() elsewhere."""
        if not sys.stderr.isatty() or total <= 1:
            yield _NoProgress()
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.err, transient=True) as progress:  # fmt: skip
            task = progress.add_task(description, total=total)
            yield _Progress(progress, task)

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[Any]:
        if not sys.stderr.isatty():
            yield _NoProgress()
            return
        with self.err.status(text) as status:
            yield _Status(status)


class _NoProgress:
    def advance(self, label: str | None = None) -> None:
        pass

    def update(self, text: str) -> None:
        pass


class _Progress:
    def __init__(self, progress: Any, task: Any) -> None:
        self.progress = progress
        self.task = task

    def advance(self, label: str | None = None) -> None:
        self.progress.update(self.task, advance=1, description=label or None)

    def update(self, text: str) -> None:
        self.progress.update(self.task, description=text)


class _Status:
    def __init__(self, status: Any) -> None:
        self.status = status

    def advance(self, label: str | None = None) -> None:
        pass

    def update(self, text: str) -> None:
        self.status.update(text)


def duration(state: dict[str, Any]) -> str:
    """A state's ISO duration as ``1m 2.345s``."""
    raw = state.get("duration")
    if not raw or not isinstance(raw, str) or not raw.startswith("PT"):
        return str(raw or "")
    import re

    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", raw)
    if not m:
        return raw
    h, mnt, s = m.groups()
    parts = []
    if h:
        parts.append(f"{int(h)}h")
    if mnt:
        parts.append(f"{int(mnt)}m")
    if s:
        parts.append(f"{float(s):.3g}s")
    return " ".join(parts) or "0s"
