"""Reactions: add, remove, get."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import model_validator
from roost import AssetBundle, Dynamic, RunContext

from roost_slack.base import Output, P, SlackTask, as_int, as_str_list, as_text, require_object, slack_asset
from roost_slack.conversations import StoredList, _store_lines


class Reaction(Output):
    """The reaction a task added or removed."""

    channel: str
    """Id of the channel holding the message."""
    timestamp: str
    """The message's ``timestamp``."""
    name: str
    """Emoji name, without colons."""


def _name(value: str) -> str:
    return value.strip().strip(":")


class Add(SlackTask, type=P + "reactions.Add"):
    """Add an emoji reaction to a message (``reactions.add``); needs ``reactions:write``."""

    channel: Dynamic[str]
    """Id of the channel holding the message."""
    name: Dynamic[str]
    """Emoji name (``thumbsup``; colons are dropped)."""
    timestamp: Dynamic[str]
    """The message's ``timestamp``."""

    Out: ClassVar[type[Reaction]] = Reaction

    def run(self, ctx: RunContext) -> Reaction:
        slack = self.client(ctx)
        slack.call("reactions.add", channel=self.channel, name=_name(self.name), timestamp=self.timestamp)
        ctx.logger.info("reacted :%s: to %s in %s", _name(self.name), self.timestamp, self.channel)
        return self.with_workspace(
            slack, Reaction(channel=self.channel, timestamp=self.timestamp, name=_name(self.name))
        )

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(outputs=[slack_asset("channel", out.channel, out)])] if out else []


class Remove(SlackTask, type=P + "reactions.Remove"):
    """Remove an emoji reaction from a message (``reactions.remove``)."""

    channel: Dynamic[str]
    """Id of the channel holding the message."""
    name: Dynamic[str]
    """Emoji name (``thumbsup``; colons are dropped)."""
    timestamp: Dynamic[str]
    """The message's ``timestamp``."""

    Out: ClassVar[type[Reaction]] = Reaction

    def run(self, ctx: RunContext) -> Reaction:
        slack = self.client(ctx)
        slack.call("reactions.remove", channel=self.channel, name=_name(self.name), timestamp=self.timestamp)
        ctx.logger.info("removed :%s: from %s in %s", _name(self.name), self.timestamp, self.channel)
        return self.with_workspace(
            slack, Reaction(channel=self.channel, timestamp=self.timestamp, name=_name(self.name))
        )

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(outputs=[slack_asset("channel", out.channel, out)])] if out else []


class Get(SlackTask, type=P + "reactions.Get"):
    """The reactions on a message or a file (``reactions.get``), stored one per line.

    Each row has ``name``, ``count``, ``users`` and ``url`` (custom emoji). Needs ``reactions:read``.
    """

    channel: Dynamic[str] | None = None
    """Id of the channel holding the message."""
    file: Dynamic[str] | None = None
    """A file id, to get the reactions on a file instead of a message."""
    file_comment: Dynamic[str] | None = None
    """A file comment id."""
    timestamp: Dynamic[str] | None = None
    """The message's ``timestamp``."""

    Out: ClassVar[type[StoredList]] = StoredList

    @model_validator(mode="after")
    def _item_given(self) -> Get:
        if not self.file and not self.file_comment and not (self.channel and self.timestamp):
            raise ValueError("set channel and timestamp (a message), or file, or fileComment")
        return self

    def run(self, ctx: RunContext) -> StoredList:
        slack = self.client(ctx)
        data = slack.call("reactions.get", channel=self.channel, timestamp=self.timestamp, file=self.file,
                          file_comment=self.file_comment, full=True)  # fmt: skip
        kind = as_text(data.get("type")) or "message"
        item = require_object(slack, "reactions.get", data, kind if kind in data else "message")
        rows = [
            {
                "name": as_text(r.get("name")),
                "count": as_int(r.get("count")),
                "users": as_str_list(r.get("users")),
                "url": as_text(r.get("url")),
            }  # fmt: skip
            for r in item.get("reactions") or []
            if isinstance(r, dict)
        ]
        ctx.metric("records", len(rows))
        return StoredList(uri=_store_lines(ctx, rows, "reactions.ion"), size=len(rows))
