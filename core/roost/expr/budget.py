"""Budgets of one render: a time limit and an output size limit.

A template is untrusted code: two nested loops of 10^5 or a few ``replace``
calls must not hold a worker or fill the memory. Every render (and every
``render()`` nested in it, which shares the budget) gets a deadline and a
size allowance. The sandbox's hooks spend it: each loop iteration and each
call checks the clock; each value computed (filter and function results,
operators, literals) and each piece of text written is charged by its size,
and operations that could build a result much larger than their inputs
(``*``, ``join``, ``replace``, ``indent``...) check it *before* they build it.
Nothing kills a thread: the render raises :class:`BudgetExceeded`, which fails
the task with a message naming the limit.

Sizes are counted as characters of text plus 8 per entry of a list or map
(about the memory it takes, and never less than its JSON text).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from time import monotonic
from typing import Any, ClassVar, NamedTuple

from jinja2.exceptions import SecurityError

ENTRY = 8  # what one entry of a list or map costs


@dataclass(frozen=True)
class ExpressionLimits:
    """Limits of one render (a template and everything it renders in turn)."""

    timeout: float = 5.0
    """Seconds a render may take."""
    max_output: int = 32 * 1024 * 1024
    """Size a render may produce: characters of text, plus 8 per list or map entry."""

    ENV: ClassVar[dict[str, str]] = {
        "timeout": "ROOST_EXPRESSION_TIMEOUT",
        "max_output": "ROOST_EXPRESSION_MAX_OUTPUT",
    }

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, base: ExpressionLimits | None = None
    ) -> ExpressionLimits:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, var in cls.ENV.items():
            raw = env.get(var)
            if raw:
                try:
                    values[name] = float(raw) if name == "timeout" else int(raw)
                except ValueError:
                    raise ValueError(f"{var} must be a number, got {raw!r}") from None
                if values[name] <= 0:
                    raise ValueError(f"{var} must be above 0, got {raw!r}")
        return replace(base or cls(), **values)


_limits: ExpressionLimits | None = None


def limits() -> ExpressionLimits:
    """The limits in force: :func:`set_limits`, else ``ROOST_EXPRESSION_*`` variables, else the defaults."""
    global _limits
    if _limits is None:
        _limits = ExpressionLimits.from_env()
    return _limits


def set_limits(new: ExpressionLimits | None) -> None:
    """Set the process-wide limits (the server's configuration); None reads the environment again."""
    global _limits
    _limits = new


class BudgetExceeded(SecurityError):
    """A render went over its time or output size limit."""


class Budget:
    """What one render may still spend."""

    __slots__ = ("deadline", "remaining", "limits", "sizes")

    def __init__(self, lim: ExpressionLimits) -> None:
        self.limits = lim
        self.deadline = monotonic() + lim.timeout
        self.remaining = lim.max_output
        # sizes of the lists and maps already charged: a literal of them costs their sum without a
        # new walk (the object is kept, so its id cannot be reused during the render)
        self.sizes: dict[int, tuple[Any, int]] = {}

    def tick(self) -> None:
        if monotonic() > self.deadline:
            self.timed_out()

    def time_left(self) -> float:
        return self.deadline - monotonic()

    def timed_out(self) -> None:
        raise BudgetExceeded(
            f"the expression took longer than its time limit of {self.limits.timeout:g} s"
            f" ({ExpressionLimits.ENV['timeout']})"
        )

    def charge(self, size: int) -> None:
        """Spend ``size``; past the limit, fail naming it."""
        self.remaining -= size
        if self.remaining < 0:
            self.too_large()
        self.tick()

    def fits(self, size: int) -> None:
        """Fail if a value of ``size`` could not be afforded (checked before building it)."""
        if size > self.remaining:
            self.too_large()

    def too_large(self) -> None:
        raise BudgetExceeded(
            f"the expression produced more than its output size limit of {self.limits.max_output:,}"
            f" characters ({ExpressionLimits.ENV['max_output']})"
        )

    def charge_value(self, value: Any) -> Any:
        """Charge a computed value by its size; returns it."""
        t = type(value)
        if t is str or isinstance(value, str | bytes):
            self.remaining -= len(value)
            if self.remaining < 0:
                self.too_large()
        elif t is not int and t is not bool and t is not float and value is not None:
            size = size_of(value, self.remaining + 1, self.sizes)
            self.remaining -= size
            if self.remaining < 0:
                self.too_large()
            self.sizes[id(value)] = (value, size)
        self.tick()
        return value


class Render(NamedTuple):
    """The render in progress in this context: what functions see, and its budget."""

    variables: Mapping[str, Any]
    services: Any
    budget: Budget


RENDER: ContextVar[Render | None] = ContextVar("roost_expr_render", default=None)


def current() -> Budget | None:
    """The budget of the render in progress in this context, if any."""
    render = RENDER.get()
    return None if render is None else render.budget


def size_of(value: Any, limit: int, known: dict[int, tuple[Any, int]] | None = None) -> int:
    """Size of ``value`` as defined above, counting shared references each time; stops past ``limit``.
    ``known`` holds sizes already measured, by id (with the object, to be sure it is the same)."""
    if isinstance(value, str | bytes):
        return len(value)
    if not isinstance(value, Mapping | list | tuple | set | frozenset):
        return ENTRY
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if known and (seen := known.get(id(item))) is not None and seen[0] is item:
            total += seen[1]
        else:
            if isinstance(item, Mapping):
                total += ENTRY * len(item) + sum(len(k) for k in item if type(k) is str)
                children: Any = item.values()
            else:
                total += ENTRY * len(item)
                children = item
            if total > limit:
                return total
            for child in children:  # scalars inline (their entry is counted); containers later
                t = type(child)
                if t is str:
                    total += len(child)
                elif t is not int and t is not float and t is not bool and child is not None:
                    if isinstance(child, str | bytes):
                        total += len(child)
                    elif isinstance(child, Mapping | list | tuple | set | frozenset):
                        stack.append(child)
        if total > limit:
            return total
    return total


def check_text_size(value: Any) -> None:
    """Before a map or list is written as text: fail if the text could not be afforded."""
    budget = current()
    if budget is not None:
        budget.fits(size_of(value, budget.remaining + 1))


def budget_for_call() -> Budget:
    """The render's budget, or a fresh one for a filter called outside any render (plugins, tests)."""
    return current() or Budget(limits())


def check_result(size: int) -> None:
    """Before an operation builds a result of (at least) ``size``: fail if it could not be afforded."""
    budget = current()
    if budget is not None:
        budget.fits(size)
        budget.tick()


__all__ = [
    "Budget",
    "BudgetExceeded",
    "budget_for_call",
    "ExpressionLimits",
    "check_result",
    "check_text_size",
    "current",
    "limits",
    "set_limits",
    "size_of",
]
