"""Internal storage on S3: one bucket (and optional prefix), one folder per tenant, streamed both ways.

A file's object key is ``<prefix>/<tenant>/<storage key>``; storage keys are normalised by
:func:`roost.storage_key` (no ``..``, no empty segment), so no URI reaches outside its tenant's folder.
Uploads are multipart with a bounded number of parts in memory (``upload_file`` for local files reads
each part from disk; ``upload_fileobj`` for streams holds at most ``maxConcurrency`` parts); downloads
stream the ``GetObject`` body. A completed PUT or multipart upload is atomic: readers never see half a file.
boto3 is imported when S3 storage is built, never when plugins are discovered.
"""

from __future__ import annotations

import io
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import Field, ValidationError, field_validator
from roost import (
    BodyStream,
    Model,
    StorageConfigError,
    StorageError,
    StorageNotFound,
    StorageOutside,
    StorageUnavailable,
    key_uri,
    key_within,
    storage_key,
    uri_key,
)

MiB = 1 << 20
_SECRET_FIELDS = ("secretKey", "sessionToken")


class S3Settings(Model):
    """The ``storage.s3`` settings (Kestra's names; ``access-key`` style spellings are accepted too)."""

    bucket: str = Field(min_length=3, max_length=63)
    """The bucket holding the files (it must exist)."""
    prefix: str = ""
    """Key prefix inside the bucket, before the tenant's folder (e.g. ``roost/prod``)."""
    region: str | None = None
    """AWS region (``us-east-1`` when none is set and the default chain has none)."""
    endpoint: str | None = None
    """Endpoint URL of an S3-compatible server (SeaweedFS, MinIO); none for AWS."""
    access_key: str | None = None
    """Access key id, or a reference to it; with ``secretKey``. Neither: boto3's default chain (environment,
    profile, instance role)."""
    secret_key: str | None = None
    """Secret access key: a reference (``{{ secret('S3_SECRET_KEY') }}`` or ``${VAR}``), never the value."""
    session_token: str | None = None
    """Session token of temporary credentials: a reference."""
    force_path_style: bool | None = None
    """Path-style addressing (``endpoint/bucket/key``): true by default with an ``endpoint`` (SeaweedFS,
    MinIO), false for AWS."""
    multipart_chunk_size: int = Field(default=8 * MiB, ge=5 * MiB, le=5 * 1024 * MiB)
    """Bytes per part of a multipart upload (also the size above which uploads are multipart)."""
    max_concurrency: int = Field(default=4, ge=1, le=64)
    """Parts uploaded or downloaded at once; memory for a streamed upload is about chunk size x this."""
    connect_timeout: float = Field(default=10, gt=0)
    """Seconds to open a connection."""
    read_timeout: float = Field(default=60, gt=0)
    """Seconds to wait for data on a connection."""
    max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts per request (boto3's standard retry mode: throttling and transient errors)."""
    verify_ssl: bool = True
    """Verify the endpoint's TLS certificate."""
    ca_bundle: str | None = None
    """A CA bundle file to verify the endpoint's certificate with."""

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if (
            not all(c.islower() or c.isdigit() or c in ".-" for c in value)
            or value[0] in ".-"
            or value[-1] in ".-"
        ):
            raise ValueError("a bucket name is 3-63 lower-case letters, digits, '.' or '-'")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        return storage_key(value) if value else ""


def _camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class S3Backend:
    """The ``s3`` backend's factory: settings checked at start-up, one storage per tenant."""

    @staticmethod
    def check(config: Any) -> S3Settings:
        data = {_camel(str(k)): v for k, v in config.items()}
        for name in _SECRET_FIELDS:
            value = data.get(name)
            if value is not None and not (isinstance(value, str) and ("{{" in value or "${" in value)):
                raise StorageConfigError(
                    f"{config.path}.{name}: write a reference ({{{{ secret('KEY') }}}} or ${{ENV_VAR}}), never "
                    "the value: configuration is not a secret store"
                )
        if bool(data.get("accessKey")) != bool(data.get("secretKey")):
            raise StorageConfigError(f"{config.path}: set accessKey and secretKey together (or neither, for boto3's "
                                     "default credential chain)")  # fmt: skip
        try:
            return S3Settings.model_validate(data)
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err.get("loc", ()))
                msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                if err.get("type") == "extra_forbidden":
                    known = sorted(f.alias or n for n, f in S3Settings.model_fields.items())
                    msg = f"unknown property (known: {', '.join(known)})"
                lines.append(f"{config.path}.{where}: {msg}")
            raise StorageConfigError("; ".join(lines)) from None

    def __call__(self, config: Any) -> S3Storage:
        settings = self.check(config)
        keys = {  # references resolved now; the values live in the client only
            name: config.resolve(value, alias) if value else None
            for name, alias, value in (
                ("aws_access_key_id", "accessKey", settings.access_key),
                ("aws_secret_access_key", "secretKey", settings.secret_key),
                ("aws_session_token", "sessionToken", settings.session_token),
            )  # fmt: skip
        }
        return S3Storage(settings, config.tenant or "main", keys)


_client_lock = threading.Lock()  # boto3 sessions are not thread-safe to create clients from


class S3Storage:
    """One tenant's files in an S3 bucket."""

    kind = "s3"

    def __init__(self, settings: S3Settings, tenant: str, keys: dict[str, str | None] | None = None) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.settings = settings
        self.tenant = tenant
        self.bucket = settings.bucket
        self.root = "/".join(p for p in (settings.prefix, storage_key(tenant)) if p)
        path_style = (
            settings.force_path_style if settings.force_path_style is not None else bool(settings.endpoint)
        )
        config = Config(
            region_name=settings.region or "us-east-1",
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
            s3={"addressing_style": "path" if path_style else "auto"},
            max_pool_connections=max(10, settings.max_concurrency * 2),
        )
        with _client_lock:
            session = boto3.session.Session(**(keys or {}))
            self.client = session.client("s3", endpoint_url=settings.endpoint, config=config,
                                         verify=settings.ca_bundle or settings.verify_ssl)  # fmt: skip
        self.transfer = TransferConfig(multipart_threshold=settings.multipart_chunk_size,
                                       multipart_chunksize=settings.multipart_chunk_size,
                                       max_concurrency=settings.max_concurrency, io_chunksize=MiB)  # fmt: skip
        # a streamed (non-seekable) upload holds this many parts in memory at most
        self.transfer.max_in_memory_upload_chunks = settings.max_concurrency
        self.transfer.max_in_memory_download_chunks = settings.max_concurrency

    def __repr__(self) -> str:
        where = f" at {self.settings.endpoint}" if self.settings.endpoint else ""
        return f"s3://{self.bucket}/{self.root}{where}"

    # -- keys ------------------------------------------------------------------------------------------
    def _object(self, key: str) -> str:
        return f"{self.root}/{storage_key(key)}"

    def _uri_object(self, uri: str, within: str | None = None) -> str:
        key = uri_key(uri)
        if not key_within(key, within):
            raise StorageOutside(f"{uri} is not a file of {within}")
        return self._object(key)

    # -- errors ----------------------------------------------------------------------------------------
    def _error(self, exc: Exception, doing: str, uri: str | None = None) -> StorageError:
        """A storage error for a boto3 failure: what was done, where, and why, with no credential in it."""
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound") and uri is not None:
                return StorageNotFound(f"no file in internal storage at {uri}")
            if code == "NoSuchBucket":
                return StorageUnavailable(
                    f"internal storage {self}: the bucket '{self.bucket}' does not exist"
                )
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
                        "ExpiredToken") or status == 403:  # fmt: skip
                return StorageUnavailable(f"internal storage {self}: {doing} was refused ({code or status}): "
                                          "check the access key, secret key and the bucket's policy")  # fmt: skip
            return StorageUnavailable(f"internal storage {self}: {doing} failed ({code or status}): "
                                      f"{error.get('Message', '')}".rstrip(": "))  # fmt: skip
        if isinstance(exc, NoCredentialsError):
            return StorageUnavailable(f"internal storage {self}: no credentials (set accessKey and secretKey, "
                                      "or configure boto3's default chain)")  # fmt: skip
        if isinstance(exc, EndpointConnectionError):
            return StorageUnavailable(
                f"internal storage {self}: cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}"
            )
        return StorageUnavailable(f"internal storage {self}: {doing} failed: {type(exc).__name__}: {exc}")

    def _call(self, doing: str, fn: Any, *args: Any, uri: str | None = None, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kw)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, doing, uri) from None

    # -- the Storage protocol --------------------------------------------------------------------------
    def put(self, key: str, data: bytes | BinaryIO | Path) -> str:
        obj = self._object(key)
        doing = f"writing {key_uri(key)}"
        if isinstance(data, bytes | bytearray | memoryview):
            if len(data) < self.settings.multipart_chunk_size:
                self._call(doing, self.client.put_object, Bucket=self.bucket, Key=obj, Body=bytes(data))
                return key_uri(key)
            data = io.BytesIO(data)
        if isinstance(data, Path):
            self._transfer(doing, self.client.upload_file, str(data), self.bucket, obj, Config=self.transfer)
        else:
            self._transfer(doing, self.client.upload_fileobj, data, self.bucket, obj, Config=self.transfer)
        return key_uri(key)

    def _transfer(self, doing: str, fn: Any, *args: Any, **kw: Any) -> None:
        from boto3.exceptions import S3UploadFailedError

        try:
            self._call(doing, fn, *args, **kw)
        except S3UploadFailedError as exc:  # boto3 wraps the ClientError it was handling
            from botocore.exceptions import BotoCoreError, ClientError

            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError | BotoCoreError):
                raise self._error(cause, doing) from None
            raise StorageUnavailable(f"internal storage {self}: {doing} failed: {exc}") from None

    def open_read(self, uri: str, within: str | None = None) -> BinaryIO:
        obj = self._uri_object(uri, within)
        answer = self._call(f"reading {uri}", self.client.get_object, Bucket=self.bucket, Key=obj, uri=uri)
        body = BodyStream(answer["Body"], lambda exc: f"internal storage {self}: reading {uri} failed: "
                                                      f"{type(exc).__name__}: {exc}")  # fmt: skip
        return io.BufferedReader(body, MiB)

    def size(self, uri: str, within: str | None = None) -> int:
        obj = self._uri_object(uri, within)
        head = self._call(f"reading {uri}", self.client.head_object, Bucket=self.bucket, Key=obj, uri=uri)
        return int(head["ContentLength"])

    def exists(self, uri: str) -> bool:
        try:
            self.size(uri)
        except StorageUnavailable:
            raise
        except StorageError:  # not found, or not a valid URI
            return False
        return True

    def _objects(self, folder: str) -> Any:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder + "/")
        for page in pages:
            yield from page.get("Contents") or ()

    def list(self, prefix: str) -> list[str]:
        folder = self._object(prefix)
        found = self._call(f"listing {key_uri(prefix)}", lambda: [o["Key"] for o in self._objects(folder)])
        if self.exists(key_uri(prefix)):
            found.append(folder)
        return sorted(key_uri(k[len(self.root) + 1 :]) for k in found)

    def delete(self, uri: str) -> bool:
        if not self.exists(uri):
            return False
        self._call(
            f"deleting {uri}", self.client.delete_object, Bucket=self.bucket, Key=self._uri_object(uri)
        )
        return True

    def delete_prefix(self, key: str) -> int:
        folder = self._object(key)
        doing = f"deleting {key_uri(key)}"
        keys = self._call(doing, lambda: [o["Key"] for o in self._objects(folder)])
        if self.exists(key_uri(key)):
            keys.append(folder)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys a call
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            answer = self._call(doing, self.client.delete_objects, Bucket=self.bucket,
                                Delete={"Objects": batch, "Quiet": True})  # fmt: skip
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StorageUnavailable(f"internal storage {self}: {doing}: {len(answer['Errors'])} file(s) not "
                                         f"deleted ({first.get('Code')}: {first.get('Message')})")  # fmt: skip
        return len(keys)

    def check_writable(self) -> None:
        """Write and delete a small object: the bucket exists, the credentials work and may write."""
        probe = f"{self.root}/.roost-write-check/{uuid.uuid4().hex}"
        self._call("a write check", self.client.put_object, Bucket=self.bucket, Key=probe, Body=b"")
        self._call("a write check", self.client.delete_object, Bucket=self.bucket, Key=probe)
