"""The Events API trigger end to end: a real ``roost server local`` process, requests signed as Slack
signs them, and a flow that answers in the fake Slack."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from fake_slack import BOT_TOKEN, FakeSlack
from roost.testing.server import ServerProcess

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
KEY = "slackEvents42"

FLOW = f"""
id: on-mention
namespace: chatops
triggers:
  - id: slack
    type: io.kestra.plugin.slack.app.core.Trigger
    key: {KEY}
    signingSecret: "{{{{ secret('SLACK_SIGNING_SECRET') }}}}"
    eventTypes: [app_mention, slash_command]
tasks:
  - id: hold
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: reply
    type: io.kestra.plugin.slack.app.chats.Post
    token: "{{{{ secret('SLACK_TOKEN') }}}}"
    baseUrl: "{{{{ secret('SLACK_BASE_URL') }}}}"
    channel: "{{{{ trigger.body.channel ?? trigger.body.channel_id }}}}"
    timestamp: "{{{{ trigger.body.ts ?? null }}}}"
    messageText: "got {{{{ trigger.type }}}} from {{{{ trigger.body.user ?? trigger.body.user_id }}}} in {{{{ trigger.teamId }}}}"
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, slack: FakeSlack) -> Iterator[ServerProcess]:
    env = {"ROOST_LOAD_PLUGINS": "slack", "SECRET_SLACK_SIGNING_SECRET": _b64(SIGNING_SECRET),
           "SECRET_SLACK_TOKEN": _b64(BOT_TOKEN), "SECRET_SLACK_BASE_URL": _b64(slack.api_url)}  # fmt: skip
    proc = ServerProcess("local", tmp_path_factory.mktemp("slack-server") / "data", env=env).wait_ready()
    api = httpx.Client(base_url=proc.url + "/api/v1/main", timeout=30)
    r = api.post("/flows", content=FLOW, headers={"content-type": "application/x-yaml"})
    assert r.status_code == 200, r.text
    yield proc
    proc.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v1/main", timeout=30) as client:
        yield client


def signed(
    body: bytes, *, secret: str = SIGNING_SECRET, when: int | None = None, **headers: str
) -> dict[str, str]:
    """Headers as Slack sends them: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret."""
    ts = str(int(time.time()) if when is None else when)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}", **headers}


def event(
    event_id: str, channel: str, kind: str = "app_mention", ts: str = "1700000000.000100", **extra
) -> bytes:
    return json.dumps({
        "token": "legacy-verification-token", "team_id": "T0FAKE1", "api_app_id": "A0APP1", "type": "event_callback",
        "event_id": event_id, "event_time": 1700000000,
        "event": {"type": kind, "user": "U0ADA", "text": "<@U0BOT01> deploy?", "ts": ts,
                  "channel": channel, "event_ts": ts, **extra},
    }).encode()  # fmt: skip


HOOK = f"/executions/webhook/chatops/on-mention/{KEY}"


def _post(
    api: httpx.Client, body: bytes, headers: dict[str, str], ctype: str = "application/json"
) -> httpx.Response:
    return api.post(HOOK, content=body, headers={"content-type": ctype, **headers})


def _wait_end(api: httpx.Client, execution_id: str) -> dict:
    for _ in range(300):
        ex = api.get(f"/executions/{execution_id}").json()
        if ex["state"]["current"] in ("SUCCESS", "FAILED", "WARNING", "KILLED"):
            return ex
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not end")


def _executions(api: httpx.Client) -> list[dict]:
    return api.get(
        "/executions/search", params={"namespace": "chatops", "flowId": "on-mention", "size": 100}
    ).json()["results"]


def test_url_verification_is_answered_without_an_execution(api):
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).encode()  # fmt: skip
    r = _post(api, body, signed(body))
    assert r.status_code == 200 and r.json() == {
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    }
    assert _executions(api) == []


def test_signed_event_starts_one_execution_that_replies(api, slack):
    channel = slack.general
    mention = slack.add_message(channel, "<@U0BOT01> deploy?", user="U0ADA")
    body = event("Ev0MENTION1", channel, ts=mention["ts"])
    r = _post(api, body, signed(body))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["state"]["current"] != "SUCCESS"  # answered at once, not when the run ends
    variables = answer["trigger"]["variables"]
    assert answer["trigger"]["type"] == "io.kestra.plugin.slack.app.core.Trigger"
    assert variables["type"] == "app_mention" and variables["eventId"] == "Ev0MENTION1"
    assert variables["teamId"] == "T0FAKE1" and variables["apiAppId"] == "A0APP1"
    assert variables["body"]["channel"] == channel and "token" not in variables["body"]
    assert variables["headers"]["x-slack-signature"][0].startswith("v0=")
    done = _wait_end(api, answer["id"])
    logs = [log["message"] for log in api.get(f"/logs/{answer['id']}").json()]
    assert done["state"]["current"] == "SUCCESS", logs
    reply = slack.messages[channel][-1]
    assert reply["text"] == "got app_mention from U0ADA in T0FAKE1" and reply["thread_ts"] == mention["ts"]

    # Slack redelivers when it did not see a 2xx in time: the same event never runs twice
    again = _post(
        api, body, signed(body, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    )
    assert again.status_code == 200 and again.json()["id"] == answer["id"]
    assert [
        e["id"] for e in _executions(api) if e["trigger"]["variables"].get("eventId") == "Ev0MENTION1"
    ] == [answer["id"]]


def test_badly_signed_stale_and_unsigned_requests_are_refused(api):
    body = event("Ev0FORGED", "C0X")
    forged = _post(api, body, signed(body, secret="not-the-signing-secret"))
    assert forged.status_code == 401 and "invalid X-Slack-Signature" in forged.json()["message"]
    tampered = _post(api, body.replace(b"deploy?", b"rm -rf"), signed(body))
    assert tampered.status_code == 401
    stale = _post(api, body, signed(body, when=int(time.time()) - 6 * 60))
    assert stale.status_code == 401 and "stale request" in stale.json()["message"]
    unsigned = _post(api, body, {})
    assert unsigned.status_code == 401 and "not signed by Slack" in unsigned.json()["message"]
    wrong_key = api.post(
        "/executions/webhook/chatops/on-mention/wrongKey", content=body, headers=signed(body)
    )
    assert wrong_key.status_code == 404
    assert not [e for e in _executions(api) if e["trigger"]["variables"].get("eventId") == "Ev0FORGED"]


def test_events_outside_event_types_are_acknowledged_and_dropped(api):
    body = event("Ev0REACTION", "C0X", kind="reaction_added")
    r = _post(api, body, signed(body))
    assert r.status_code == 200 and r.content == b""
    assert not [e for e in _executions(api) if e["trigger"]["variables"].get("eventId") == "Ev0REACTION"]


def test_slash_command_form_body(api, slack):
    form = urlencode({"token": "legacy", "team_id": "T0FAKE1", "channel_id": slack.general, "user_id": "U0GRACE",
                      "command": "/deploy", "text": "prod", "api_app_id": "A0APP1",
                      "trigger_id": "13345224609.738474920.8088930838d88f008e0"}).encode()  # fmt: skip
    r = _post(api, form, signed(form), ctype="application/x-www-form-urlencoded")
    assert r.status_code == 200, r.text
    variables = r.json()["trigger"]["variables"]
    assert variables["type"] == "slash_command" and variables["body"]["command"] == "/deploy"
    assert "token" not in variables["body"]
    assert _wait_end(api, r.json()["id"])["state"]["current"] == "SUCCESS"
    assert slack.messages[slack.general][-1]["text"] == "got slash_command from U0GRACE in T0FAKE1"


def test_malformed_body_is_a_400(api):
    body = b'{"type": "event_callback", "event": "not an object"}'
    assert _post(api, body, signed(body)).status_code == 400
    junk = b"\x00\x01 not json"
    assert _post(api, junk, signed(junk)).status_code == 400
