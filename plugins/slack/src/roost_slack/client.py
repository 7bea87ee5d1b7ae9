"""The Slack Web API through ``slack_sdk.WebClient``, bound to a task's run context.

:class:`SlackClient` adds what a workflow task needs around the SDK:

* Slack's ``{"ok": false, "error": ...}`` envelope (HTTP 200 for most errors) becomes a
  :class:`SlackError` naming the method, Slack's error code, the ``needed``/``provided`` scopes
  and any ``response_metadata.messages``;
* ``429`` (and ``503`` with ``Retry-After``) is retried up to :data:`MAX_RATE_LIMIT_RETRIES`
  times through a ``slack_sdk`` retry handler that waits with ``ctx.sleep``, so a kill ends the
  wait at once; a ``Retry-After`` longer than :data:`MAX_RETRY_AFTER` fails the task instead;
* each call runs on a helper thread, so killing the execution returns at once even while a
  request is in flight;
* network failures, timeouts, non-JSON and non-200 answers become clear task failures;
* the token never appears in a message: every text is scrubbed of it, and the SDK's own logger
  (which could print request details) is silenced.
"""

from __future__ import annotations

import http.client
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any, NoReturn
from urllib.error import HTTPError, URLError

from roost import KillGate, RunContext, TaskError, parse_retry_after
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import RetryHandler

__all__ = ["DEFAULT_BASE_URL", "MAX_RATE_LIMIT_RETRIES", "MAX_RETRY_AFTER", "SlackClient", "SlackError"]

DEFAULT_BASE_URL = "https://slack.com/api/"
MAX_RATE_LIMIT_RETRIES = 3
"""How many times a rate-limited call is retried before the task fails."""
MAX_RETRY_AFTER = 60.0
"""Longest ``Retry-After`` (seconds) a task waits; a longer one fails the task at once."""
DEFAULT_TIMEOUT = 30

_SDK_LOGGER = logging.getLogger("roost_slack.sdk")
_SDK_LOGGER.addHandler(logging.NullHandler())
_SDK_LOGGER.propagate = False  # failures are reported by the task, with the token scrubbed

HINTS = {
    "invalid_auth": "the token is not valid: check the bot (xoxb-) or user (xoxp-) token",
    "not_authed": "no token reached Slack: check the token property",
    "token_revoked": "the token was revoked: reinstall the app or issue a new token",
    "token_expired": "the token expired: refresh it",
    "account_inactive": "the token belongs to a deactivated user or workspace",
    "missing_scope": "the token lacks an OAuth scope this method needs: add it to the app and reinstall",
    "not_in_channel": "the app is not a member of the channel: invite it (/invite @app) or join first",
    "channel_not_found": "no channel with this id or name is visible to the token",
    "is_archived": "the channel is archived",
    "name_taken": "a channel with this name already exists",
    "users_not_found": "no user has this e-mail address or id",
    "user_not_found": "no user has this e-mail address or id",
    "message_not_found": "no message has this timestamp in the channel",
    "cant_update_message": "only messages posted by this token's user or bot can be updated",
    "cant_delete_message": "only messages posted by this token's user or bot can be deleted",
    "already_reacted": "this reaction is already on the item",
    "no_reaction": "this reaction is not on the item",
    "canvas_not_found": "no canvas has this id",
    "file_not_found": "no file has this id",
    "ratelimited": "Slack rate-limited the method",
}


class SlackError(TaskError):
    """A Slack Web API call failed; ``error`` is Slack's code (``None`` without an answer)."""

    def __init__(self, message: str, *, method: str, error: str | None = None, status: int | None = None):
        super().__init__(message)
        self.method = method
        self.error = error
        self.status = status


class _RetryAfterTooLong(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if key.lower() == name:
            return value[0] if isinstance(value, list | tuple) else str(value)
    return None


class _KillAwareRateLimitHandler(RetryHandler):
    """``slack_sdk``'s retry hook for 429 (and 503 with ``Retry-After``), waiting with ``ctx.sleep``."""

    def __init__(self, client: SlackClient) -> None:
        super().__init__(max_retry_count=MAX_RATE_LIMIT_RETRIES)
        self.client = client

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if response is None:
            return False
        retry_after = _header(response.headers, "retry-after")
        return response.status_code == 429 or (response.status_code == 503 and retry_after is not None)

    def prepare_for_next_attempt(
        self, *, state: Any, request: Any, response: Any = None, error: Any = None
    ) -> None:
        wait = parse_retry_after(_header(response.headers, "retry-after") if response is not None else None)
        if wait is None:
            wait = float(2**state.current_attempt)
        if wait > MAX_RETRY_AFTER:
            raise _RetryAfterTooLong(wait)
        method = str(getattr(request, "url", "")).rsplit("/", 1)[-1].split("?", 1)[0]
        self.client.log(
            "warning",
            "Slack rate-limited %s (HTTP %s); retrying in %gs (attempt %d of %d)",
            method,
            response.status_code if response is not None else "?",
            wait,
            state.current_attempt + 1,
            MAX_RATE_LIMIT_RETRIES,
        )
        self.client.sleep(wait)
        state.increment_current_attempt()
        state.next_attempt_requested = True


class SlackClient:
    """One ``WebClient`` bound to a run context (``ctx`` may be ``None`` in tests)."""

    def __init__(
        self,
        token: str | None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        ctx: RunContext | None = None,
        timeout: int = DEFAULT_TIMEOUT,
    ) -> None:
        token = (token or "").strip()
        if not token:
            raise TaskError("token is empty: set a Slack bot (xoxb-) or user (xoxp-) token")
        if any(c in token for c in "\r\n\x00") or not token.isascii():
            raise TaskError("token contains a line break or a character an HTTP header cannot carry")
        if not base_url.startswith(("http://", "https://")):
            raise TaskError(f"baseUrl must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._token = token
        self._ctx = ctx
        self.web = WebClient(
            token=token,
            base_url=self.base_url,
            timeout=timeout,
            logger=_SDK_LOGGER,
            retry_handlers=[_KillAwareRateLimitHandler(self)],
        )
        self._gate = KillGate()
        self._killed = self._gate.killed
        if ctx is not None:
            ctx.on_kill(self._gate.kill)

    # -- context ---------------------------------------------------------------------------------
    def log(self, level: str, message: str, *args: Any) -> None:
        if self._ctx is not None:
            getattr(self._ctx.logger, level)(message, *args)

    def sleep(self, seconds: float) -> None:
        """Wait; a kill ends the wait at once (raising the engine's kill exception)."""
        if self._ctx is not None:
            self._ctx.sleep(seconds)
        elif self._killed.wait(seconds):
            raise TaskError("Slack call abandoned: the execution was killed")

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "****")

    def _raise_killed(self) -> NoReturn:
        if self._ctx is not None:
            self._ctx.sleep(0)  # raises the engine's kill exception
        raise TaskError("Slack call abandoned: the execution was killed")

    # -- calls -----------------------------------------------------------------------------------
    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a Web API method (``chat.postMessage``) with its parameters; ``None`` ones are left out."""
        fn = getattr(self.web, method.replace(".", "_"))
        args = {k: v for k, v in params.items() if v is not None}
        return self.run(method, lambda: fn(**args))

    def run(self, method: str, work: Callable[[], Any]) -> dict[str, Any]:
        """Run one SDK call (``work``) on a helper thread a kill abandons; its data, or a SlackError."""
        return self._gate.run(lambda: self._translate(method, work), self._raise_killed, "slack-call")

    def pages(self, method: str, key: str, *, max_pages: int = 10_000, **params: Any) -> Iterator[list[Any]]:
        """Every page of a cursor-paginated method (``response_metadata.next_cursor``): its ``key`` list."""
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            data = self.call(method, cursor=cursor, **params)
            items = data.get(key)
            if items is None:
                items = []
            if not isinstance(items, list):
                raise self.malformed(method, f"'{key}' should be a list, got {type(items).__name__}")
            yield items
            meta = data.get("response_metadata")
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not cursor or not isinstance(cursor, str) or cursor in seen:
                return
            seen.add(cursor)

    def malformed(self, method: str, detail: str) -> SlackError:
        return SlackError(
            f"Slack API returned a malformed answer to {method}: {self.scrub(detail)}", method=method
        )

    def _translate(self, method: str, work: Callable[[], Any]) -> dict[str, Any]:
        """The call's data, every failure turned into a SlackError that names the method."""
        try:
            response = work()
        except SlackApiError as exc:  # named by the method that failed (a step of files.upload v2...)
            url = str(getattr(exc.response, "api_url", "") or "")
            failed = url.rsplit("/", 1)[-1].split("?", 1)[0] or method
            raise self._api_error(failed, exc.response) from None
        except _RetryAfterTooLong as exc:
            raise SlackError(
                f"Slack rate-limited {method} and asks to wait {exc.seconds:g}s (Retry-After), "
                f"longer than the {MAX_RETRY_AFTER:g}s a task waits: retry later",
                method=method,
                error="ratelimited",
                status=429,
            ) from None
        except HTTPError as exc:  # the upload step of files.upload v2 posts outside the Web API
            raise SlackError(
                f"Slack refused the upload of {method} (HTTP {exc.code}): {self.scrub(str(exc.reason))}",
                method=method,
                status=exc.code,
            ) from None
        except TimeoutError as exc:
            raise SlackError(
                f"Slack API did not answer {method} in time: {self.scrub(str(exc)) or 'timed out'}",
                method=method,
            ) from None
        except (URLError, ConnectionError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError | socket.timeout):
                raise SlackError(f"Slack API did not answer {method} in time", method=method) from None
            raise SlackError(
                f"cannot reach Slack API at {self.base_url} ({method}): {self.scrub(str(reason))}",
                method=method,
            ) from None
        except SlackClientError as exc:
            raise SlackError(f"Slack call {method} failed: {self.scrub(str(exc))}", method=method) from None
        except (KeyError, TypeError, AttributeError) as exc:  # the SDK reading an answer missing a part
            raise self.malformed(method, f"{type(exc).__name__}: {exc}") from None
        data = response.data if hasattr(response, "data") else response
        if not isinstance(data, dict):
            raise self.malformed(method, "expected a JSON object")
        self._warnings(method, data)
        return data

    def _warnings(self, method: str, data: dict[str, Any]) -> None:
        warnings = [data["warning"]] if isinstance(data.get("warning"), str) else []
        meta = data.get("response_metadata")
        if isinstance(meta, dict) and isinstance(meta.get("warnings"), list):
            warnings += [str(w) for w in meta["warnings"] if str(w) not in warnings]
        for warning in warnings:
            self.log("warning", "Slack warns about %s: %s", method, self.scrub(str(warning)))

    def _api_error(self, method: str, response: Any) -> SlackError:
        status = getattr(response, "status_code", None)
        data = getattr(response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        if isinstance(code, str) and code.startswith("Received a response in a non-JSON format"):
            detail = self.scrub(code.split(":", 1)[-1].strip()) or "(empty body)"
            if status == 200:
                return SlackError(
                    f"Slack API returned a malformed answer to {method}: not JSON: {detail}",
                    method=method,
                    status=200,
                )
            return SlackError(
                f"Slack API answered HTTP {status} to {method}: {detail}", method=method, status=status
            )
        if not isinstance(code, str):
            if status != 200:
                return SlackError(
                    f"Slack API answered HTTP {status} to {method}", method=method, status=status
                )
            return SlackError(
                f"Slack API returned a malformed answer to {method}: no 'ok'/'error' in the body",
                method=method,
                status=status,
            )
        text = f"Slack API {method} failed: {self.scrub(code)}"
        if status == 429:
            text += f" (HTTP 429 after {MAX_RATE_LIMIT_RETRIES} retries)"
        elif status not in (200, None):
            text += f" (HTTP {status})"
        needed = data.get("needed") if isinstance(data, dict) else None
        provided = data.get("provided") if isinstance(data, dict) else None
        if needed:
            text += f"; needed scope: {self.scrub(str(needed))}"
            if provided is not None:
                text += f"; the token has: {self.scrub(str(provided)) or '(none)'}"
        meta = data.get("response_metadata") if isinstance(data, dict) else None
        messages = meta.get("messages") if isinstance(meta, dict) else None
        if isinstance(messages, list) and messages:
            text += "; " + "; ".join(self.scrub(str(m)) for m in messages[:5])
        if code in HINTS:
            text += f" ({HINTS[code]})"
        return SlackError(text, method=method, error=code, status=status)
