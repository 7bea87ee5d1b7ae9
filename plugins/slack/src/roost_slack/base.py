"""What every Slack App task shares: the token, the client, Slack's objects as typed outputs, assets."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import ConfigDict, PrivateAttr
from roost import Asset, Dynamic, RunContext, Task, TaskError
from roost import Output as _Output

from roost_slack.client import DEFAULT_BASE_URL, SlackClient

EXTERNAL = "io.kestra.core.models.assets.External"
P = "io.kestra.plugin.slack.app."


class Output(_Output):
    """Base of this plugin's outputs; keeps the workspace the task ran in for its assets."""

    model_config = ConfigDict(use_attribute_docstrings=True)
    _workspace: dict[str, Any] | None = PrivateAttr(default=None)


OutputT = TypeVar("OutputT", bound="Output")


class SlackTask(Task):
    """Base of the Slack App tasks (not a task type itself)."""

    token: Dynamic[str]
    """Slack token: a bot (``xoxb-``) or user (``xoxp-``) token; use ``{{ secret('SLACK_TOKEN') }}``."""
    base_url: Dynamic[str] = DEFAULT_BASE_URL
    """Base URL of the Slack Web API (Roost extension); change it only for a proxy or a test server."""

    def client(self, ctx: RunContext) -> SlackClient:
        return SlackClient(self.token, base_url=self.base_url, ctx=ctx)

    def wants_assets(self) -> bool:
        return bool(self.assets and self.assets.enable_auto)

    def with_workspace(self, slack: SlackClient, out: OutputT) -> OutputT:
        """Remember the workspace (``auth.test``) on the output when assets are asked for."""
        if self.wants_assets():
            data = slack.call("auth.test")
            out._workspace = {"teamId": data.get("team_id"), "team": data.get("team"), "url": data.get("url")}
        return out


# -- messages ----------------------------------------------------------------------------------------
def _to_slack_mrkdwn(text: str) -> str:
    """Markdown's **bold**, __italic__ and [links](url) in Slack's mrkdwn, as Kestra converts them."""
    text = re.sub(r"\*\*(.*?)\*\*", r"*\1*", text)
    text = re.sub(r"__(.*?)__", r"_\1_", text)
    return re.sub(r"\[(.*?)\]\((.*?)\)", r"<\2|\1>", text)


def message_payload(payload: str | dict[str, Any] | None, message_text: str | None) -> dict[str, Any]:
    """The message fields: ``payload`` (a JSON object), else ``messageText`` (a JSON object or text)."""
    if payload is not None:
        if isinstance(payload, dict):
            return payload
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise TaskError(f"payload is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise TaskError(f"payload must be a JSON object, got {type(data).__name__}")
        return data
    if message_text is not None:
        try:
            data = json.loads(message_text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
        return {"text": _to_slack_mrkdwn(message_text)}
    raise TaskError("set messageText or payload")


def as_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_str_list(value: Any) -> list[str] | None:
    return [str(v) for v in value] if isinstance(value, list) else None


def require_object(slack: SlackClient, method: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise slack.malformed(method, f"'{key}' should be an object")
    return value


# -- Slack objects as outputs ------------------------------------------------------------------------
class Topic(Output):
    """A channel's topic or purpose."""

    value: str | None = None
    """The text."""
    creator: str | None = None
    """User id of who set it."""
    last_set: int | None = None
    """When it was set (Unix seconds)."""


def topic(raw: Any) -> Topic | None:
    if not isinstance(raw, dict):
        return None
    return Topic(
        value=as_text(raw.get("value")),
        creator=as_text(raw.get("creator")),
        last_set=as_int(raw.get("last_set")),
    )


class Conversation(Output):
    """A Slack conversation (channel, private channel, direct message)."""

    id: str
    """Channel id (``C...``, ``G...``, ``D...``)."""
    name: str | None = None
    """Channel name, without ``#``."""
    is_private: bool | None = None
    """Whether the channel is private."""
    is_channel: bool | None = None
    """Whether the conversation is a channel."""
    is_group: bool | None = None
    """Whether the conversation is a (legacy) private group."""
    is_instant_message: bool | None = None
    """Whether the conversation is a direct message."""
    is_multi_person_instant_message: bool | None = None
    """Whether the conversation is a group direct message."""
    created: int | None = None
    """When the channel was created (Unix seconds)."""
    is_archived: bool | None = None
    """Whether the channel is archived."""
    is_general: bool | None = None
    """Whether the channel is the workspace's general channel."""
    topic: Topic | None = None
    """The channel's topic."""
    purpose: Topic | None = None
    """The channel's purpose."""


def conversation(slack: SlackClient, method: str, raw: Any) -> Conversation:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise slack.malformed(method, "the channel has no 'id'")
    return Conversation(
        id=raw["id"],
        name=as_text(raw.get("name")),
        is_private=as_bool(raw.get("is_private")),
        is_channel=as_bool(raw.get("is_channel")),
        is_group=as_bool(raw.get("is_group")),
        is_instant_message=as_bool(raw.get("is_im")),
        is_multi_person_instant_message=as_bool(raw.get("is_mpim")),
        created=as_int(raw.get("created")),
        is_archived=as_bool(raw.get("is_archived")),
        is_general=as_bool(raw.get("is_general")),
        topic=topic(raw.get("topic")),
        purpose=topic(raw.get("purpose")),
    )


class UserProfile(Output):
    """A user's profile."""

    title: str | None = None
    """Job title."""
    phone: str | None = None
    """Phone number."""
    real_name: str | None = None
    """Real name."""
    real_name_normalized: str | None = None
    """Real name with non-Latin characters filtered out."""
    display_name: str | None = None
    """Display name."""
    display_name_normalized: str | None = None
    """Display name with non-Latin characters filtered out."""
    status_text: str | None = None
    """Status text."""
    status_emoji: str | None = None
    """Status emoji."""
    email: str | None = None
    """E-mail address (needs the ``users:read.email`` scope)."""
    image_72: str | None = None
    """URL of the 72×72 avatar."""
    image_192: str | None = None
    """URL of the 192×192 avatar."""
    team: str | None = None
    """Team id."""


class User(Output):
    """A Slack user."""

    id: str
    """User id (``U...`` or ``W...``)."""
    team_id: str | None = None
    """Team (workspace) id."""
    name: str | None = None
    """User name."""
    deleted: bool | None = None
    """Whether the user is deactivated."""
    real_name: str | None = None
    """Real name."""
    tz: str | None = None
    """Time zone (``America/Los_Angeles``)."""
    tz_label: str | None = None
    """Time zone label."""
    tz_offset: int | None = None
    """Time zone offset from UTC, in seconds."""
    profile: UserProfile | None = None
    """Profile fields."""
    is_admin: bool | None = None
    """Workspace admin."""
    is_owner: bool | None = None
    """Workspace owner."""
    is_primary_owner: bool | None = None
    """Primary owner."""
    is_restricted: bool | None = None
    """Multi-channel guest."""
    is_ultra_restricted: bool | None = None
    """Single-channel guest."""
    is_bot: bool | None = None
    """A bot user."""
    is_app_user: bool | None = None
    """An app user."""
    updated: int | None = None
    """When the user last changed (Unix seconds)."""


def user(slack: SlackClient, method: str, raw: Any) -> User:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise slack.malformed(method, "the user has no 'id'")
    prof = raw.get("profile") if isinstance(raw.get("profile"), dict) else None
    profile = None
    if prof is not None:
        profile = UserProfile(**{name: as_text(prof.get(name)) for name in UserProfile.model_fields})
    return User(
        id=raw["id"],
        team_id=as_text(raw.get("team_id")),
        name=as_text(raw.get("name")),
        deleted=as_bool(raw.get("deleted")),
        real_name=as_text(raw.get("real_name")),
        tz=as_text(raw.get("tz")),
        tz_label=as_text(raw.get("tz_label")),
        tz_offset=as_int(raw.get("tz_offset")),
        profile=profile,
        is_admin=as_bool(raw.get("is_admin")),
        is_owner=as_bool(raw.get("is_owner")),
        is_primary_owner=as_bool(raw.get("is_primary_owner")),
        is_restricted=as_bool(raw.get("is_restricted")),
        is_ultra_restricted=as_bool(raw.get("is_ultra_restricted")),
        is_bot=as_bool(raw.get("is_bot")),
        is_app_user=as_bool(raw.get("is_app_user")),
        updated=as_int(raw.get("updated")),
    )


class File(Output):
    """A file in Slack."""

    id: str
    """File id (``F...``)."""
    created: int | None = None
    """When the file was created (Unix seconds)."""
    name: str | None = None
    """File name."""
    title: str | None = None
    """Title."""
    mimetype: str | None = None
    """MIME type."""
    filetype: str | None = None
    """Slack's file type (``text``, ``pdf``, ``png``...)."""
    pretty_type: str | None = None
    """Human-readable file type."""
    user: str | None = None
    """Id of the user who uploaded it."""
    size: int | None = None
    """Size in bytes."""
    url_private: str | None = None
    """Download URL (needs the token)."""
    url_private_download: str | None = None
    """Download URL that forces a download."""
    permalink: str | None = None
    """Link to the file in Slack."""
    permalink_public: str | None = None
    """Public link, when the file is shared publicly."""
    is_public: bool | None = None
    """Whether the file is shared in a public channel."""
    channels: list[str] | None = None
    """Public channels it is shared in."""
    groups: list[str] | None = None
    """Private channels it is shared in."""
    ims: list[str] | None = None
    """Direct messages it is shared in."""


def file(slack: SlackClient, method: str, raw: Any) -> File:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise slack.malformed(method, "the file has no 'id'")
    text = ("name", "title", "mimetype", "filetype", "pretty_type", "user", "url_private", "url_private_download",
            "permalink", "permalink_public")  # fmt: skip
    return File(
        id=raw["id"],
        created=as_int(raw.get("created")),
        size=as_int(raw.get("size")),
        is_public=as_bool(raw.get("is_public")),
        channels=as_str_list(raw.get("channels")),
        groups=as_str_list(raw.get("groups")),
        ims=as_str_list(raw.get("ims")),
        **{k: as_text(raw.get(k)) for k in text},
    )


# -- assets ------------------------------------------------------------------------------------------
def slack_asset(kind: str, object_id: str, out: Output, display: str | None = None, **meta: Any) -> Asset:
    """One Slack object as an asset: ``slack:<kind>:<team id>:<object id>``, workspace in metadata."""
    ws = out._workspace or {}
    team = ws.get("teamId") or "unknown-team"
    metadata = {"system": "slack", "kind": kind, f"{kind}Id": object_id, "teamId": ws.get("teamId"),
                "team": ws.get("team"), "workspaceUrl": ws.get("url"), **meta}  # fmt: skip
    return Asset(
        id=f"slack:{kind}:{team}:{object_id}",
        type=EXTERNAL,
        display_name=display,
        metadata={k: v for k, v in metadata.items() if v is not None},
    )
