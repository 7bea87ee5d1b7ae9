"""A fake chat-model server over real HTTP: OpenAI's API and Ollama's, with scripted answers.

::

    fake = FakeLlm(api_key="sk-test", required_headers={"X-Team": "data"}).start()
    fake.script("plain text", {"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]})
    ... ChatClient(ModelSettings("openai", "gpt-test", base_url=fake.openai_url, api_key="sk-test"))
    fake.chats   # every chat request body, as JSON
    fake.stop()

It follows the published shapes:

* ``POST /v1/chat/completions`` answers a ``chat.completion`` (``choices[0].message`` with ``content``
  or ``tool_calls``, ``finish_reason``, ``usage``); ``POST /v1/audio/transcriptions`` (multipart, a
  ``file`` and a ``model``) answers ``{"text": ...}``; errors are ``{"error": {"message", "type",
  "code"}}`` — 401 for a missing or wrong API key;
* ``POST /api/chat`` (Ollama, ``stream: false``) answers ``{"model", "message", "done": true,
  "done_reason", "prompt_eval_count", "eval_count"}``; errors are ``{"error": "..."}``.

Scripted answers are taken in order by every chat, whichever protocol: a string (the text), a
mapping (``content``, ``tool_calls`` as ``[{"name", "arguments"}]``, ``finish_reason``, ``usage``),
or a callable receiving the request body and returning one of those. With the script empty, the
``default`` callable answers (or a 500 says nothing is scripted). Faults (``inject``: 429 with
``Retry-After``, delays past a timeout, malformed bodies) come from :class:`FakeHttpServer`.
A request without one of ``required_headers`` (or with another value) gets 400 naming it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from roost.testing.http import FakeHttpServer, Reply, Request

Answer = str | dict[str, Any] | Callable[[dict[str, Any]], Any]


class FakeLlm(FakeHttpServer):
    protocol_version = "HTTP/1.1"

    def __init__(self, *, api_key: str | None = None, required_headers: dict[str, str] | None = None,
                 default: Callable[[dict[str, Any]], Any] | None = None, transcript: str = "") -> None:  # fmt: skip
        super().__init__()
        self.api_key = api_key
        self.required_headers = dict(required_headers or {})
        self.default = default
        self.transcript = transcript
        self.answers: list[Answer] = []
        self.chats: list[dict[str, Any]] = []
        self.transcriptions: list[dict[str, Any]] = []

    @property
    def openai_url(self) -> str:
        """The base URL an OpenAI-compatible client is given (with ``/v1``)."""
        return self.url + "/v1"

    def script(self, *answers: Answer) -> None:
        with self.lock:
            self.answers.extend(answers)

    # -- serving -----------------------------------------------------------------------------------
    def answer(self, request: Request) -> Reply:
        ollama = request.path == "/api/chat"
        if request.method != "POST":
            return self._error(405, "method not allowed", ollama)
        for name, value in self.required_headers.items():
            if request.headers.get(name) != value:
                return self._error(400, f"missing or wrong header {name}", ollama)
        wrong_key = request.headers.get("authorization") != f"Bearer {self.api_key}"
        if self.api_key is not None and not ollama and wrong_key:
            return self._error(401, "Incorrect API key provided", ollama, code="invalid_api_key")
        if request.path == "/v1/audio/transcriptions":
            return self._transcribe(request)
        if request.path not in ("/v1/chat/completions", "/api/chat"):
            return self._error(404, f"no route {request.path}", ollama)
        try:
            body = json.loads(request.body)
        except ValueError:
            return self._error(400, "the body is not JSON", ollama)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return self._error(400, "model and messages are required", ollama)
        with self.lock:
            self.chats.append(body)
            scripted = self.answers.pop(0) if self.answers else None
        if scripted is None:
            if self.default is None:
                return self._error(500, "the fake has no scripted answer left", ollama)
            scripted = self.default
        answer = scripted(body) if callable(scripted) else scripted
        if isinstance(answer, str):
            answer = {"content": answer}
        return self._ollama(body, answer) if ollama else self._openai(body, answer)

    def _openai(self, body: dict[str, Any], answer: dict[str, Any]) -> Reply:
        message: dict[str, Any] = {"role": "assistant", "content": answer.get("content")}
        calls = answer.get("tool_calls") or []
        if calls:
            message["tool_calls"] = [{"id": c.get("id") or f"call_{i}", "type": "function",
                                      "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments") or {})}}
                                     for i, c in enumerate(calls)]  # fmt: skip
        usage = answer.get("usage") or {"prompt_tokens": 11, "completion_tokens": 7}
        reply = {
            "id": f"chatcmpl-{len(self.chats)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message,
                         "finish_reason": answer.get("finish_reason") or ("tool_calls" if calls else "stop")}],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
        }  # fmt: skip
        return 200, {"Content-Type": "application/json"}, json.dumps(reply).encode()

    def _ollama(self, body: dict[str, Any], answer: dict[str, Any]) -> Reply:
        message: dict[str, Any] = {"role": "assistant", "content": answer.get("content") or ""}
        calls = answer.get("tool_calls") or []
        if calls:
            message["tool_calls"] = [{"function": {"name": c["name"], "arguments": c.get("arguments") or {}}}
                                     for c in calls]  # fmt: skip
        usage = answer.get("usage") or {"prompt_tokens": 11, "completion_tokens": 7}
        reply = {"model": body["model"], "created_at": "2026-01-01T00:00:00Z", "message": message, "done": True,
                 "done_reason": answer.get("finish_reason") or "stop",
                 "prompt_eval_count": usage["prompt_tokens"], "eval_count": usage["completion_tokens"]}  # fmt: skip
        return 200, {"Content-Type": "application/json"}, json.dumps(reply).encode()

    def _transcribe(self, request: Request) -> Reply:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return self._error(400, "expected multipart/form-data", False)
        parsed = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + request.body)
        fields: dict[str, Any] = {}
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            payload = payload if isinstance(payload, bytes) else b""
            if part.get_filename():
                fields[str(name)] = {"filename": part.get_filename(), "content_type": part.get_content_type(),
                                     "data": payload}  # fmt: skip
            else:
                fields[str(name)] = payload.decode()
        if "file" not in fields or not fields.get("model"):
            return self._error(400, "file and model are required", False)
        with self.lock:
            self.transcriptions.append(fields)
        return 200, {"Content-Type": "application/json"}, json.dumps({"text": self.transcript}).encode()

    @staticmethod
    def _error(status: int, message: str, ollama: bool, code: str | None = None) -> Reply:
        if ollama:
            body: Any = {"error": message}
        else:
            body = {
                "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
            }
        return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


__all__ = ["FakeLlm"]
