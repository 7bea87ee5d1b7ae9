"""Core trigger types: Schedule, Flow and Webhook (the scheduler and the API fire them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator

from roost import Duration, Model, Trigger, WebhookRequest, WebhookStart, WebhookTrigger

T = "io.kestra.plugin.core.trigger."

CRON_ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}  # fmt: skip


def _croniter_expr(cron: str, with_seconds: bool) -> str:
    expr = CRON_ALIASES.get(cron.strip(), cron)
    if with_seconds:
        sec, rest = expr.split(None, 1)
        return f"{rest} {sec}"  # croniter takes seconds as a sixth, trailing field
    return expr


class Backfill(Model):
    """Replay the schedule from ``start`` (to ``end``)."""

    start: datetime
    """First date to replay."""
    end: datetime | None = None
    """Last date to replay; now by default."""
    inputs: dict[str, Any] | None = None
    labels: Any = None


class Schedule(Trigger, type=T + "Schedule", aliases=("io.kestra.core.models.triggers.types.Schedule",)):
    """Start executions on a cron schedule (five fields, or six with ``withSeconds``)."""

    with_seconds: bool = False
    """The cron has a leading seconds field."""
    cron: str
    """Cron expression, or @hourly, @daily..."""
    timezone: str = "Etc/UTC"
    """Time zone the cron is read in."""
    recover_missed_schedules: Literal["ALL", "LAST", "NONE"] | None = None
    """What to do with dates missed while the scheduler was down (ALL by default)."""
    backfill: Backfill | None = None
    """Replay past dates."""
    late_maximum_delay: Duration | None = None
    """Skip a date that could not start within this delay."""
    schedule_conditions: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str, info: ValidationInfo) -> str:
        with_seconds = bool(info.data.get("with_seconds"))
        expr = CRON_ALIASES.get(cron.strip(), cron)
        fields = len(expr.split())
        expected = 6 if with_seconds else 5
        if fields != expected:
            raise ValueError(
                f"cron {cron!r} has {fields} fields; expected {expected}"
                + (" (withSeconds: true adds a leading seconds field)" if fields == 6 else "")
            )
        from croniter import croniter

        if not croniter.is_valid(_croniter_expr(cron, with_seconds)):
            raise ValueError(f"invalid cron expression {cron!r}")
        return cron

    def _croniter_expr(self) -> str:
        return _croniter_expr(self.cron, self.with_seconds)

    def next_after(self, when: datetime) -> datetime:
        """The first scheduled date strictly after ``when``."""
        zone = ZoneInfo(self.timezone)
        from croniter import croniter

        it = croniter(self._croniter_expr(), when.astimezone(zone))
        return it.get_next(datetime)

    def dates_between(self, start: datetime, end: datetime, limit: int = 10000) -> list[datetime]:
        out: list[datetime] = []
        current = start
        while len(out) < limit:
            nxt = self.next_after(current)
            if nxt > end:
                break
            out.append(nxt)
            current = nxt
        return out


class Precondition(Model):
    id: str | None = None
    where: list[dict[str, Any]] = Field(default_factory=list)
    flows: list[dict[str, Any]] = Field(default_factory=list)
    time_window: dict[str, Any] | None = None
    reset_on_success: bool = True


class FlowTrigger(Trigger, type=T + "Flow", aliases=("io.kestra.core.models.triggers.types.Flow",)):
    """Start an execution when executions of other flows end (filtered by ``conditions``/``preconditions``)."""

    states: list[str] = Field(default_factory=lambda: ["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"])
    """Terminal states that count."""
    preconditions: Precondition | None = None
    """Flows and states that must all have happened (within a time window)."""


class Webhook(WebhookTrigger, type=T + "Webhook", aliases=("io.kestra.core.models.triggers.types.Webhook",)):
    """Start an execution when ``/api/v1/{tenant}/executions/webhook/{namespace}/{flowId}/{key}`` is called."""

    wait: bool = False
    """Answer only when the execution ends."""
    return_outputs: bool = False
    """With ``wait``, answer with the flow's outputs."""

    def receive(self, request: WebhookRequest, ctx: Any) -> WebhookStart:
        """Every call starts an execution: ``trigger.body`` (JSON or text), ``headers``, ``parameters``."""
        variables = {"body": request.json_or_text(), "headers": dict(request.headers),
                     "parameters": dict(request.query)}  # fmt: skip
        return WebhookStart(variables, wait=self.wait, return_outputs=self.return_outputs)


TRIGGERS = (Schedule, FlowTrigger, Webhook)
