"""Internal storage: files produced by tasks and FILE inputs, addressed by ``kestra://`` URIs.

A URI is ``kestra:///<namespace path>/<flow>/executions/<execution>/...``; it
maps to a path under the storage root, and no URI can escape the root.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

SCHEME = "kestra://"


class StorageError(Exception):
    """A URI is malformed, escapes its root, or names no stored file."""


class StorageOutside(StorageError):
    """A URI's real path (links resolved) lies outside the folder it was asked within."""


class Storage(Protocol):
    """What an internal-storage backend provides (local filesystem here; S3-like as plugins)."""

    def put(self, key: str, data: bytes | BinaryIO | Path) -> str: ...

    def get(self, uri: str) -> bytes: ...

    def local_path(self, uri: str, within: str | None = None) -> Path: ...

    def exists(self, uri: str) -> bool: ...

    def delete_prefix(self, key: str) -> int: ...


def _safe_key(key: str) -> PurePosixPath:
    if "\0" in key:
        raise StorageError(f"invalid storage path {key!r}: it contains a NUL byte")
    parts = PurePosixPath("/" + key.lstrip("/")).parts[1:]
    if any(p in ("..", "") for p in parts) or not parts:
        raise StorageError(f"invalid storage path {key!r}: it must be a relative path without '..'")
    return PurePosixPath(*parts)


def uri_key(uri: str) -> str:
    if not uri.startswith(SCHEME):
        raise StorageError(f"not an internal-storage URI: {uri!r} (expected {SCHEME}/...)")
    return str(_safe_key(uri[len(SCHEME) :]))


class LocalStorage:
    """Files under one root folder, one folder per tenant."""

    def __init__(self, root: Path | str, tenant: str = "main") -> None:
        self.root = Path(root).resolve() / tenant
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / _safe_key(key)).resolve()
        if self.root not in path.parents:
            raise StorageError(f"storage path {key!r} escapes the storage root")
        return path

    def put(self, key: str, data: bytes | BinaryIO | Path) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        elif isinstance(data, Path):
            shutil.copyfile(data, tmp)
        else:
            with tmp.open("wb") as fh:
                shutil.copyfileobj(data, fh)
        os.replace(tmp, path)  # readers never see half a file
        return SCHEME + "/" + str(_safe_key(key))

    def get(self, uri: str) -> bytes:
        return self.local_path(uri).read_bytes()

    def local_path(self, uri: str, within: str | None = None) -> Path:
        """The file of ``uri``; with ``within`` (a key prefix such as an execution's folder), its real
        path — every symbolic link resolved — must lie inside that folder, not merely inside the root:
        a link in storage never serves another execution's file."""
        path = self._path(uri_key(uri))
        if within is not None:
            folder = self.root / _safe_key(within)
            if folder not in path.parents:
                raise StorageOutside(f"{uri} is not a file of {within}")
        if not path.is_file():
            raise StorageError(f"no file in internal storage at {uri}")
        return path

    def exists(self, uri: str) -> bool:
        try:
            return self._path(uri_key(uri)).is_file()
        except StorageError:
            return False

    def delete_prefix(self, key: str) -> int:
        path = self._path(key)
        if path.is_dir():
            count = sum(1 for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path)
            return count
        if path.is_file():
            path.unlink()
            return 1
        return 0


def execution_prefix(namespace: str, flow_id: str, execution_id: str) -> str:
    return f"{namespace.replace('.', '/')}/{flow_id}/executions/{execution_id}"
