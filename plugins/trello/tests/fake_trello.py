"""A fake Trello REST API (``/1``) over real HTTP on 127.0.0.1, written from Trello's API reference.

* Authentication as Trello takes it: ``Authorization: OAuth oauth_consumer_key="<key>",
  oauth_token="<token>"`` or the ``key`` and ``token`` query parameters. An unknown key is 401
  ``invalid key``, an unknown token 401 ``invalid token``, a read-only token writing 401
  ``unauthorized card permission requested`` (plain-text bodies, as Trello sends them).
* Rate limits per token (``x-rate-limit-api-token-*`` headers on every answer; past the limit,
  429 ``{"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}``).
* Ids are 24-hex ObjectIds whose first 4 bytes are the creation time; a malformed id is 400
  ``invalid id``, an unknown one 404 ``The requested resource was not found.``.
* ``POST /1/cards`` (``idList`` required, ``name``, ``desc``, ``pos``, ``due``, ``dueComplete``,
  ``idMembers``, ``idLabels``), ``GET``/``PUT /1/cards/{id}`` (``idList``/``idBoard`` move the card),
  ``POST /1/cards/{id}/actions/comments?text=`` (a ``commentCard`` action), ``GET
  /1/boards/{id}/cards`` and ``GET /1/lists/{id}/cards`` (open cards; ``fields`` selects fields).
  Parameters are read from the query string or a JSON body, as Trello does; every change sets
  the card's ``dateLastActivity``.

Faults are injected with :meth:`inject`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from roost.testing.http import FakeHttpServer, Reply, Request

_OAUTH = re.compile(r'oauth_consumer_key="([^"]*)".*oauth_token="([^"]*)"')
_ID = re.compile(r"^[0-9a-f]{24}$")
NOT_FOUND = "The requested resource was not found."


class TrelloError(Exception):
    def __init__(self, status: int, body: str | dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


def object_id(at: float | None = None) -> str:
    """A MongoDB ObjectId as Trello's ids are: creation time, then random bytes."""
    return f"{int(at if at is not None else time.time()):08x}{secrets.token_hex(8)}"


def stamp(at: float | None = None) -> str:
    when = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeTrello(FakeHttpServer):
    protocol_version = "HTTP/1.1"
    fault_content_type = "text/plain; charset=utf-8"

    def __init__(
        self, key: str, tokens: dict[str, str], *, rate_limit: int = 100, window: float = 10.0
    ) -> None:
        super().__init__()
        self.key = key
        self.tokens = dict(tokens)
        """token -> ``write`` or ``read``."""
        self.rate_limit = rate_limit
        self.window = window
        """Seconds of the rate-limit window (Trello's is 10)."""
        self._window: dict[str, list[float]] = {}
        self.boards: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, dict[str, Any]] = {}
        self.actions: list[dict[str, Any]] = []
        self.member = {"id": object_id(), "username": "roostbot", "fullName": "Roost Bot"}
        self.model_lock = threading.Lock()

    # -- the model -----------------------------------------------------------------------------------------
    def add_board(self, name: str) -> dict[str, Any]:
        board_id = object_id()
        board = {"id": board_id, "name": name, "closed": False, "shortLink": secrets.token_urlsafe(6)[:8]}
        self.boards[board_id] = board
        return board

    def add_list(self, board: dict[str, Any], name: str) -> dict[str, Any]:
        lst = {"id": object_id(), "name": name, "idBoard": board["id"], "closed": False, "pos": 16384.0}
        self.lists[lst["id"]] = lst
        return lst

    def add_card(
        self, lst: dict[str, Any], name: str, *, created: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        with self.model_lock:
            return self._new_card({"idList": lst["id"], "name": name, **fields}, created)

    def touch(self, card_id: str, **changes: Any) -> dict[str, Any]:
        """A change made by someone in Trello's UI: new fields and a new last activity."""
        with self.model_lock:
            card = self.cards[card_id]
            card.update(changes)
            card["dateLastActivity"] = self._later(card["dateLastActivity"])
            return card

    def _later(self, previous: str | None) -> str:
        """Now, strictly after ``previous`` (two changes in one millisecond still differ)."""
        now = stamp()
        while previous is not None and now <= previous:
            time.sleep(0.001)
            now = stamp()
        return now

    def _new_card(self, params: dict[str, Any], created: float | None = None) -> dict[str, Any]:
        lst = self.lists.get(str(params.get("idList")))
        if lst is None:
            raise TrelloError(400, "invalid value for idList")
        card_id = object_id(created)
        short = secrets.token_urlsafe(6)[:8]
        board = self.boards[lst["idBoard"]]
        id_short = 1 + sum(1 for c in self.cards.values() if c["idBoard"] == board["id"])
        name = str(params.get("name") or "")
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        siblings = [c["pos"] for c in self.cards.values() if c["idList"] == lst["id"]]
        card = {
            "id": card_id,
            "name": name,
            "desc": str(params.get("desc") or ""),
            "idList": lst["id"],
            "idBoard": board["id"],
            "closed": False,
            "due": params.get("due"),
            "dueComplete": bool(params.get("dueComplete") or False),
            "pos": self._pos(params.get("pos"), siblings),
            "idMembers": list(params.get("idMembers") or []),
            "idLabels": list(params.get("idLabels") or []),
            "labels": [],
            "shortLink": short,
            "shortUrl": f"https://trello.com/c/{short}",
            "url": f"https://trello.com/c/{short}/{id_short}-{slug}",
            "idShort": id_short,
            "dateLastActivity": stamp(created),
            "badges": {"comments": 0, "attachments": 0, "description": bool(params.get("desc"))},
        }
        self.cards[card_id] = card
        return card

    @staticmethod
    def _pos(value: Any, siblings: list[float]) -> float:
        if value in (None, "bottom"):
            return (max(siblings) if siblings else 0.0) + 16384.0
        if value == "top":
            return (min(siblings) if siblings else 16384.0) / 2
        try:
            pos = float(value)
        except (TypeError, ValueError):
            raise TrelloError(400, "invalid value for pos") from None
        if pos <= 0:
            raise TrelloError(400, "invalid value for pos")
        return pos

    # -- HTTP ----------------------------------------------------------------------------------------------
    def answer(self, request: Request) -> Reply:
        token = None
        try:
            token = self._authenticate(request)
            headers = self._rate(token)
            with self.model_lock:
                status, body = self._route(request, token)
        except TrelloError as exc:
            status, body = exc.status, exc.body
            headers = self._rate(token, count=False) if token else {}
        if isinstance(body, str):
            return status, {"Content-Type": "text/plain; charset=utf-8", **headers}, body.encode()
        return (
            status,
            {"Content-Type": "application/json; charset=utf-8", **headers},
            json.dumps(body).encode(),
        )

    def _authenticate(self, request: Request) -> str:
        match = _OAUTH.search(request.headers.get("Authorization") or "")
        key, token = match.groups() if match else (None, None)
        key = key or (request.query.get("key") or [None])[0]
        token = token or (request.query.get("token") or [None])[0]
        if key != self.key:
            raise TrelloError(401, "invalid key")
        if token not in self.tokens:
            raise TrelloError(401, "invalid token")
        return token

    def _rate(self, token: str, count: bool = True) -> dict[str, str]:
        now = time.monotonic()
        window = [t for t in self._window.get(token, []) if now - t < self.window]
        if count:
            if len(window) >= self.rate_limit:
                self._window[token] = window
                raise TrelloError(
                    429, {"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}
                )
            window.append(now)
        self._window[token] = window
        return {
            "x-rate-limit-api-token-interval-ms": str(int(self.window * 1000)),
            "x-rate-limit-api-token-max": str(self.rate_limit),
            "x-rate-limit-api-token-remaining": str(max(0, self.rate_limit - len(window))),
            "x-rate-limit-api-key-interval-ms": "10000",
            "x-rate-limit-api-key-max": "300",
        }

    def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[-1] for k, v in request.query.items() if k not in ("key", "token")}
        if request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                raise TrelloError(400, "invalid JSON") from None
            if isinstance(body, dict):
                params.update(body)
        return params

    def _card(self, card_id: str) -> dict[str, Any]:
        if not _ID.match(card_id):
            found = next((c for c in self.cards.values() if c["shortLink"] == card_id), None)
            if found is None:
                raise TrelloError(400, "invalid id")
            return found
        if card_id not in self.cards:
            raise TrelloError(404, NOT_FOUND)
        return self.cards[card_id]

    def _route(self, request: Request, token: str) -> tuple[int, Any]:
        parts = request.path.strip("/").split("/")
        if parts[:1] != ["1"]:
            raise TrelloError(404, "Cannot " + request.method + " " + request.path)
        parts = parts[1:]
        writes = request.method in ("POST", "PUT", "DELETE")
        if writes and self.tokens[token] != "write":
            raise TrelloError(401, "unauthorized card permission requested")
        params = self._params(request)
        if parts == ["cards"] and request.method == "POST":
            return 200, self._new_card(params)
        if len(parts) == 2 and parts[0] == "cards":
            card = self._card(parts[1])
            if request.method == "GET":
                return 200, card
            if request.method == "PUT":
                return 200, self._update(card, params)
        if (
            len(parts) == 4
            and parts[0] == "cards"
            and parts[2:] == ["actions", "comments"]
            and request.method == "POST"
        ):
            return 200, self._comment(self._card(parts[1]), params)
        if (
            len(parts) == 3
            and parts[2] == "cards"
            and parts[0] in ("boards", "lists")
            and request.method == "GET"
        ):
            return 200, self._cards_of(parts[0], parts[1], params)
        raise TrelloError(404, "Cannot " + request.method + " " + request.path)

    def _update(self, card: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if "idList" in params:
            lst = self.lists.get(str(params["idList"]))
            if lst is None:
                raise TrelloError(400, "invalid value for idList")
            if "idBoard" in params and params["idBoard"] != lst["idBoard"]:
                raise TrelloError(400, "invalid value for idList")
            card["idList"], card["idBoard"] = lst["id"], lst["idBoard"]
        for key in ("name", "desc"):
            if key in params:
                card[key] = str(params[key] or "")
        for key in ("closed", "dueComplete"):
            if key in params:
                if not isinstance(params[key], bool) and str(params[key]) not in ("true", "false"):
                    raise TrelloError(400, f"invalid value for {key}")
                card[key] = params[key] is True or str(params[key]) == "true"
        if "due" in params:
            card["due"] = params["due"] or None
        if "pos" in params:
            siblings = [
                c["pos"] for c in self.cards.values() if c["idList"] == card["idList"] and c is not card
            ]
            card["pos"] = self._pos(params["pos"], siblings)
        card["dateLastActivity"] = self._later(card["dateLastActivity"])
        return card

    def _comment(self, card: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("text")
        if not text:
            raise TrelloError(400, "invalid value for text")
        board, lst = self.boards[card["idBoard"]], self.lists[card["idList"]]
        action = {
            "id": object_id(),
            "idMemberCreator": self.member["id"],
            "data": {
                "text": text,
                "textData": {"emoji": {}},
                "card": {k: card[k] for k in ("id", "name", "idShort", "shortLink")},
                "board": {k: board[k] for k in ("id", "name", "shortLink")},
                "list": {k: lst[k] for k in ("id", "name")},
            },
            "appCreator": None,
            "type": "commentCard",
            "date": stamp(),
            "limits": {"reactions": {"perAction": {"status": "ok", "disableAt": 900, "warnAt": 880}}},
            "memberCreator": self.member,
        }
        self.actions.append(action)
        card["badges"]["comments"] += 1
        card["dateLastActivity"] = self._later(card["dateLastActivity"])
        return action

    def _cards_of(self, kind: str, ident: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if not _ID.match(ident):
            raise TrelloError(400, "invalid id")
        owner = (self.boards if kind == "boards" else self.lists).get(ident)
        if owner is None:
            raise TrelloError(404, NOT_FOUND)
        key = "idBoard" if kind == "boards" else "idList"
        found = [c for c in self.cards.values() if c[key] == ident and not c["closed"]]
        found.sort(key=lambda c: (c["idList"], c["pos"]))
        fields = [f for f in str(params.get("fields") or "all").split(",") if f]
        if fields == ["all"]:
            return found
        return [{"id": c["id"], **{f: c[f] for f in fields if f in c}} for c in found]
