"""Failures: unreachable, 401/403/404/449, 429 (Trello's limiter and Retry-After), 5xx, malformed, hangs, kills."""

from __future__ import annotations

import threading
import time

import pytest
from fake_trello import FakeTrello
from pydantic import ValidationError
from roost.testing import Runtime, TaskRunContext, run_task
from roost.testing.http import closed_port
from roost_trello.cards import Comment, Create, Move, Update
from trello_support import KEY, READ_TOKEN, TOKEN, assert_no_secret

CARD = "5abbe4b7ddc1b351ef961414"


def test_unreachable_server(conn):
    result = run_task(
        Create,
        name="x",
        listId=CARD,
        raise_on_failure=False,
        **{**conn, "apiBaseUrl": f"http://127.0.0.1:{closed_port()}"},
    )
    assert result.error.startswith("cannot reach Trello API at http://127.0.0.1:")
    assert result.error.split(": ")[0].endswith("/1")
    assert_no_secret(result)


def test_invalid_key_and_token_are_401(trello, board, conn):
    bad_token = run_task(
        Create, name="x", listId=board.todo["id"], raise_on_failure=False, **{**conn, "apiToken": "nope"}
    )
    assert bad_token.error == (
        "Trello API error on POST /cards (HTTP 401): invalid token "
        "(check apiKey and apiToken, and that the token may act on this board)"
    )
    bad_key = run_task(
        Create, name="x", listId=board.todo["id"], raise_on_failure=False, **{**conn, "apiKey": "nope"}
    )
    assert "(HTTP 401): invalid key" in bad_key.error
    assert_no_secret(bad_token)


def test_read_only_token_cannot_write(trello, board, conn):
    card = trello.add_card(board.todo, "c")
    result = run_task(
        Update,
        cardId=card["id"],
        name="y",
        raise_on_failure=False,
        **{**conn, "apiToken": "{{ secret('TRELLO_READ_TOKEN') }}"},
    )
    assert result.error.startswith(
        f"Trello API error on PUT /cards/{card['id']} (HTTP 401): unauthorized card permission requested"
    )
    assert trello.cards[card["id"]]["name"] == "c"
    assert_no_secret(result)


def test_forbidden_by_a_gateway_is_a_403(trello, board, conn):
    trello.inject(403, "<html><h1>403 Forbidden</h1></html>", content_type="text/html")
    result = run_task(Create, name="x", listId=board.todo["id"], raise_on_failure=False, **conn)
    assert result.error == "Trello API error on POST /cards (HTTP 403): <html><h1>403 Forbidden</h1></html>"


def test_unknown_and_malformed_ids(trello, board, conn):
    missing = run_task(Comment, cardId=CARD, text="hi", raise_on_failure=False, **conn)
    assert missing.error == (
        f"Trello API error on POST /cards/{CARD}/actions/comments (HTTP 404): The requested resource was not found."
    )
    bad_list = run_task(Create, name="x", listId=CARD, raise_on_failure=False, **conn)
    assert bad_list.error == "Trello API error on POST /cards (HTTP 400): invalid value for idList"
    bad_id = run_task(Move, cardId="nope", listId=board.done["id"], raise_on_failure=False, **conn)
    assert bad_id.error == "Trello API error on PUT /cards/nope (HTTP 400): invalid id"
    escape = run_task(Update, cardId="../boards/x", name="y", raise_on_failure=False, **conn)
    assert escape.error == (
        "cardId must be a Trello id or short link (letters, digits, - and _), got '../boards/x'"
    )
    assert not any("boards" in r.path for r in trello.requests)


def test_subrequest_failure_449(trello, board, conn):
    trello.inject(449, {"path": "boards", "originalMessage": "Unauthorized", "originalStatus": 401})
    result = run_task(Create, name="x", listId=board.todo["id"], raise_on_failure=False, **conn)
    assert result.error == (
        "Trello API error on POST /cards (HTTP 449): sub-request to boards failed: Unauthorized (HTTP 401)"
    )


def test_trellos_own_rate_limit_is_waited_out(board):
    limited = FakeTrello(KEY, {TOKEN: "write"}, rate_limit=1, window=1.0).start()
    try:
        b = limited.add_board("b")
        lst = limited.add_list(b, "l")
        conn = {"apiKey": KEY, "apiToken": TOKEN, "apiBaseUrl": limited.url}
        run_task(Create, name="one", listId=lst["id"], **conn)
        started = time.monotonic()
        result = run_task(Create, name="two", listId=lst["id"], **conn)  # 429 without Retry-After: back off
        assert time.monotonic() - started >= 0.9
        assert [c["name"] for c in limited.cards.values()] == ["one", "two"]
        assert any(
            "Trello API answered HTTP 429 to POST /cards; retrying in 1s (retry 1 of 3)" in m
            for m in result.messages
        )
        assert_no_secret(result)
    finally:
        limited.stop()


def test_rate_limit_with_retry_after_and_giving_up(trello, board, conn):
    body = {"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}
    trello.inject(429, body, headers={"Retry-After": "0"}, content_type="application/json", times=4)
    result = run_task(Create, name="x", listId=board.todo["id"], raise_on_failure=False, **conn)
    assert result.error == (
        "Trello API kept rate-limiting POST /cards after 4 attempts (HTTP 429): Rate limit exceeded "
        "(API_TOKEN_LIMIT_EXCEEDED)"
    )
    assert trello.cards == {}


@pytest.mark.parametrize(
    ("status", "body", "ctype", "expected"),
    [
        (
            500,
            "Internal Server Error",
            "text/plain",
            "Trello API error on POST /cards (HTTP 500): Internal Server Error",
        ),
        (502, "<html>Bad Gateway</html>", "text/html", "(HTTP 502): <html>Bad Gateway</html>"),
        (
            503,
            '{"message": "Service Unavailable"}',
            "application/json",
            "(HTTP 503): Service Unavailable",
        ),
        (
            200,
            "<html>maintenance</html>",
            "text/html",
            "Trello API returned a malformed response to POST /cards (HTTP 200, content-type text/html, not JSON)",
        ),
        (200, "[]", "application/json", "malformed response to POST /cards: expected an object with an 'id'"),
        (200, '{"name": "x"}', "application/json", "expected an object with an 'id'"),
    ],
)
def test_server_errors_and_malformed_answers(trello, board, conn, status, body, ctype, expected):
    trello.inject(status, body, content_type=ctype)
    result = run_task(Create, name="x", listId=board.todo["id"], raise_on_failure=False, **conn)
    assert result.state == "FAILED"
    assert expected in result.error


def test_hanging_server_times_out(trello, board, conn):
    trello.inject(200, "{}", delay=5)
    started = time.monotonic()
    result = run_task(
        Create,
        name="x",
        listId=board.todo["id"],
        options={"timeout": {"readIdleTimeout": "PT0.3S"}},
        raise_on_failure=False,
        **conn,
    )
    assert time.monotonic() - started < 3
    assert "Trello API did not answer POST /cards in time (ReadTimeout; read timeout 0.3s)" in result.error


def test_echoed_credentials_are_scrubbed(trello, board, conn):
    trello.inject(400, f"invalid value for key {KEY} with token {TOKEN}")
    result = run_task(Create, name="x", listId=board.todo["id"], raise_on_failure=False, **conn)
    assert (
        result.error
        == "Trello API error on POST /cards (HTTP 400): invalid value for key **** with token ****"
    )
    assert_no_secret(result)


def _start(task_cls, **props):
    ctx = TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="t")
    task = task_cls.model_validate({"id": "t", "type": task_cls.type_id, **props})
    box = {}

    def target():
        try:
            box["out"] = task.run(ctx)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return ctx, thread, box


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_kill_while_a_request_is_in_flight(trello, board):
    trello.inject(200, "{}", delay=10)
    ctx, thread, box = _start(
        Create, name="x", listId=board.todo["id"], apiKey=KEY, apiToken=TOKEN, apiBaseUrl=trello.url
    )
    _wait_for(lambda: bool(trello.requests))
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"


def test_kill_while_waiting_for_retry_after(trello, board):
    trello.inject(
        429,
        '{"error": "API_KEY_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}',
        headers={"Retry-After": "30"},
    )
    ctx, thread, box = _start(
        Create, name="x", listId=board.todo["id"], apiKey=KEY, apiToken=TOKEN, apiBaseUrl=trello.url
    )
    _wait_for(lambda: any("retrying in 30s" in log["message"] for log in ctx.logs))
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"
    assert trello.cards == {}


def test_validation_errors():
    base = {"id": "t", "apiKey": "k", "apiToken": "t"}
    with pytest.raises(ValidationError, match="listId"):
        Create.model_validate({**base, "type": Create.type_id, "name": "x"})
    with pytest.raises(ValidationError, match="pos must be top, bottom or a positive number"):
        Create.model_validate({**base, "type": Create.type_id, "name": "x", "listId": "l", "pos": "middle"})
    with pytest.raises(ValidationError, match="pos must be top, bottom or a positive number"):
        Move.model_validate({**base, "type": Move.type_id, "cardId": "c", "listId": "l", "pos": -1})
    Move.model_validate(
        {**base, "type": Move.type_id, "cardId": "c", "listId": "l", "pos": "{{ inputs.pos }}"}
    )


def test_rendered_bad_position_and_credentials(trello, board, conn):
    bad = run_task(
        Create, name="x", listId=board.todo["id"], pos="{{ 'middle' }}", raise_on_failure=False, **conn
    )
    assert bad.error == "pos must be top, bottom or a positive number, got 'middle'"
    quote = run_task(
        Create, name="x", listId=board.todo["id"], raise_on_failure=False, **{**conn, "apiToken": 'a"b'}
    )
    assert quote.error == "apiKey and apiToken must not contain double quotes"
    broken = run_task(
        Create, name="x", listId=board.todo["id"], raise_on_failure=False, **{**conn, "apiToken": "a\nb"}
    )
    assert broken.error == "apiToken contains a line break or a character an HTTP header cannot carry"
    version = run_task(
        Create, name="x", listId=board.todo["id"], apiVersion="1/../2", raise_on_failure=False, **conn
    )
    assert version.error.startswith("apiVersion must be a Trello id or short link")
    assert READ_TOKEN not in str(bad.logs)
