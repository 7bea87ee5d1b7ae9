"""Workers KV: read and write values, create namespaces."""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, model_validator
from roost import Dynamic, Model, RunContext, TaskError

from roost_cloudflare.base import CloudflareTask, Output
from roost_cloudflare.client import CloudflareApiError

BULK_GET_CHUNK = 100
"""Keys per bulk read (Cloudflare's limit)."""
BULK_WRITE_CHUNK = 10_000
"""Pairs per bulk write (Cloudflare's limit)."""


class _KvTask(CloudflareTask):
    account_id: Dynamic[str]
    """Cloudflare account identifier that owns the namespace."""
    namespace_id: Dynamic[str]
    """Workers KV namespace identifier."""

    def ns_path(self) -> str:
        return f"/accounts/{self.account_id}/storage/kv/namespaces/{self.namespace_id}"


def _key_path(key: str) -> str:
    if not key:
        raise TaskError("a Workers KV key must not be empty")
    return "values/" + quote(key, safe="")


class Get(_KvTask, type="io.kestra.plugin.cloudflare.compute.kv.Get"):
    """Read values from a Workers KV namespace: several keys in bulk, or one key.

    ``keys`` uses ``POST .../bulk/get`` (100 keys per request); ``key`` reads one value with
    ``GET /accounts/{account_id}/storage/kv/namespaces/{namespace_id}/values/{key}``.
    """

    keys: Dynamic[list[str]] | None = None
    """Keys to read in bulk; keys that do not exist map to null in ``values``."""
    key: Dynamic[str] | None = None
    """One key to read (its value is also in the ``value`` output)."""
    value_type: Dynamic[Literal["text", "json"]] = "text"
    """How values are decoded: ``text`` (strings) or ``json`` (parsed JSON)."""
    error_on_missing: Dynamic[bool] = False
    """Fail when ``key`` does not exist, instead of returning a null value."""

    @model_validator(mode="after")
    def _keys_or_key(self) -> Get:
        if (self.keys is None) == (self.key is None):
            raise ValueError("set exactly one of keys (a list, read in bulk) or key (one key)")
        return self

    class Out(Output):
        values: dict[str, Any]
        """Map of key to value (null for a key that does not exist)."""
        value: Any = None
        """The value of ``key`` when one key was read."""
        missing: list[str] = Field(default_factory=list)
        """Keys that do not exist."""

    def run(self, ctx: RunContext) -> Get.Out:
        with self.client(ctx) as cf:
            if self.key is not None:
                label = f"GET {self.ns_path()}/values/..."
                ctx.logger.info("reading KV key %r from namespace %s", self.key, self.namespace_id)
                try:
                    response = cf.request("GET", f"{self.ns_path()}/{_key_path(self.key)}", raw=True)
                except CloudflareApiError as exc:
                    if exc.status == 404 and not self.error_on_missing:
                        ctx.logger.warning(
                            "KV key %r does not exist in namespace %s", self.key, self.namespace_id
                        )
                        return self.Out(values={self.key: None}, value=None, missing=[self.key])
                    raise
                value: Any = response.content.decode("utf-8", errors="replace")
                if self.value_type == "json":
                    try:
                        value = json.loads(value)
                    except ValueError:
                        raise cf.malformed(label, f"the value of {self.key!r} is not JSON") from None
                return self.Out(values={self.key: value}, value=value)
            keys = list(self.keys or [])
            values: dict[str, Any] = {}
            ctx.logger.info("reading %d KV key(s) from namespace %s", len(keys), self.namespace_id)
            for start in range(0, len(keys), BULK_GET_CHUNK):
                chunk = keys[start : start + BULK_GET_CHUNK]
                result = cf.result(
                    "POST", f"{self.ns_path()}/bulk/get", json_body={"keys": chunk, "type": self.value_type}
                )
                got = result.get("values")
                if not isinstance(got, dict):
                    raise cf.malformed(f"POST {self.ns_path()}/bulk/get", "'result.values' is not an object")
                for k in chunk:
                    values[k] = got.get(k)
        missing = [k for k, v in values.items() if v is None]
        if missing and self.error_on_missing:
            raise TaskError(
                f"Workers KV keys not found in namespace {self.namespace_id}: {', '.join(missing)}"
            )
        return self.Out(values=values, missing=missing)


class KvPair(Model):
    """One key-value pair to write."""

    key: str
    """The key (at most 512 bytes)."""
    value: Any
    """The value; anything but a string is written as JSON."""
    expiration: int | None = None
    """Expire at this Unix time (seconds)."""
    expiration_ttl: int | None = None
    """Expire this many seconds from now (at least 60)."""
    metadata: dict[str, Any] | None = None
    """JSON metadata stored with the value."""
    base64: bool | None = None
    """The value is base64-encoded binary data."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


class Write(_KvTask, type="io.kestra.plugin.cloudflare.compute.kv.Write"):
    """Write key-value pairs to a Workers KV namespace, overwriting existing keys.

    ``keyValues`` uses ``PUT .../bulk`` (up to 10,000 pairs per request); ``key`` and ``value``
    write one pair with ``PUT .../values/{key}`` (multipart when ``metadata`` is set).
    The task fails when Cloudflare reports keys it could not write.
    """

    key_values: Dynamic[list[KvPair]] | None = None
    """Pairs to write in bulk (``key``, ``value``, optional ``expiration``, ``expirationTtl``, ``metadata``)."""
    key: Dynamic[str] | None = None
    """One key to write (with ``value``)."""
    value: Dynamic[Any] = None
    """The value of ``key``; anything but a string is written as JSON."""
    expiration_ttl: Dynamic[int] | None = None
    """For ``key``: expire this many seconds from now (at least 60)."""
    expiration: Dynamic[int] | None = None
    """For ``key``: expire at this Unix time."""
    metadata: Dynamic[dict[str, Any]] | None = None
    """For ``key``: JSON metadata stored with the value."""

    @model_validator(mode="after")
    def _pairs_or_key(self) -> Write:
        if (self.key_values is None) == (self.key is None):
            raise ValueError("set exactly one of keyValues (a list of pairs) or key (with value)")
        return self

    class Out(Output):
        successful_key_count: int
        """Number of keys Cloudflare confirmed written."""
        unsuccessful_keys: list[str] = Field(default_factory=list)
        """Keys Cloudflare reported as not written."""
        keys: list[str] = Field(default_factory=list)
        """Keys sent."""

    def run(self, ctx: RunContext) -> Write.Out:
        with self.client(ctx) as cf:
            if self.key is not None:
                if self.value is None:
                    raise TaskError("value is required with key")
                params = {"expiration_ttl": self.expiration_ttl, "expiration": self.expiration}
                path = f"{self.ns_path()}/{_key_path(self.key)}"
                ctx.logger.info("writing KV key %r to namespace %s", self.key, self.namespace_id)
                if self.metadata is not None:
                    cf.request(
                        "PUT",
                        path,
                        params=params,
                        files={
                            "value": (None, _text(self.value).encode()),
                            "metadata": (None, json.dumps(self.metadata).encode(), "application/json"),
                        },
                    )
                else:
                    cf.request(
                        "PUT",
                        path,
                        params=params,
                        content=_text(self.value).encode(),
                        headers={"Content-Type": "text/plain; charset=utf-8"},
                    )
                return self.Out(successful_key_count=1, keys=[self.key])
            pairs = list(self.key_values or [])
            if not pairs:
                raise TaskError("keyValues is empty: nothing to write")
            sent: list[str] = []
            ok = 0
            failed: list[str] = []
            ctx.logger.info("writing %d KV pair(s) to namespace %s", len(pairs), self.namespace_id)
            for start in range(0, len(pairs), BULK_WRITE_CHUNK):
                chunk = pairs[start : start + BULK_WRITE_CHUNK]
                body = []
                for pair in chunk:
                    item: dict[str, Any] = {"key": pair.key, "value": _text(pair.value)}
                    if pair.expiration is not None:
                        item["expiration"] = pair.expiration
                    if pair.expiration_ttl is not None:
                        item["expiration_ttl"] = pair.expiration_ttl
                    if pair.metadata is not None:
                        item["metadata"] = pair.metadata
                    if pair.base64 is not None:
                        item["base64"] = pair.base64
                    body.append(item)
                    sent.append(pair.key)
                result = cf.request("PUT", f"{self.ns_path()}/bulk", json_body=body).get("result")
                if isinstance(result, dict):
                    count = result.get("successful_key_count")
                    bad = result.get("unsuccessful_keys") or []
                    ok += count if isinstance(count, int) else len(chunk) - len(bad)
                    failed.extend(str(k) for k in bad)
                else:  # older answers carry no result: every key was written
                    ok += len(chunk)
        if failed:
            raise TaskError(
                f"Cloudflare did not write {len(failed)} of {len(sent)} key(s) to namespace "
                f"{self.namespace_id}: {', '.join(failed[:20])}{'...' if len(failed) > 20 else ''}"
            )
        return self.Out(successful_key_count=ok, unsuccessful_keys=failed, keys=sent)


class CreateNamespace(CloudflareTask, type="io.kestra.plugin.cloudflare.compute.namespaces.Create"):
    """Create a Workers KV namespace (``POST /accounts/{account_id}/storage/kv/namespaces``)."""

    account_id: Dynamic[str]
    """Cloudflare account identifier."""
    title: Dynamic[str]
    """Title of the namespace, unique in the account."""

    class Out(Output):
        namespace_id: str
        """Identifier of the new namespace."""
        title: str
        """Title Cloudflare recorded."""

    def run(self, ctx: RunContext) -> CreateNamespace.Out:
        with self.client(ctx) as cf:
            ctx.logger.info("creating KV namespace %r in account %s", self.title, self.account_id)
            result = cf.result(
                "POST", f"/accounts/{self.account_id}/storage/kv/namespaces", json_body={"title": self.title}
            )
        if not isinstance(result.get("id"), str):
            raise TaskError("Cloudflare API returned a malformed namespace: no 'id'")
        ctx.logger.info("KV namespace %r created with id %s", self.title, result["id"])
        return self.Out(namespace_id=result["id"], title=result.get("title") or self.title)
