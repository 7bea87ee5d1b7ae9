"""Messages: post (to a channel or as a thread reply, text or blocks), update, delete."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from roost import AssetBundle, Dynamic, RunContext, TaskError

from roost_slack.base import Output, P, SlackTask, as_text, message_payload, slack_asset

# Message fields a payload may carry and chat.postMessage/chat.update take as they are.
_PASSTHROUGH = ("text", "reply_broadcast", "unfurl_links", "unfurl_media", "mrkdwn", "link_names", "parse")
_JSON_FIELDS = ("blocks", "attachments", "metadata")


class MessageTask(SlackTask):
    """A task that sends a message's content (``payload`` or ``messageText``)."""

    payload: Dynamic[str | dict[str, Any]] | None = None
    """Slack message payload: a JSON object with ``text``, ``blocks``, ``attachments``, ``channel``,
    ``thread_ts``... as ``chat.postMessage`` takes them; wins over ``messageText``."""
    message_text: Dynamic[str] | None = None
    """The message as text (Markdown's ``**bold**``, ``__italic__`` and ``[links](url)`` become Slack
    mrkdwn) or as a JSON object string used as the payload. Ignored when ``payload`` is set."""
    channel: Dynamic[str] | None = None
    """Channel, private channel or DM to post in: an id (``C0123...``) or a name (``#general``)."""
    username: Dynamic[str] | None = None
    """Name shown as the author (needs the ``chat:write.customize`` scope)."""
    icon_url: Dynamic[str] | None = None
    """URL of an image shown as the author's icon."""
    icon_emoji: Dynamic[str] | None = None
    """Emoji shown as the author's icon (``:robot_face:``); overrides ``iconUrl``."""

    def content(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the payload as given, the API arguments it yields)."""
        body = message_payload(self.payload, self.message_text)
        args: dict[str, Any] = {key: body[key] for key in _PASSTHROUGH if key in body}
        for key in _JSON_FIELDS:
            if key in body:
                value = body[key]
                args[key] = value if isinstance(value, str) else json.dumps(value)
        args["channel"] = as_text(body.get("channel")) or self.channel
        return body, args


class Message(Output):
    """A message Slack accepted."""

    timestamp: str
    """The message's timestamp (``ts``): its id within the channel, for replies, updates and reactions."""
    channel: str | None = None
    """Id of the channel the message is in."""


def _message_asset(task: SlackTask, out: Message) -> list[AssetBundle]:
    if not out.channel:
        return []
    return [AssetBundle(outputs=[slack_asset("channel", out.channel, out)])]


class Post(MessageTask, type=P + "chats.Post"):
    """Post a message to a channel (``chat.postMessage``), as a thread reply with ``timestamp``.

    The message is ``messageText`` or a ``payload`` with Block Kit ``blocks``; set ``timestamp`` to
    a message's ``ts`` to reply in its thread. Needs the ``chat:write`` scope.
    """

    timestamp: Dynamic[str] | None = None
    """Another message's ``timestamp`` (``ts``): the message becomes a reply in its thread."""

    Out: ClassVar[type[Message]] = Message

    def run(self, ctx: RunContext) -> Message:
        body, args = self.content()
        args["thread_ts"] = as_text(body.get("thread_ts")) or self.timestamp
        args["username"] = as_text(body.get("username")) or self.username
        args["icon_url"] = as_text(body.get("icon_url")) or self.icon_url
        args["icon_emoji"] = as_text(body.get("icon_emoji")) or self.icon_emoji
        if not args["channel"]:
            raise TaskError("set channel (or a 'channel' in the payload)")
        slack = self.client(ctx)
        data = slack.call("chat.postMessage", **args)
        ts = data.get("ts")
        if not isinstance(ts, str):
            raise slack.malformed("chat.postMessage", "no 'ts' in the answer")
        where = f" in the thread of {args['thread_ts']}" if args["thread_ts"] else ""
        ctx.logger.info("posted message %s to %s%s", ts, data.get("channel") or args["channel"], where)
        return self.with_workspace(slack, Message(timestamp=ts, channel=as_text(data.get("channel"))))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _message_asset(self, out) if out else []


class Update(MessageTask, type=P + "chats.Update"):
    """Change a message's text, blocks or attachments (``chat.update``)."""

    timestamp: Dynamic[str]
    """The message's ``timestamp`` (``ts``)."""

    Out: ClassVar[type[Message]] = Message

    def run(self, ctx: RunContext) -> Message:
        _, args = self.content()
        if not args["channel"]:
            raise TaskError("set channel (or a 'channel' in the payload)")
        slack = self.client(ctx)
        data = slack.call("chat.update", ts=self.timestamp, **args)
        ts = as_text(data.get("ts")) or self.timestamp
        ctx.logger.info("updated message %s in %s", ts, data.get("channel") or args["channel"])
        return self.with_workspace(slack, Message(timestamp=ts, channel=as_text(data.get("channel"))))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _message_asset(self, out) if out else []


class Delete(SlackTask, type=P + "chats.Delete"):
    """Delete a message (``chat.delete``)."""

    channel: Dynamic[str]
    """Id of the channel holding the message."""
    timestamp: Dynamic[str]
    """The message's ``timestamp`` (``ts``)."""

    Out: ClassVar[type[Message]] = Message

    def run(self, ctx: RunContext) -> Message:
        slack = self.client(ctx)
        data = slack.call("chat.delete", channel=self.channel, ts=self.timestamp)
        ts = as_text(data.get("ts")) or self.timestamp
        ctx.logger.info("deleted message %s from %s", ts, self.channel)
        return self.with_workspace(
            slack, Message(timestamp=ts, channel=as_text(data.get("channel")) or self.channel)
        )

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return _message_asset(self, out) if out else []
