"""Trello cards: Create, Update, Move, Comment, and a polling Trigger for new and updated cards."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ConfigDict, field_validator, model_validator
from roost import Asset, AssetBundle, Dynamic, PollingTrigger, RunContext, Task, TaskError, is_expression
from roost import Output as _Output

from roost_trello.client import DEFAULT_BASE_URL, HttpOptions, HttpRetry, TrelloClient, segment

EXTERNAL = "io.kestra.core.models.assets.External"
TRIGGER_RETRY = HttpRetry(max_retries=1, max_wait=10.0)
"""A poll waits out one short rate limit at most: the next poll is the retry."""
CARD_FIELDS = (
    "id,name,desc,idList,idBoard,closed,dateLastActivity,due,dueComplete,pos,shortLink,shortUrl,url,idShort"
)


class Output(_Output):
    """Base of this plugin's outputs: attribute docstrings become field descriptions in the schema."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class Card(Output):
    """A Trello card as the API returns it (the fields the tasks report)."""

    id: str
    """Card identifier."""
    name: str | None = None
    """Card title."""
    desc: str | None = None
    """Card description (Markdown)."""
    list_id: str | None = None
    """Identifier of the list holding the card."""
    board_id: str | None = None
    """Identifier of the board holding the card."""
    closed: bool | None = None
    """Whether the card is archived."""
    due: str | None = None
    """Due date (ISO 8601), if any."""
    due_complete: bool | None = None
    """Whether the due date is marked complete."""
    pos: float | None = None
    """Position of the card in its list."""
    url: str | None = None
    """Full URL of the card."""
    short_url: str | None = None
    """Short URL of the card (``https://trello.com/c/<shortLink>``)."""
    short_link: str | None = None
    """Short link of the card, usable instead of its id."""
    date_last_activity: str | None = None
    """Time of the card's last activity (ISO 8601)."""


def card_of(raw: dict[str, Any]) -> Card:
    pos = raw.get("pos")
    return Card(
        id=raw["id"],
        name=raw.get("name"),
        desc=raw.get("desc"),
        list_id=raw.get("idList"),
        board_id=raw.get("idBoard"),
        closed=raw.get("closed") if isinstance(raw.get("closed"), bool) else None,
        due=raw.get("due"),
        due_complete=raw.get("dueComplete") if isinstance(raw.get("dueComplete"), bool) else None,
        pos=float(pos) if isinstance(pos, int | float) and not isinstance(pos, bool) else None,
        url=raw.get("url"),
        short_url=raw.get("shortUrl"),
        short_link=raw.get("shortLink"),
        date_last_activity=raw.get("dateLastActivity"),
    )


def card_asset(card: Card) -> Asset:
    """The asset of a card: id ``trello:card:<card id>``, with its name, list, board and URL."""
    metadata = {
        "system": "trello",
        "kind": "card",
        "cardId": card.id,
        "name": card.name,
        "listId": card.list_id,
        "boardId": card.board_id,
        "url": card.short_url or card.url,
        "closed": card.closed,
    }
    return Asset(
        id=f"trello:card:{card.id}",
        type=EXTERNAL,
        display_name=card.name,
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def _position(value: Any, error: type[Exception] = TaskError) -> Any:
    """Trello's ``pos``: ``top``, ``bottom`` or a positive number (``error`` is raised otherwise)."""
    if value is None or (isinstance(value, str) and is_expression(value)):
        return value
    text = str(value).strip().lower()
    if text in ("top", "bottom"):
        return text
    try:
        if float(text) > 0:
            return text
    except ValueError:
        pass
    raise error(f"pos must be top, bottom or a positive number, got {value!r}")


def _pos_rule(cls: Any, value: Any) -> Any:
    return _position(value, ValueError)


class TrelloConnection(Task):
    """Credentials and API location shared by the Trello tasks (not a task type itself)."""

    api_key: Dynamic[str]
    """Trello API key (from trello.com/power-ups/admin); use ``{{ secret('TRELLO_API_KEY') }}``."""
    api_token: Dynamic[str]
    """Trello API token authorising the key on a member's behalf; use ``{{ secret('TRELLO_API_TOKEN') }}``."""
    api_version: Dynamic[str] = "1"
    """Trello API version."""
    api_base_url: Dynamic[str] = DEFAULT_BASE_URL
    """Base URL of the Trello API; change it only for a proxy or a test server."""
    options: HttpOptions | None = None
    """Advanced HTTP settings: timeouts, redirects, TLS, proxy."""

    def client(self, ctx: RunContext) -> TrelloClient:
        return TrelloClient(
            self.api_base_url,
            self.api_version,
            api_key=self.api_key,
            api_token=self.api_token,
            options=self.options,
            ctx=ctx,
        )

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        card = getattr(out, "card", None)
        return [AssetBundle(outputs=[card_asset(card)])] if isinstance(card, Card) else []


class Create(TrelloConnection, type="io.kestra.plugin.trello.cards.Create"):
    """Create a card in a Trello list (``POST /1/cards``)."""

    name: Dynamic[str]
    """Title of the card."""
    list_id: Dynamic[str]
    """Identifier of the list the card is created in."""
    desc: Dynamic[str] | None = None
    """Description of the card (Markdown)."""
    pos: Dynamic[str] | None = None
    """Position in the list: ``top``, ``bottom`` (Trello's default) or a positive number."""
    due: Dynamic[str] | None = None
    """Due date, ISO 8601 (``2025-06-30T17:00:00Z``)."""
    due_complete: Dynamic[bool] | None = None
    """Mark the due date complete."""
    member_ids: Dynamic[list[str]] | None = None
    """Identifiers of the members to assign."""
    label_ids: Dynamic[list[str]] | None = None
    """Identifiers of the board labels to put on the card."""

    check_pos = field_validator("pos", mode="before")(_pos_rule)

    class Out(Output):
        card_id: str
        """Identifier of the new card."""
        card: Card
        """The card Trello created."""

    def run(self, ctx: RunContext) -> Create.Out:
        body: dict[str, Any] = {"name": self.name, "idList": segment(self.list_id, "listId")}
        optional = {
            "desc": self.desc,
            "pos": _position(self.pos),
            "due": self.due,
            "dueComplete": self.due_complete,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if self.member_ids:
            body["idMembers"] = [segment(m, "memberIds") for m in self.member_ids]
        if self.label_ids:
            body["idLabels"] = [segment(m, "labelIds") for m in self.label_ids]
        with self.client(ctx) as trello:
            ctx.logger.info("creating card %r in list %s", self.name, self.list_id)
            card = card_of(trello.card_request("POST", "/cards", json_body=body))
        ctx.logger.info("card %s created: %s", card.id, card.short_url or card.url)
        return self.Out(card_id=card.id, card=card)


class Update(TrelloConnection, type="io.kestra.plugin.trello.cards.Update"):
    """Update a card's name, description, due date, position or archived state (``PUT /1/cards/{id}``)."""

    card_id: Dynamic[str]
    """Identifier (or short link) of the card."""
    name: Dynamic[str] | None = None
    """New title."""
    desc: Dynamic[str] | None = None
    """New description (Markdown); an empty text clears it."""
    closed: Dynamic[bool] | None = None
    """Archive (true) or restore (false) the card."""
    due: Dynamic[str] | None = None
    """New due date, ISO 8601; an empty text removes it."""
    due_complete: Dynamic[bool] | None = None
    """Mark the due date complete (or not)."""
    pos: Dynamic[str] | None = None
    """New position in the list: ``top``, ``bottom`` or a positive number."""

    check_pos = field_validator("pos", mode="before")(_pos_rule)

    class Out(Output):
        card_id: str
        """Identifier of the updated card."""
        card: Card
        """The card after the update."""

    def run(self, ctx: RunContext) -> Update.Out:
        fields = {
            "name": self.name,
            "desc": self.desc,
            "closed": self.closed,
            "dueComplete": self.due_complete,
            "pos": _position(self.pos),
        }
        body: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if self.due is not None:
            body["due"] = self.due or None  # an empty text removes the due date (null)
        if not body:
            raise TaskError("nothing to update: set name, desc, closed, due, dueComplete or pos")
        card_id = segment(self.card_id, "cardId")
        with self.client(ctx) as trello:
            ctx.logger.info("updating card %s: %s", self.card_id, ", ".join(sorted(body)))
            card = card_of(trello.card_request("PUT", f"/cards/{card_id}", json_body=body))
        return self.Out(card_id=card.id, card=card)


class Move(TrelloConnection, type="io.kestra.plugin.trello.cards.Move"):
    """Move a card to another list, on the same board or another one (``PUT /1/cards/{id}``)."""

    card_id: Dynamic[str]
    """Identifier (or short link) of the card."""
    list_id: Dynamic[str]
    """Identifier of the list to move the card to."""
    board_id: Dynamic[str] | None = None
    """Identifier of the list's board, when it is not the card's current board."""
    pos: Dynamic[str] | None = None
    """Position in the new list: ``top``, ``bottom`` or a positive number."""

    check_pos = field_validator("pos", mode="before")(_pos_rule)

    class Out(Output):
        card_id: str
        """Identifier of the moved card."""
        list_id: str | None = None
        """List now holding the card."""
        board_id: str | None = None
        """Board now holding the card."""
        card: Card
        """The card after the move."""

    def run(self, ctx: RunContext) -> Move.Out:
        body: dict[str, Any] = {"idList": segment(self.list_id, "listId")}
        if self.board_id:
            body["idBoard"] = segment(self.board_id, "boardId")
        if self.pos is not None:
            body["pos"] = _position(self.pos)
        card_id = segment(self.card_id, "cardId")
        with self.client(ctx) as trello:
            ctx.logger.info("moving card %s to list %s", self.card_id, self.list_id)
            card = card_of(trello.card_request("PUT", f"/cards/{card_id}", json_body=body))
        if card.list_id and card.list_id != self.list_id:
            raise TaskError(f"Trello kept card {card.id} in list {card.list_id}, not {self.list_id}")
        return self.Out(card_id=card.id, list_id=card.list_id, board_id=card.board_id, card=card)


class Comment(TrelloConnection, type="io.kestra.plugin.trello.cards.Comment"):
    """Add a comment to a card (``POST /1/cards/{id}/actions/comments``)."""

    card_id: Dynamic[str]
    """Identifier (or short link) of the card."""
    text: Dynamic[str]
    """Text of the comment (Markdown, at most 16,384 characters)."""

    @field_validator("text")
    @classmethod
    def _length(cls, value: Any) -> Any:
        if isinstance(value, str) and not is_expression(value) and not 0 < len(value) <= 16384:
            raise ValueError("a comment holds 1 to 16384 characters")
        return value

    class Out(Output):
        comment_id: str
        """Identifier of the comment (a ``commentCard`` action)."""
        card_id: str
        """Identifier of the card commented on."""
        date: str | None = None
        """When the comment was made."""
        member_creator_id: str | None = None
        """Member who wrote the comment (the token's owner)."""

    def run(self, ctx: RunContext) -> Comment.Out:
        if not 0 < len(self.text) <= 16384:
            raise TaskError(f"a comment holds 1 to 16384 characters, got {len(self.text)}")
        card_id = segment(self.card_id, "cardId")
        with self.client(ctx) as trello:
            ctx.logger.info("commenting on card %s (%d characters)", self.card_id, len(self.text))
            # in a JSON body, as Trello also takes it: a long comment would overflow a URL, and URLs get logged
            action = trello.card_request(
                "POST", f"/cards/{card_id}/actions/comments", json_body={"text": self.text}
            )
        data = action.get("data") if isinstance(action.get("data"), dict) else {}
        card = data.get("card") if isinstance(data.get("card"), dict) else {}
        return self.Out(
            comment_id=action["id"],
            card_id=card.get("id") or self.card_id,
            date=action.get("date"),
            member_creator_id=action.get("idMemberCreator"),
        )

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not isinstance(out, Comment.Out):
            return []
        card = Card(id=out.card_id)
        return [AssetBundle(outputs=[card_asset(card)])]


# -- the polling trigger ---------------------------------------------------------------------------------------
class ChangedCard(Output):
    """A new or updated card, as the trigger reports it (Kestra's ``CardData``)."""

    card_id: str
    """Card identifier."""
    card_name: str | None = None
    """Card title."""
    card_url: str | None = None
    """Short URL of the card."""
    card_description: str | None = None
    """Card description."""
    last_activity: str | None = None
    """Time of the card's last activity (ISO 8601)."""
    action: str
    """``created`` for a card first seen and created since the previous check, else ``updated``."""
    list_id: str | None = None
    """List holding the card."""
    board_id: str | None = None
    """Board holding the card."""


def _created_at(card_id: str) -> datetime | None:
    """Trello ids are MongoDB ObjectIds: their first 4 bytes are the creation time."""
    try:
        return datetime.fromtimestamp(int(card_id[:8], 16), UTC) if len(card_id) == 24 else None
    except ValueError:
        return None


def _instant(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Trigger(PollingTrigger, type="io.kestra.plugin.trello.cards.Trigger"):
    """Start an execution when cards are created or updated on a Trello board or in lists.

    Every ``interval``, reads the cards of ``boardId`` and of each of ``lists`` and starts one execution
    with ``trigger.cards`` (and ``trigger.count``) listing the cards whose last activity changed since the
    previous check. The cards seen are remembered with the trigger's state, saved with the execution it
    starts: a restart neither fires twice for the same change nor misses one made while stopped.
    """

    api_key: Dynamic[str]
    """Trello API key; use ``{{ secret('TRELLO_API_KEY') }}``."""
    api_token: Dynamic[str]
    """Trello API token; use ``{{ secret('TRELLO_API_TOKEN') }}``."""
    api_version: Dynamic[str] = "1"
    """Trello API version."""
    api_base_url: Dynamic[str] = DEFAULT_BASE_URL
    """Base URL of the Trello API."""
    lists: Dynamic[list[str]] | None = None
    """Identifiers of the lists to watch."""
    board_id: Dynamic[str] | None = None
    """Identifier of a board to watch, across all its lists."""
    interval: timedelta = timedelta(minutes=5)
    """How often Trello is polled; the first check reports the cards active during the last interval."""
    options: HttpOptions | None = None
    """Advanced HTTP settings: timeouts, redirects, TLS, proxy."""

    @model_validator(mode="after")
    def _something_to_watch(self) -> Trigger:
        if not self.lists and not self.board_id:
            raise ValueError("set boardId or lists: the trigger needs something to watch")
        return self

    class Out(Output):
        count: int
        """Number of new or updated cards."""
        cards: list[ChangedCard]
        """The new or updated cards, oldest activity first."""

    def evaluate(self, ctx: Any) -> dict[str, Any] | None:
        board = ctx.render(self.board_id) if self.board_id else None
        lists = ctx.render(self.lists) if self.lists else []
        if isinstance(lists, str):
            lists = json.loads(lists) if lists.strip().startswith("[") else [lists]
        client = TrelloClient(
            ctx.render(self.api_base_url),
            ctx.render(self.api_version),
            api_key=ctx.render(self.api_key),
            api_token=ctx.render(self.api_token),
            options=self.options,
            retry=TRIGGER_RETRY,
        )
        paths = ([f"/boards/{segment(board, 'boardId')}/cards"] if board else []) + [
            f"/lists/{segment(str(lst), 'lists')}/cards" for lst in lists
        ]
        current: dict[str, dict[str, Any]] = {}
        with client:
            for path in paths:
                for raw in client.list_request(path, {"fields": CARD_FIELDS}):
                    current[raw["id"]] = raw
        now = datetime.now(UTC)
        watch = hashlib.sha256(json.dumps(paths).encode()).hexdigest()[:16]
        state = ctx.state
        first = state.get("watch") != watch or not isinstance(state.get("cards"), dict)
        seen: dict[str, str] = {} if first else state["cards"]
        since = (_instant(state.get("checkedAt")) if not first else None) or now - self.interval
        floor = since.replace(microsecond=0)  # ids carry whole seconds
        changed = []
        for raw in current.values():
            activity = raw.get("dateLastActivity")
            if first:
                when = _instant(activity)
                if when is None or when <= since:
                    continue
            elif seen.get(raw["id"]) == activity:
                continue
            created = _created_at(raw["id"])
            changed.append(
                ChangedCard(
                    card_id=raw["id"],
                    card_name=raw.get("name"),
                    card_url=raw.get("shortUrl") or raw.get("url"),
                    card_description=raw.get("desc"),
                    last_activity=activity,
                    action="created"
                    if raw["id"] not in seen and created is not None and created >= floor
                    else "updated",
                    list_id=raw.get("idList"),
                    board_id=raw.get("idBoard"),
                )
            )
        ctx.state = {
            "watch": watch,
            "checkedAt": _iso(now),
            "cards": {cid: raw.get("dateLastActivity") for cid, raw in current.items()},
        }
        ctx.logger.info("%d card(s) watched, %d new or updated", len(current), len(changed))
        if not changed:
            return None
        changed.sort(key=lambda c: (c.last_activity or "", c.card_id))
        return self.Out(count=len(changed), cards=changed).as_dict()


TASKS = (Create, Update, Move, Comment)
TRIGGERS = (Trigger,)
