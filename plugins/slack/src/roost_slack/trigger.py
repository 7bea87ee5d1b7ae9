"""The Slack Events API trigger: signed requests from Slack start executions through the webhook route."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from pydantic import Field
from roost import WebhookAnswer, WebhookReject, WebhookRequest, WebhookStart, WebhookTrigger
from slack_sdk.signature import SignatureVerifier

MAX_SKEW = 300
"""Slack's rule: a request whose timestamp is more than five minutes from now may be a replay."""

log = logging.getLogger("roost_slack.trigger")


class Trigger(
    WebhookTrigger,
    type="io.kestra.plugin.slack.app.core.Trigger",
    aliases=("io.kestra.plugin.slack.app.Trigger",),
):
    """Start an execution for each Slack event (Events API), slash command or interaction.

    Point the app's *Event Subscriptions* (and *Interactivity*, *Slash Commands*) request URL at
    ``https://<roost>/api/v1/main/executions/webhook/{namespace}/{flowId}/{key}``. Every request is
    checked against the app's signing secret (``X-Slack-Signature``, v0 HMAC-SHA256 over the raw
    body, and ``X-Slack-Request-Timestamp`` within five minutes); the ``url_verification``
    handshake is answered with its challenge; the answer never waits for the execution, and a
    redelivery of an event (same ``event_id``) starts no second execution.

    Variables: ``trigger.body`` (the event, or the command/interaction payload), ``trigger.type``,
    ``trigger.eventId``, ``trigger.eventTime``, ``trigger.teamId``, ``trigger.apiAppId``,
    ``trigger.headers`` and ``trigger.parameters``.
    """

    signing_secret: str = Field(min_length=1)
    """The app's signing secret (Basic Information page); use ``{{ secret('SLACK_SIGNING_SECRET') }}``."""
    bot_token: str | None = None
    """Accepted for compatibility with Kestra and not used: tasks take their token as ``{{ secret(...) }}``."""
    event_types: list[str] = Field(default_factory=list)
    """Only these event types start executions (``app_mention``, ``reaction_added``, ``message``,
    ``message.channel_join`` for a subtype, ``slash_command``, ``block_actions``...); all when empty.
    Roost extension: other events are acknowledged and dropped."""
    channels: list[str] = Field(default_factory=list)
    """Only events in these channel ids start executions; all when empty (Roost extension)."""

    def receive(self, request: WebhookRequest, ctx: Any) -> WebhookAnswer | WebhookReject | WebhookStart:
        rejected = self._verify(request, str(ctx.render(self.signing_secret)))
        if rejected is not None:
            return rejected
        payload = _payload(request)
        if payload is None:
            return WebhookReject(400, "the body is neither a Slack JSON event nor a form-encoded payload")
        kind = payload.get("type")
        if kind == "url_verification":
            return WebhookAnswer(200, {"challenge": payload.get("challenge")})
        if kind == "event_callback":
            event = payload.get("event")
            if not isinstance(event, dict):
                return WebhookReject(400, "an event_callback without an 'event' object")
            variables = {
                "type": event.get("type"),
                "eventId": payload.get("event_id"),
                "eventTime": payload.get("event_time"),
                "teamId": payload.get("team_id"),
                "apiAppId": payload.get("api_app_id"),
            }
            body = event
            dedup = payload.get("event_id") if isinstance(payload.get("event_id"), str) else None
        elif "command" in payload:  # a slash command (form fields)
            variables = {
                "type": "slash_command",
                "teamId": payload.get("team_id"),
                "apiAppId": payload.get("api_app_id"),
            }
            body, dedup = payload, None
        elif isinstance(kind, str) and ("trigger_id" in payload or "actions" in payload or "view" in payload):
            team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
            variables = {"type": kind, "teamId": team.get("id"), "apiAppId": payload.get("api_app_id")}
            body, dedup = payload, None
        else:  # app_rate_limited and other envelopes carry no event to run
            log.info("Slack sent %r to %s: acknowledged, no execution", kind, self.id)
            return WebhookAnswer(200, "")
        if not self._wanted(variables["type"], body):
            return WebhookAnswer(200, "")
        body = {k: v for k, v in body.items() if k != "token"}  # the legacy verification token stays out
        variables = {
            "body": body,
            **variables,
            "headers": dict(request.headers),
            "parameters": dict(request.query),
        }
        return WebhookStart({k: v for k, v in variables.items() if v is not None}, dedup_key=dedup)

    @staticmethod
    def _verify(request: WebhookRequest, secret: str) -> WebhookReject | None:
        timestamp = request.header("x-slack-request-timestamp")
        signature = request.header("x-slack-signature")
        if not timestamp or not signature:
            return WebhookReject(
                401, "not signed by Slack: X-Slack-Signature and X-Slack-Request-Timestamp are required"
            )
        try:
            sent = int(timestamp)
        except ValueError:
            return WebhookReject(401, "X-Slack-Request-Timestamp is not a Unix time")
        if abs(time.time() - sent) > MAX_SKEW:
            return WebhookReject(
                401, "stale request: X-Slack-Request-Timestamp is more than 5 minutes from now"
            )
        if not SignatureVerifier(secret).is_valid(request.body, timestamp, signature):
            return WebhookReject(401, "invalid X-Slack-Signature: check the app's signing secret")
        return None

    def _wanted(self, kind: Any, body: dict[str, Any]) -> bool:
        if self.event_types:
            names = {str(kind)}
            if isinstance(body.get("subtype"), str):
                names.add(f"{kind}.{body['subtype']}")
            if not names & set(self.event_types):
                return False
        return not self.channels or _channel_of(body) in self.channels


def _payload(request: WebhookRequest) -> dict[str, Any] | None:
    """The request as a mapping: a JSON event, or form fields (a JSON ``payload`` field for interactions)."""
    ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
    text = request.text()
    if ctype != "application/x-www-form-urlencoded":
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) or ctype == "application/json":
            return data if isinstance(data, dict) else None
    form = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    if "payload" in form:
        try:
            data = json.loads(form["payload"])
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return form or None


def _channel_of(body: dict[str, Any]) -> str | None:
    """The channel an event, command or interaction happened in."""
    for holder in (body, body.get("item")):
        if isinstance(holder, dict):
            channel = holder.get("channel")
            if isinstance(channel, str):
                return channel
            if isinstance(channel, dict) and isinstance(channel.get("id"), str):
                return channel["id"]
    value = body.get("channel_id")
    return value if isinstance(value, str) else None
