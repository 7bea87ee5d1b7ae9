"""A fake Slack Web API served over real HTTP on 127.0.0.1, for the plugin's tests.

It follows Slack's method reference (api.slack.com/methods):

* every method is ``POST /api/<method>`` taking form-encoded or JSON arguments (``slack_sdk``
  sends both), authenticated by ``Authorization: Bearer <token>``;
* answers are HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": "<code>"}``;
  ``missing_scope`` carries ``needed`` and ``provided``; ``invalid_arguments`` carries
  ``response_metadata.messages``;
* list methods page with ``limit`` and ``cursor``, answering ``response_metadata.next_cursor``
  (empty on the last page);
* the files v2 flow: ``files.getUploadURLExternal`` returns an ``upload_url`` on this server,
  the bytes are POSTed there, ``files.completeUploadExternal`` shares the files;
* tokens carry OAuth scopes; channels have members, so posting where the bot is not a member is
  ``not_in_channel``, and archived channels refuse messages (``is_archived``).

Faults (429 with ``Retry-After``, 5xx, malformed bodies, hangs) come from :meth:`inject`.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from roost.testing.http import FakeHttpServer, Reply, Request

BOT_TOKEN = "xoxb-1111-2222-good-bot-token"
READ_ONLY_TOKEN = "xoxb-1111-3333-read-only-token"
ALL_SCOPES = {
    "chat:write", "channels:manage", "channels:read", "channels:history", "channels:join", "groups:write",
    "canvases:write", "files:write", "files:read", "reactions:write", "reactions:read", "users:read",
    "users:read.email",
}  # fmt: skip
READ_SCOPES = {"channels:read", "users:read"}

SCOPES = {
    "chat.postMessage": "chat:write", "chat.update": "chat:write", "chat.delete": "chat:write",
    "conversations.create": "channels:manage", "conversations.archive": "channels:manage",
    "conversations.unarchive": "channels:manage", "conversations.rename": "channels:manage",
    "conversations.setTopic": "channels:manage", "conversations.setPurpose": "channels:manage",
    "conversations.invite": "channels:manage", "conversations.kick": "channels:manage",
    "conversations.leave": "channels:manage", "conversations.join": "channels:join",
    "conversations.list": "channels:read", "conversations.info": "channels:read",
    "conversations.members": "channels:read", "conversations.history": "channels:history",
    "canvases.create": "canvases:write", "canvases.edit": "canvases:write", "canvases.delete": "canvases:write",
    "files.getUploadURLExternal": "files:write", "files.completeUploadExternal": "files:write",
    "files.delete": "files:write", "files.info": "files:read",
    "reactions.add": "reactions:write", "reactions.remove": "reactions:write", "reactions.get": "reactions:read",
    "users.lookupByEmail": "users:read.email", "users.info": "users:read",
}  # fmt: skip
_NAME = re.compile(r"^[a-z0-9_-]{1,80}$")


class Fail(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body = {"ok": False, "error": error, **extra}


@dataclass
class FakeSlack(FakeHttpServer):
    team_id: str = "T0FAKE1"
    team: str = "Roost Testing"
    bot_user: str = "U0BOT01"
    tokens: dict[str, set[str]] = field(
        default_factory=lambda: {BOT_TOKEN: set(ALL_SCOPES), READ_ONLY_TOKEN: set(READ_SCOPES)}
    )
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    canvases: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1001))

    def __post_init__(self) -> None:
        super().__init__()
        self.add_user("ada", "ada@example.com", "Ada Lovelace")
        self.add_user("grace", "grace@example.com", "Grace Hopper")
        self.general = self.add_channel("general", is_general=True)

    # -- set-up helpers ------------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids)}"

    def add_user(self, name: str, email: str, real_name: str) -> str:
        uid = self.new_id("U")
        self.users[uid] = {
            "id": uid, "team_id": self.team_id, "name": name, "deleted": False, "real_name": real_name,
            "tz": "Europe/London", "tz_label": "Greenwich Mean Time", "tz_offset": 0, "is_admin": False,
            "is_owner": False, "is_bot": False, "is_app_user": False, "updated": 1700000000,
            "profile": {"real_name": real_name, "display_name": name, "email": email, "team": self.team_id,
                        "image_72": f"https://avatars.example/{uid}_72.png"},
        }  # fmt: skip
        return uid

    def user_id(self, name: str) -> str:
        return next(u["id"] for u in self.users.values() if u["name"] == name)

    def add_channel(
        self, name: str, *, private: bool = False, bot_member: bool = True, is_general: bool = False
    ) -> str:
        cid = self.new_id("G" if private else "C")
        self.channels[cid] = {
            "id": cid, "name": name, "is_channel": not private, "is_group": private, "is_im": False,
            "is_mpim": False, "is_private": private, "created": int(time.time()), "is_archived": False,
            "is_general": is_general, "creator": self.bot_user, "context_team_id": self.team_id,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }  # fmt: skip
        self.members[cid] = [self.bot_user] if bot_member else []
        self.messages[cid] = []
        return cid

    def add_message(self, channel: str, text: str, **extra: Any) -> dict[str, Any]:
        ts = f"{time.time():.6f}"
        while any(m["ts"] == ts for m in self.messages[channel]):
            ts = f"{float(ts) + 0.000001:.6f}"
        msg = {
            "type": "message",
            "user": self.bot_user,
            "text": text,
            "ts": ts,
            "team": self.team_id,
            **extra,
        }
        self.messages[channel].append(msg)
        return msg

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    # -- request handling ----------------------------------------------------------------------------
    def answer(self, req: Request) -> Reply:
        if req.path.startswith("/upload/v1/"):
            return self._upload(req)
        method = req.path.removeprefix("/api/")
        try:
            args = self._args(req)
            scopes = self._auth(req, args)
            needed = SCOPES.get(method)
            if needed and needed not in scopes:
                raise Fail("missing_scope", needed=needed, provided=",".join(sorted(scopes)))
            handler = getattr(self, "m_" + method.replace(".", "_"), None)
            if handler is None:
                raise Fail("unknown_method")
            with self.lock:
                body = {"ok": True, **handler(args)}
        except Fail as exc:
            body = exc.body
        return 200, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()

    def _args(self, req: Request) -> dict[str, Any]:
        args: dict[str, Any] = {k: v[0] for k, v in req.query.items()}
        ctype = (req.headers.get("Content-Type") or "").lower()
        if "application/json" in ctype:
            try:
                data = json.loads(req.body or b"{}")
            except ValueError:
                raise Fail("invalid_json") from None
            if not isinstance(data, dict):
                raise Fail("json_not_object")
            args.update(data)
        elif req.body:
            args.update({k: v[0] for k, v in parse_qs(req.body.decode(), keep_blank_values=True).items()})
        return args

    def _auth(self, req: Request, args: dict[str, Any]) -> set[str]:
        header = req.headers.get("Authorization") or ""
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else args.get("token")
        if not token:
            raise Fail("not_authed")
        if token not in self.tokens:
            raise Fail("invalid_auth")
        return self.tokens[token]

    # -- helpers -------------------------------------------------------------------------------------
    @staticmethod
    def _required(args: dict[str, Any], *names: str) -> None:
        missing = [n for n in names if args.get(n) in (None, "")]
        if missing:
            raise Fail(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] missing required field: {n}" for n in missing]},
            )

    def _channel(self, ref: Any) -> dict[str, Any]:
        if isinstance(ref, str) and ref.startswith("#"):
            found = [c for c in self.channels.values() if c["name"] == ref[1:]]
            if found:
                return found[0]
        if ref not in self.channels:
            raise Fail("channel_not_found")
        return self.channels[ref]

    def _member_channel(self, ref: Any) -> dict[str, Any]:
        channel = self._channel(ref)
        if self.bot_user not in self.members[channel["id"]]:
            raise Fail("not_in_channel")
        return channel

    def _message(self, channel: str, ts: Any) -> dict[str, Any]:
        for msg in self.messages[channel]:
            if msg["ts"] == ts:
                return msg
        raise Fail("message_not_found")

    @staticmethod
    def _page(items: list[Any], args: dict[str, Any], key: str, default_limit: int = 100) -> dict[str, Any]:
        limit = int(args.get("limit") or default_limit)
        cursor = args.get("cursor")
        start = int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0
        chunk = items[start : start + limit]
        nxt = (
            base64.b64encode(f"offset:{start + limit}".encode()).decode()
            if start + limit < len(items)
            else ""
        )
        return {key: chunk, "response_metadata": {"next_cursor": nxt}}

    @staticmethod
    def _truthy(value: Any) -> bool:
        return value in (True, "1", "true", 1)

    # -- methods -------------------------------------------------------------------------------------
    def m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://roost-testing.slack.com/", "team": self.team, "user": "roostbot",
                "team_id": self.team_id, "user_id": self.bot_user, "bot_id": "B0BOT01"}  # fmt: skip

    def m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        self._required(args, "channel")
        channel = self._member_channel(args["channel"])
        if channel["is_archived"]:
            raise Fail("is_archived")
        extra: dict[str, Any] = {}
        if args.get("blocks"):
            blocks = json.loads(args["blocks"]) if isinstance(args["blocks"], str) else args["blocks"]
            if not isinstance(blocks, list) or not all(isinstance(b, dict) and "type" in b for b in blocks):
                raise Fail("invalid_blocks")
            extra["blocks"] = blocks
        if not args.get("text") and not extra and not args.get("attachments"):
            raise Fail("no_text")
        if args.get("thread_ts"):
            parent = self._message(channel["id"], args["thread_ts"])
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            extra["thread_ts"] = args["thread_ts"]
        for key in ("username", "icon_emoji", "icon_url"):
            if args.get(key):
                extra[key] = args[key]
        msg = self.add_message(channel["id"], args.get("text") or "", **extra)
        return {"channel": channel["id"], "ts": msg["ts"], "message": msg}

    def m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        self._required(args, "channel", "ts")
        channel = self._channel(args["channel"])
        msg = self._message(channel["id"], args["ts"])
        if msg["user"] != self.bot_user:
            raise Fail("cant_update_message")
        if args.get("text") is not None:
            msg["text"] = args["text"]
        if args.get("blocks"):
            msg["blocks"] = json.loads(args["blocks"]) if isinstance(args["blocks"], str) else args["blocks"]
        msg["edited"] = {"user": self.bot_user, "ts": f"{time.time():.6f}"}
        return {"channel": channel["id"], "ts": msg["ts"], "text": msg["text"]}

    def m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        self._required(args, "channel", "ts")
        channel = self._channel(args["channel"])
        msg = self._message(channel["id"], args["ts"])
        self.messages[channel["id"]].remove(msg)
        return {"channel": channel["id"], "ts": msg["ts"]}

    def m_conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        self._required(args, "name")
        name = str(args["name"])
        if not _NAME.match(name):
            raise Fail("invalid_name_specials")
        if any(c["name"] == name for c in self.channels.values()):
            raise Fail("name_taken")
        cid = self.add_channel(name, private=self._truthy(args.get("is_private")))
        return {"channel": self.channels[cid]}

    def m_conversations_archive(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if channel["is_archived"]:
            raise Fail("already_archived")
        channel["is_archived"] = True
        return {}

    def m_conversations_unarchive(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if not channel["is_archived"]:
            raise Fail("not_archived")
        channel["is_archived"] = False
        return {}

    def m_conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        types = str(args.get("types") or "public_channel").split(",")
        rows = [
            c for c in self.channels.values()
            if (("private_channel" in types and c["is_private"]) or ("public_channel" in types and not c["is_private"]))
            and not (self._truthy(args.get("exclude_archived")) and c["is_archived"])
        ]  # fmt: skip
        return self._page(rows, args, "channels")

    def m_conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        self._required(args, "channel", "users")
        channel = self._member_channel(args["channel"])
        users = str(args["users"]).split(",")
        for uid in users:
            if uid not in self.users:
                raise Fail("user_not_found")
            if uid in self.members[channel["id"]]:
                raise Fail("already_in_channel")
        self.members[channel["id"]].extend(users)
        return {"channel": channel}

    def m_conversations_kick(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if args.get("user") not in self.members[channel["id"]]:
            raise Fail("not_in_channel")
        self.members[channel["id"]].remove(args["user"])
        return {}

    def m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self._channel(args.get("channel"))}

    def m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._member_channel(args.get("channel"))
        rows = [
            m
            for m in reversed(self.messages[channel["id"]])
            if "thread_ts" not in m or m["thread_ts"] == m["ts"]
        ]
        if args.get("oldest"):
            rows = [m for m in rows if float(m["ts"]) > float(args["oldest"])]
        if args.get("latest"):
            rows = [m for m in rows if float(m["ts"]) < float(args["latest"])]
        page = self._page(rows, args, "messages")
        page["has_more"] = bool(page["response_metadata"]["next_cursor"])
        return page

    def m_conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        return self._page(self.members[channel["id"]], args, "members")

    def m_conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if channel["is_archived"]:
            raise Fail("is_archived")
        if self.bot_user not in self.members[channel["id"]]:
            self.members[channel["id"]].append(self.bot_user)
        return {"channel": channel}

    def m_conversations_leave(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._member_channel(args.get("channel"))
        self.members[channel["id"]].remove(self.bot_user)
        return {}

    def m_conversations_rename(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if not _NAME.match(str(args.get("name") or "")):
            raise Fail("invalid_name_specials")
        channel["name"] = args["name"]
        return {"channel": channel}

    def _set(self, args: dict[str, Any], what: str) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        channel[what] = {
            "value": args.get(what) or "",
            "creator": self.bot_user,
            "last_set": int(time.time()),
        }
        return {"channel": channel}

    def m_conversations_setTopic(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return self._set(args, "topic")

    def m_conversations_setPurpose(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return self._set(args, "purpose")

    def m_canvases_create(self, args: dict[str, Any]) -> dict[str, Any]:
        content = args.get("document_content")
        content = json.loads(content) if isinstance(content, str) else content
        if content is not None and (not isinstance(content, dict) or content.get("type") != "markdown"):
            raise Fail("canvas_creation_failed")
        if args.get("channel_id"):
            self._channel(args["channel_id"])
        cid = self.new_id("F")
        self.canvases[cid] = {"title": args.get("title"), "markdown": (content or {}).get("markdown", ""),
                              "channel_id": args.get("channel_id")}  # fmt: skip
        return {"canvas_id": cid}

    def m_canvases_edit(self, args: dict[str, Any]) -> dict[str, Any]:
        canvas = self.canvases.get(args.get("canvas_id"))
        if canvas is None:
            raise Fail("canvas_not_found")
        changes = json.loads(args["changes"]) if isinstance(args.get("changes"), str) else args.get("changes")
        for change in changes or []:
            op = change.get("operation")
            if op == "rename":
                canvas["title"] = (change.get("title_content") or {}).get("markdown")
            elif op == "insert_at_end":
                canvas["markdown"] += (change.get("document_content") or {}).get("markdown", "")
            elif op == "insert_at_start":
                canvas["markdown"] = (change.get("document_content") or {}).get("markdown", "") + canvas[
                    "markdown"
                ]
            elif op in ("replace", "delete", "insert_after", "insert_before"):
                if op != "replace" and not change.get("section_id"):
                    raise Fail("canvas_editing_failed")
                if op == "replace" and not change.get("section_id"):
                    canvas["markdown"] = (change.get("document_content") or {}).get("markdown", "")
            else:
                raise Fail(
                    "invalid_arguments", response_metadata={"messages": [f"[ERROR] unknown operation: {op}"]}
                )
        return {}

    def m_canvases_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.canvases.pop(args.get("canvas_id"), None) is None:
            raise Fail("canvas_not_found")
        return {}

    def m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self._required(args, "filename", "length")
        fid = self.new_id("F")
        self.uploads[fid] = {"filename": args["filename"], "length": int(args["length"]), "data": None}
        return {"upload_url": f"{self.url}/upload/v1/{fid}", "file_id": fid}

    def _upload(self, req: Request) -> Reply:
        fid = req.path.rsplit("/", 1)[-1]
        with self.lock:
            upload = self.uploads.get(fid)
            if upload is None or req.method != "POST":
                return 404, {"Content-Type": "text/plain"}, b"Not Found"
            upload["data"] = req.body
        return 200, {"Content-Type": "text/plain"}, f"OK - {len(req.body)}".encode()

    def m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        files = json.loads(args["files"]) if isinstance(args.get("files"), str) else args.get("files")
        channels = [c for c in str(args.get("channels") or args.get("channel_id") or "").split(",") if c]
        for c in channels:
            self._member_channel(c)
        out = []
        for item in files or []:
            upload = self.uploads.get(item.get("id"))
            if upload is None or upload["data"] is None:
                raise Fail("file_not_found")
            if len(upload["data"]) != upload["length"]:
                raise Fail("file_upload_size_mismatch")
            fid = item["id"]
            self.files[fid] = {
                "id": fid, "created": int(time.time()), "name": upload["filename"],
                "title": item.get("title") or upload["filename"], "mimetype": "application/octet-stream",
                "filetype": "binary", "pretty_type": "Binary", "user": self.bot_user, "size": len(upload["data"]),
                "url_private": f"{self.url}/files-pri/{self.team_id}-{fid}/{upload['filename']}",
                "permalink": f"https://roost-testing.slack.com/files/{self.bot_user}/{fid}/{upload['filename']}",
                "is_public": bool(channels), "channels": channels, "groups": [], "ims": [],
                "data": upload["data"], "thread_ts": args.get("thread_ts"),
                "initial_comment": args.get("initial_comment"),
            }  # fmt: skip
            out.append(
                {
                    k: v
                    for k, v in self.files[fid].items()
                    if k not in ("data", "initial_comment", "thread_ts")
                }
            )
        return {"files": out}

    def m_files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        f = self.files.get(args.get("file"))
        if f is None:
            raise Fail("file_not_found")
        return {"file": {k: v for k, v in f.items() if k not in ("data", "initial_comment", "thread_ts")}}

    def m_files_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.files.pop(args.get("file"), None) is None:
            raise Fail("file_not_found")
        return {}

    def _reacted(self, args: dict[str, Any]) -> dict[str, Any]:
        self._required(args, "channel", "timestamp", "name")
        return self._message(self._channel(args["channel"])["id"], args["timestamp"])

    def m_reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self._reacted(args)
        reactions = msg.setdefault("reactions", [])
        found = next((r for r in reactions if r["name"] == args["name"]), None)
        if found and self.bot_user in found["users"]:
            raise Fail("already_reacted")
        if found is None:
            reactions.append({"name": args["name"], "users": [self.bot_user], "count": 1})
        else:
            found["users"].append(self.bot_user)
            found["count"] += 1
        return {}

    def m_reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self._reacted(args)
        found = next((r for r in msg.get("reactions", []) if r["name"] == args["name"]), None)
        if found is None or self.bot_user not in found["users"]:
            raise Fail("no_reaction")
        found["users"].remove(self.bot_user)
        found["count"] -= 1
        if not found["count"]:
            msg["reactions"].remove(found)
        return {}

    def m_reactions_get(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("file"):
            f = self.files.get(args["file"])
            if f is None:
                raise Fail("file_not_found")
            return {"type": "file", "file": {"id": f["id"], "reactions": f.get("reactions", [])}}
        channel = self._channel(args.get("channel"))
        msg = self._message(channel["id"], args.get("timestamp"))
        return {"type": "message", "channel": channel["id"], "message": msg}

    def m_users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        email = str(args.get("email") or "").lower()
        for u in self.users.values():
            if u["profile"]["email"].lower() == email:
                return {"user": u}
        raise Fail("users_not_found")

    def m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("user") not in self.users:
            raise Fail("user_not_found")
        return {"user": self.users[args["user"]]}
