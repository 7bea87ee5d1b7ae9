"""The queue between components, behind an interface a PostgreSQL implementation can fill.

Messages are small tuples naming an execution; the execution record in the
store stays the source of truth, so a lost wake-up is recovered by re-deriving
work from stored executions.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Message:
    kind: str  # start | result | kill | resume | restart | timer | subflow_ended | recover | wake
    execution_id: str
    payload: dict[str, Any] = field(default_factory=dict)


class Queue(Protocol):
    def put(self, message: Message) -> None: ...

    def take(self, timeout: float, limit: int = 512) -> list[Message]: ...


class InProcessQueue:
    """Messages between threads of one process."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Message] = queue.SimpleQueue()

    def put(self, message: Message) -> None:
        self._q.put(message)

    def take(self, timeout: float, limit: int = 512) -> list[Message]:
        """Block up to ``timeout`` for a first message, then take what is already there."""
        try:
            first = self._q.get(timeout=timeout) if timeout > 0 else self._q.get_nowait()
        except queue.Empty:
            return []
        out = [first]
        while len(out) < limit:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
        return out
