"""Every Slack App task type, in the order the registry lists them."""

from __future__ import annotations

from roost_slack import canvases, chats, conversations, files, reactions, users

TASKS = (
    chats.Post,
    chats.Update,
    chats.Delete,
    conversations.Create,
    conversations.Archive,
    conversations.Unarchive,
    conversations.List,
    conversations.Invite,
    conversations.Kick,
    conversations.Info,
    conversations.History,
    conversations.Members,
    conversations.Join,
    conversations.Leave,
    conversations.Rename,
    conversations.SetTopic,
    conversations.SetPurpose,
    canvases.Create,
    canvases.Edit,
    canvases.Delete,
    files.Upload,
    files.Info,
    files.Delete,
    reactions.Add,
    reactions.Remove,
    reactions.Get,
    users.LookupByEmail,
    users.Info,
)

__all__ = ["TASKS"]
