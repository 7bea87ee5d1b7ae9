"""Create, Update, Move and Comment against the fake Trello: requests, outputs, assets, auth header."""

from __future__ import annotations

import json

import pytest
from roost.testing import run_task
from roost_trello.cards import Comment, Create, Move, Update
from trello_support import KEY, TOKEN, assert_no_secret

AUTO = {"enableAuto": True}


def test_create_card(trello, board, conn):
    result = run_task(
        Create,
        name="Rotate the TLS certificate",
        listId=board.todo["id"],
        desc="Expires on the **30th**",
        pos="top",
        due="2025-06-30T17:00:00.000Z",
        assets=AUTO,
        **conn,
    )
    out = result.outputs
    card = trello.cards[out["cardId"]]
    assert card["name"] == "Rotate the TLS certificate" and card["idList"] == board.todo["id"]
    assert card["desc"] == "Expires on the **30th**" and card["due"] == "2025-06-30T17:00:00.000Z"
    assert out["card"]["id"] == out["cardId"] and out["card"]["listId"] == board.todo["id"]
    assert out["card"]["boardId"] == board.board["id"] and out["card"]["shortUrl"] == card["shortUrl"]
    assert out["card"]["closed"] is False and out["card"]["dateLastActivity"] == card["dateLastActivity"]
    req = trello.requests[-1]
    assert req.method == "POST" and req.path == "/1/cards" and req.query == {}
    assert json.loads(req.body) == {
        "name": "Rotate the TLS certificate",
        "idList": board.todo["id"],
        "desc": "Expires on the **30th**",
        "pos": "top",
        "due": "2025-06-30T17:00:00.000Z",
    }
    assert req.headers["Authorization"] == f'OAuth oauth_consumer_key="{KEY}", oauth_token="{TOKEN}"'
    [bundle] = result.assets
    [asset] = bundle.outputs
    assert asset.id == f"trello:card:{out['cardId']}" and asset.display_name == "Rotate the TLS certificate"
    assert asset.type == "io.kestra.core.models.assets.External"
    assert asset.metadata == {
        "system": "trello",
        "kind": "card",
        "cardId": out["cardId"],
        "name": "Rotate the TLS certificate",
        "listId": board.todo["id"],
        "boardId": board.board["id"],
        "url": card["shortUrl"],
        "closed": False,
    }
    assert any(f"card {out['cardId']} created: {card['shortUrl']}" in m for m in result.messages)
    assert_no_secret(result)


def test_create_with_members_labels_and_due_complete(trello, board, conn):
    member, label = "5abbe4b7ddc1b351ef961414", "5abbe4b7ddc1b351ef961415"
    out = run_task(
        Create,
        name="x",
        listId=board.todo["id"],
        memberIds=[member],
        labelIds=[label],
        dueComplete=True,
        pos=2.5,
        **conn,
    ).outputs
    card = trello.cards[out["cardId"]]
    assert card["idMembers"] == [member] and card["idLabels"] == [label] and card["dueComplete"] is True
    assert card["pos"] == 2.5


def test_update_card(trello, board, conn):
    card = trello.add_card(board.todo, "Old name")
    before = card["dateLastActivity"]
    result = run_task(
        Update, cardId=card["id"], name="New name", desc="", closed=True, due="", assets=AUTO, **conn
    )
    out = result.outputs
    assert out["cardId"] == card["id"] and out["card"]["name"] == "New name" and out["card"]["closed"] is True
    assert json.loads(trello.requests[-1].body) == {
        "name": "New name",
        "desc": "",
        "closed": True,
        "due": None,
    }
    assert trello.requests[-1].method == "PUT" and trello.requests[-1].path == f"/1/cards/{card['id']}"
    assert card["dateLastActivity"] > before
    assert result.assets[0].outputs[0].metadata["closed"] is True


def test_update_by_short_link_and_nothing_to_update(trello, board, conn):
    card = trello.add_card(board.todo, "Card")
    out = run_task(Update, cardId=card["shortLink"], pos="bottom", **conn).outputs
    assert out["cardId"] == card["id"]
    nothing = run_task(Update, cardId=card["id"], raise_on_failure=False, **conn)
    assert nothing.error == "nothing to update: set name, desc, closed, due, dueComplete or pos"


def test_move_card_to_another_list(trello, board, conn):
    card = trello.add_card(board.todo, "Ship it")
    result = run_task(Move, cardId=card["id"], listId=board.done["id"], pos="top", assets=AUTO, **conn)
    out = result.outputs
    assert out["listId"] == board.done["id"] and out["boardId"] == board.board["id"]
    assert trello.cards[card["id"]]["idList"] == board.done["id"]
    assert json.loads(trello.requests[-1].body) == {"idList": board.done["id"], "pos": "top"}
    assert result.assets[0].outputs[0].metadata["listId"] == board.done["id"]


def test_move_card_to_another_board(trello, board, conn):
    other = trello.add_board("Archive")
    shelf = trello.add_list(other, "Shelf")
    card = trello.add_card(board.todo, "Old work")
    out = run_task(Move, cardId=card["id"], listId=shelf["id"], boardId=other["id"], **conn).outputs
    assert out["boardId"] == other["id"] and out["listId"] == shelf["id"]
    assert json.loads(trello.requests[-1].body) == {"idList": shelf["id"], "idBoard": other["id"]}


def test_comment_on_card(trello, board, conn):
    card = trello.add_card(board.todo, "Incident 42")
    text = "Deployed v1.4.0 — see https://ci.example.com/run/9?x=1&y=2"
    result = run_task(Comment, cardId=card["id"], text=text, assets=AUTO, **conn)
    out = result.outputs
    [action] = trello.actions
    assert out["commentId"] == action["id"] and out["cardId"] == card["id"]
    assert out["date"] == action["date"] and out["memberCreatorId"] == trello.member["id"]
    assert action["data"]["text"] == text and action["type"] == "commentCard"
    req = trello.requests[-1]
    assert req.path == f"/1/cards/{card['id']}/actions/comments" and req.query == {}
    assert json.loads(req.body) == {"text": text}
    assert result.assets[0].outputs[0].id == f"trello:card:{card['id']}"
    assert_no_secret(result)


def test_comment_text_is_rendered_and_bounded(trello, board, conn):
    card = trello.add_card(board.todo, "c")
    out = run_task(
        Comment, cardId=card["id"], text="run {{ run }} done", variables={"run": 7}, **conn
    ).outputs
    assert trello.actions[-1]["data"]["text"] == "run 7 done" and out["commentId"]
    too_long = run_task(Comment, cardId=card["id"], text="{{ 'x' * 16385 }}", raise_on_failure=False, **conn)
    assert too_long.error == "a comment holds 1 to 16384 characters, got 16385"
    with pytest.raises(Exception, match="a comment holds 1 to 16384 characters"):
        Comment.model_validate({"id": "c", "type": Comment.type_id, "apiKey": "k", "apiToken": "t", "cardId": "x",
                                "text": ""})  # fmt: skip


def test_no_assets_without_enable_auto(trello, board, conn):
    assert run_task(Create, name="x", listId=board.todo["id"], **conn).assets == []


def test_query_string_credentials_are_accepted_by_the_fake_as_by_trello(trello, board):
    """The fake follows Trello: key and token may also come as query parameters (the plugin never sends them so)."""
    import httpx

    answer = httpx.get(f"{trello.url}/1/lists/{board.todo['id']}/cards", params={"key": KEY, "token": TOKEN})
    assert answer.status_code == 200 and answer.json() == []
    assert answer.headers["x-rate-limit-api-token-remaining"] == "99"
