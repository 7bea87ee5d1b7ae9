"""Channels (Slack's conversations): create, archive, list, invite, history and the rest."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from pydantic import Field
from roost import AssetBundle, Dynamic, RunContext

from roost_slack.base import (
    Conversation,
    Output,
    P,
    SlackTask,
    Topic,
    conversation,
    require_object,
    slack_asset,
    topic,
)
from roost_slack.client import SlackClient

ConversationType = Literal["public_channel", "private_channel", "mpim", "im"]


class ChannelRef(Output):
    """The channel a task acted on."""

    channel: str
    """Channel id."""


def _channel_bundle(out: Any, read: bool = False, **meta: Any) -> list[AssetBundle]:
    """The channel as an output asset (or an input, for tasks that only read it)."""
    if not out:
        return []
    channel_id = out.id if isinstance(out, Conversation) else getattr(out, "channel", None)
    if not channel_id:
        return []
    if isinstance(out, Conversation):
        meta = {"name": out.name, "isPrivate": out.is_private, "isArchived": out.is_archived, **meta}
    asset = slack_asset("channel", channel_id, out, getattr(out, "name", None), **meta)
    return [AssetBundle(inputs=[asset])] if read else [AssetBundle(outputs=[asset])]


def _store_lines(ctx: RunContext, items: list[dict[str, Any]], name: str) -> str:
    """Rows in internal storage, one JSON (Ion-compatible) document per line, as Kestra stores lists."""
    path = ctx.working_dir / name
    with path.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(item, separators=(",", ":"), default=str) + "\n")
    return ctx.put_file(path, name=name)


class Create(SlackTask, type=P + "conversations.Create"):
    """Create a channel (``conversations.create``); needs ``channels:manage`` (``groups:write`` if private)."""

    name: Dynamic[str]
    """Channel name: lowercase letters, digits, hyphens and underscores, at most 80 characters."""
    is_private: Dynamic[bool] = False
    """Create a private channel."""
    team_id: Dynamic[str] | None = None
    """Workspace to create it in; required with an org-level token."""

    Out: ClassVar[type[Conversation]] = Conversation

    def run(self, ctx: RunContext) -> Conversation:
        slack = self.client(ctx)
        data = slack.call(
            "conversations.create", name=self.name, is_private=self.is_private, team_id=self.team_id
        )
        out = conversation(slack, "conversations.create", data.get("channel"))
        ctx.logger.info("created channel #%s (%s)", out.name, out.id)
        return self.with_workspace(slack, out)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _channel_bundle(out, state="active")


class Archive(SlackTask, type=P + "conversations.Archive"):
    """Archive a channel (``conversations.archive``)."""

    channel: Dynamic[str]
    """Id of the channel to archive."""

    Out: ClassVar[type[ChannelRef]] = ChannelRef

    def run(self, ctx: RunContext) -> ChannelRef:
        slack = self.client(ctx)
        slack.call("conversations.archive", channel=self.channel)
        ctx.logger.info("archived channel %s", self.channel)
        return self.with_workspace(slack, ChannelRef(channel=self.channel))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _channel_bundle(out, isArchived=True, state="archived")


class Unarchive(SlackTask, type=P + "conversations.Unarchive"):
    """Bring an archived channel back (``conversations.unarchive``)."""

    channel: Dynamic[str]
    """Id of the channel to unarchive."""

    Out: ClassVar[type[ChannelRef]] = ChannelRef

    def run(self, ctx: RunContext) -> ChannelRef:
        slack = self.client(ctx)
        slack.call("conversations.unarchive", channel=self.channel)
        ctx.logger.info("unarchived channel %s", self.channel)
        return self.with_workspace(slack, ChannelRef(channel=self.channel))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _channel_bundle(out, isArchived=False, state="active")


class StoredList(Output):
    """Rows stored in internal storage."""

    uri: str
    """Internal-storage URI of the rows: one JSON (Ion-compatible) document per line."""
    size: int
    """Number of rows."""


class List(SlackTask, type=P + "conversations.List"):
    """List the channels the token can see, following every page (``conversations.list``).

    The channels (the shape of ``conversations.Info``'s output) are stored one per line; the output
    gives their ``uri`` and ``size``.
    """

    types: Dynamic[list[ConversationType]] = Field(default_factory=lambda: ["public_channel"])
    """Kinds of conversation: ``public_channel``, ``private_channel``, ``mpim``, ``im``."""
    exclude_archived: Dynamic[bool] = False
    """Leave archived channels out."""
    team_id: Dynamic[str] | None = None
    """Workspace to list; required with an org-level token."""

    Out: ClassVar[type[StoredList]] = StoredList

    def run(self, ctx: RunContext) -> StoredList:
        slack = self.client(ctx)
        rows: list[dict[str, Any]] = []
        for page in slack.pages("conversations.list", "channels", limit=200, types=",".join(self.types),
                                exclude_archived=self.exclude_archived, team_id=self.team_id):  # fmt: skip
            rows.extend(conversation(slack, "conversations.list", raw).as_dict() for raw in page)
        ctx.metric("records", len(rows))
        ctx.logger.info("%d channel(s)", len(rows))
        return StoredList(uri=_store_lines(ctx, rows, "channels.ion"), size=len(rows))


class Invite(SlackTask, type=P + "conversations.Invite"):
    """Invite users to a channel (``conversations.invite``)."""

    channel: Dynamic[str]
    """Id of the channel."""
    users: Dynamic[list[str]] = Field(min_length=1, max_length=1000)
    """User ids to invite (at most 1,000)."""

    Out: ClassVar[type[Conversation]] = Conversation

    def run(self, ctx: RunContext) -> Conversation:
        slack = self.client(ctx)
        data = slack.call("conversations.invite", channel=self.channel, users=list(self.users))
        out = conversation(slack, "conversations.invite", data.get("channel"))
        ctx.logger.info("invited %d user(s) to %s", len(self.users), out.id)
        return self.with_workspace(slack, out)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _channel_bundle(out)


class Kick(SlackTask, type=P + "conversations.Kick"):
    """Remove a user from a channel (``conversations.kick``)."""

    channel: Dynamic[str]
    """Id of the channel."""
    user: Dynamic[str]
    """Id of the user to remove."""

    Out: ClassVar[type[ChannelRef]] = ChannelRef

    def run(self, ctx: RunContext) -> ChannelRef:
        slack = self.client(ctx)
        slack.call("conversations.kick", channel=self.channel, user=self.user)
        ctx.logger.info("removed %s from %s", self.user, self.channel)
        return self.with_workspace(slack, ChannelRef(channel=self.channel))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _channel_bundle(out)


class Info(SlackTask, type=P + "conversations.Info"):
    """Fetch a channel (``conversations.info``)."""

    channel: Dynamic[str]
    """Id of the channel."""
    include_locale: Dynamic[bool] = False
    """Also return the channel's locale."""

    Out: ClassVar[type[Conversation]] = Conversation

    def run(self, ctx: RunContext) -> Conversation:
        slack = self.client(ctx)
        data = slack.call("conversations.info", channel=self.channel, include_locale=self.include_locale)
        return self.with_workspace(slack, conversation(slack, "conversations.info", data.get("channel")))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _channel_bundle(out, read=True)


def _message_row(raw: Any) -> dict[str, Any]:
    """A message as Kestra's ``MessageOutput`` names its fields (``ts`` → ``timestamp``...)."""
    if not isinstance(raw, dict):
        return {}
    row = {"type": raw.get("type"), "subtype": raw.get("subtype"), "team": raw.get("team"),
           "channel": raw.get("channel"), "user": raw.get("user"), "username": raw.get("username"),
           "text": raw.get("text"), "timestamp": raw.get("ts"), "threadTimestamp": raw.get("thread_ts"),
           "appId": raw.get("app_id"), "botId": raw.get("bot_id"), "replyCount": raw.get("reply_count"),
           "replyUsers": raw.get("reply_users"), "latestReply": raw.get("latest_reply"),
           "reactions": raw.get("reactions"), "files": raw.get("files")}  # fmt: skip
    payload = {k: raw[k] for k in ("blocks", "attachments") if k in raw}
    if payload:
        row["payload"] = payload
    if isinstance(raw.get("edited"), dict):
        row["edited"] = {"user": raw["edited"].get("user"), "timestamp": raw["edited"].get("ts")}
    return {k: v for k, v in row.items() if v is not None}


class History(SlackTask, type=P + "conversations.History"):
    """Fetch a channel's messages, following every page (``conversations.history``); stored one per line."""

    channel: Dynamic[str]
    """Id of the channel."""
    oldest: Dynamic[str] | None = None
    """Only messages after this timestamp (Unix seconds, ``1700000000.000100``)."""
    latest: Dynamic[str] | None = None
    """Only messages before this timestamp."""
    inclusive: Dynamic[bool] = False
    """Include the messages at exactly ``oldest`` or ``latest``."""
    limit: Dynamic[int] | None = Field(default=None, ge=1, le=999)
    """Messages fetched per request (Slack's default is 100; 200 or fewer is recommended)."""

    Out: ClassVar[type[StoredList]] = StoredList

    def run(self, ctx: RunContext) -> StoredList:
        slack = self.client(ctx)
        rows: list[dict[str, Any]] = []
        for page in slack.pages("conversations.history", "messages", channel=self.channel, oldest=self.oldest,
                                latest=self.latest, inclusive=self.inclusive, limit=self.limit):  # fmt: skip
            rows.extend(_message_row(raw) for raw in page)
        ctx.metric("records", len(rows))
        ctx.logger.info("%d message(s) in %s", len(rows), self.channel)
        out = StoredList(uri=_store_lines(ctx, rows, "messages.ion"), size=len(rows))
        return self.with_workspace(slack, out)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not out:
            return []
        return [AssetBundle(inputs=[slack_asset("channel", self.channel, out)])]


class Members(SlackTask, type=P + "conversations.Members"):
    """List a channel's members, following every page (``conversations.members``); stored one per line."""

    channel: Dynamic[str]
    """Id of the channel."""

    Out: ClassVar[type[StoredList]] = StoredList

    def run(self, ctx: RunContext) -> StoredList:
        slack = self.client(ctx)
        rows = [
            {"memberId": str(member)}
            for page in slack.pages("conversations.members", "members", channel=self.channel, limit=200)
            for member in page
        ]
        ctx.metric("records", len(rows))
        return StoredList(uri=_store_lines(ctx, rows, "members.ion"), size=len(rows))


class Join(SlackTask, type=P + "conversations.Join"):
    """Join a public channel as the token's user or bot (``conversations.join``)."""

    channel: Dynamic[str]
    """Id of the channel."""

    Out: ClassVar[type[Conversation]] = Conversation

    def run(self, ctx: RunContext) -> Conversation:
        slack = self.client(ctx)
        data = slack.call("conversations.join", channel=self.channel)
        return self.with_workspace(slack, conversation(slack, "conversations.join", data.get("channel")))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _channel_bundle(out)


class Leave(SlackTask, type=P + "conversations.Leave"):
    """Leave a channel (``conversations.leave``)."""

    channel: Dynamic[str]
    """Id of the channel."""

    Out: ClassVar[type[ChannelRef]] = ChannelRef

    def run(self, ctx: RunContext) -> ChannelRef:
        slack = self.client(ctx)
        slack.call("conversations.leave", channel=self.channel)
        return self.with_workspace(slack, ChannelRef(channel=self.channel))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _channel_bundle(out)


class Rename(SlackTask, type=P + "conversations.Rename"):
    """Rename a channel (``conversations.rename``)."""

    channel: Dynamic[str]
    """Id of the channel."""
    name: Dynamic[str]
    """New name: lowercase letters, digits, hyphens and underscores, at most 80 characters."""

    Out: ClassVar[type[Conversation]] = Conversation

    def run(self, ctx: RunContext) -> Conversation:
        slack = self.client(ctx)
        data = slack.call("conversations.rename", channel=self.channel, name=self.name)
        out = conversation(slack, "conversations.rename", data.get("channel"))
        ctx.logger.info("renamed %s to #%s", out.id, out.name)
        return self.with_workspace(slack, out)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _channel_bundle(out)


def _set_text(task: SlackTask, ctx: RunContext, method: str, field: str, value: str) -> Topic:
    slack: SlackClient = task.client(ctx)
    data = slack.call(method, channel=task.channel, **{field: value})  # type: ignore[attr-defined]
    channel = require_object(slack, method, data, "channel")
    out = topic(channel.get(field)) or Topic(value=value)
    return task.with_workspace(slack, out)


class SetTopic(SlackTask, type=P + "conversations.SetTopic"):
    """Set a channel's topic (``conversations.setTopic``)."""

    channel: Dynamic[str]
    """Id of the channel."""
    topic: Dynamic[str] = Field(max_length=250)
    """The new topic (at most 250 characters)."""

    Out: ClassVar[type[Topic]] = Topic

    def run(self, ctx: RunContext) -> Topic:
        return _set_text(self, ctx, "conversations.setTopic", "topic", self.topic)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(outputs=[slack_asset("channel", self.channel, out)])] if out else []


class SetPurpose(SlackTask, type=P + "conversations.SetPurpose"):
    """Set a channel's purpose (``conversations.setPurpose``)."""

    channel: Dynamic[str]
    """Id of the channel."""
    purpose: Dynamic[str] = Field(max_length=250)
    """The new purpose (at most 250 characters)."""

    Out: ClassVar[type[Topic]] = Topic

    def run(self, ctx: RunContext) -> Topic:
        return _set_text(self, ctx, "conversations.setPurpose", "purpose", self.purpose)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(outputs=[slack_asset("channel", self.channel, out)])] if out else []
