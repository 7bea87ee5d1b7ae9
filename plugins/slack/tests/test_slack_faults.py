"""Failures: bad tokens, missing scopes, unknown channels, 429 with Retry-After, 5xx, unreachable,
malformed answers, hangs and kills — every one a clear task failure that never shows the token."""

from __future__ import annotations

import threading
import time

import pytest
from fake_slack import BOT_TOKEN
from roost.testing import Runtime, TaskRunContext, run_task
from roost.testing.http import closed_port
from roost_slack import chats, conversations, users
from slack_support import assert_no_secret

RATE_LIMITED = {"ok": False, "error": "ratelimited"}


def test_invalid_token(fake):
    result = run_task(chats.Post, token="{{ secret('SLACK_BAD_TOKEN') }}", baseUrl=fake.api_url,
                      channel=fake.general, messageText="x", raise_on_failure=False)  # fmt: skip
    assert result.state == "FAILED"
    assert (
        result.error
        == "Slack API chat.postMessage failed: invalid_auth (the token is not valid: check the bot (xoxb-) or user (xoxp-) token)"
    )
    assert_no_secret(result)


def test_missing_scope_names_needed_and_provided(fake):
    result = run_task(conversations.Create, token="{{ secret('SLACK_READ_ONLY_TOKEN') }}", baseUrl=fake.api_url,
                      name="new", raise_on_failure=False)  # fmt: skip
    assert result.error.startswith(
        "Slack API conversations.create failed: missing_scope; needed scope: channels:manage"
    )
    assert "the token has: channels:read,users:read" in result.error
    assert_no_secret(result)


def test_unknown_channel_and_invalid_arguments(fake, creds):
    result = run_task(chats.Post, channel="C0NOPE", messageText="x", raise_on_failure=False, **creds)
    assert result.error.startswith("Slack API chat.postMessage failed: channel_not_found")
    empty = run_task(chats.Delete, channel=fake.general, timestamp="", raise_on_failure=False, **creds)
    assert "invalid_arguments; [ERROR] missing required field: ts" in empty.error


def test_rate_limit_waits_retry_after_then_succeeds(fake, creds):
    fake.inject(429, RATE_LIMITED, path=r"chat\.postMessage$", headers={"Retry-After": "1"}, times=2)
    started = time.monotonic()
    result = run_task(chats.Post, channel=fake.general, messageText="eventually", **creds)
    assert time.monotonic() - started >= 2
    assert (
        result.outputs["timestamp"] and len([r for r in fake.requests if r.path.endswith("postMessage")]) == 3
    )
    assert sum("rate-limited chat.postMessage (HTTP 429); retrying in 1s" in m for m in result.messages) == 2


def test_rate_limit_gives_up_after_the_retries(fake, creds):
    fake.inject(429, RATE_LIMITED, path=r"users\.info$", headers={"Retry-After": "0"}, times=10)
    result = run_task(users.Info, user="U1", raise_on_failure=False, **creds)
    assert (
        result.error
        == "Slack API users.info failed: ratelimited (HTTP 429 after 3 retries) (Slack rate-limited the method)"
    )
    assert len([r for r in fake.requests if r.path.endswith("users.info")]) == 4


def test_retry_after_too_long_fails_at_once(fake, creds):
    fake.inject(429, RATE_LIMITED, path=r"users\.info$", headers={"Retry-After": "3600"})
    started = time.monotonic()
    result = run_task(users.Info, user="U1", raise_on_failure=False, **creds)
    assert time.monotonic() - started < 2
    assert "asks to wait 3600s (Retry-After), longer than the 60s a task waits" in result.error


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(fake, creds, status):
    fake.inject(status, "<html>upstream error</html>", path=r"users\.info$", content_type="text/html")
    result = run_task(users.Info, user="U1", raise_on_failure=False, **creds)
    assert result.error.startswith(f"Slack API answered HTTP {status} to users.info")
    assert "upstream error" in result.error


def test_503_with_retry_after_is_waited_out(fake, creds):
    fake.inject(503, RATE_LIMITED, path=r"users\.lookupByEmail$", headers={"Retry-After": "0"})
    result = run_task(users.LookupByEmail, email="ada@example.com", **creds)
    assert result.outputs["name"] == "ada"


def test_malformed_answers(fake, creds):
    fake.inject(200, "this is not json", path=r"users\.info$", content_type="text/plain")
    result = run_task(users.Info, user="U1", raise_on_failure=False, **creds)
    assert result.error.startswith("Slack API returned a malformed answer to users.info: not JSON")
    fake.inject(200, {"ok": True, "user": {"name": "no id"}}, path=r"users\.info$")
    shape = run_task(users.Info, user="U1", raise_on_failure=False, **creds)
    assert shape.error == "Slack API returned a malformed answer to users.info: the user has no 'id'"
    fake.inject(200, {"ok": True, "channels": "oops"}, path=r"conversations\.list$")
    listing = run_task(conversations.List, raise_on_failure=False, **creds)
    assert "'channels' should be a list" in listing.error


def test_unreachable(creds):
    result = run_task(users.Info, user="U1", token=creds["token"], baseUrl=f"http://127.0.0.1:{closed_port()}/api/",
                      raise_on_failure=False)  # fmt: skip
    assert (
        result.error.startswith("cannot reach Slack API at http://127.0.0.1:")
        and "(users.info)" in result.error
    )
    assert_no_secret(result)


def test_token_echoed_by_a_server_is_scrubbed(fake, creds):
    fake.inject(200, {"ok": False, "error": f"bad token {BOT_TOKEN}"}, path=r"users\.info$")
    result = run_task(users.Info, user="U1", raise_on_failure=False, **creds)
    assert "bad token ****" in result.error
    assert_no_secret(result)


def test_warnings_are_logged(fake, creds):
    fake.inject(200, {"ok": True, "user": {"id": "U1"}, "warning": "superfluous_charset",
                      "response_metadata": {"warnings": ["superfluous_charset"]}}, path=r"users\.info$")  # fmt: skip
    result = run_task(users.Info, user="U1", **creds)
    assert result.messages.count("Slack warns about users.info: superfluous_charset") == 1


def test_token_must_be_usable():
    bad = run_task(users.Info, user="U1", token="xoxb-line\nbreak", raise_on_failure=False)
    assert bad.error == "token contains a line break or a character an HTTP header cannot carry"
    empty = run_task(users.Info, user="U1", token="  ", raise_on_failure=False)
    assert "token is empty" in empty.error


def _run_in_thread(task_cls, **props):
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


def test_kill_during_a_long_rate_limit_wait(fake):
    fake.inject(429, RATE_LIMITED, path=r"chat\.postMessage$", headers={"Retry-After": "45"})
    ctx, thread, box = _run_in_thread(chats.Post, token=BOT_TOKEN, baseUrl=fake.api_url, channel=fake.general,
                                      messageText="x")  # fmt: skip
    deadline = time.monotonic() + 5
    while not any("retrying in 45s" in log["message"] for log in ctx.logs) and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"
    assert len(fake.requests) == 1 and not fake.messages[fake.general]


def test_kill_while_a_request_hangs(fake):
    fake.inject(200, {"ok": True, "channels": []}, path=r"conversations\.list$", delay=20)
    ctx, thread, box = _run_in_thread(conversations.List, token=BOT_TOKEN, baseUrl=fake.api_url)
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"
