"""The S3 backend against a real SeaweedFS: the Storage protocol, key rules, tenant isolation, settings."""

from __future__ import annotations

import io

import pytest
from roost import StorageConfigError, StorageError, StorageNotFound, StorageOutside
from roost.plugins import Plugins
from roost.store.storage import storage_factory


def storage(seaweed, bucket, tenant="main", **extra):
    config = seaweed.storage_config(bucket, **extra)
    return storage_factory(config, seaweed.root, plugins=Plugins(), environ=seaweed.environ())(tenant)


def test_put_and_read_back_bytes_paths_and_streams(seaweed, bucket, tmp_path):
    st = storage(seaweed, bucket)
    assert st.put("ns/flow/executions/e1/a.txt", b"hello") == "kestra:///ns/flow/executions/e1/a.txt"
    local = tmp_path / "b.bin"
    local.write_bytes(b"x" * (9 << 20))  # above the 8 MiB part size: a multipart upload
    st.put("ns/flow/executions/e1/b.bin", local)
    st.put("ns/flow/executions/e1/c.txt", io.BytesIO(b"streamed"))
    with st.open_read("kestra:///ns/flow/executions/e1/a.txt") as fh:
        assert fh.read() == b"hello"
    with st.open_read("kestra:///ns/flow/executions/e1/b.bin") as fh:
        assert sum(len(chunk) for chunk in iter(lambda: fh.read(1 << 20), b"")) == 9 << 20
    assert st.size("kestra:///ns/flow/executions/e1/b.bin") == 9 << 20
    assert st.exists("kestra:///ns/flow/executions/e1/c.txt")
    assert not st.exists("kestra:///ns/flow/executions/e1/nope.txt")
    assert st.list("ns/flow/executions/e1") == [
        "kestra:///ns/flow/executions/e1/a.txt",
        "kestra:///ns/flow/executions/e1/b.bin",
        "kestra:///ns/flow/executions/e1/c.txt",
    ]
    keys = [o["Key"] for o in seaweed.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert "main/ns/flow/executions/e1/a.txt" in keys  # <prefix>/<tenant>/<key>, as Kestra lays them out


def test_missing_files_outside_folders_and_bad_keys(seaweed, bucket):
    st = storage(seaweed, bucket)
    st.put("ns/f/executions/e1/out.txt", b"1")
    with pytest.raises(
        StorageNotFound, match="no file in internal storage at kestra:///ns/f/executions/e1/x"
    ):
        st.open_read("kestra:///ns/f/executions/e1/x")
    with pytest.raises(StorageNotFound):
        st.size("kestra:///ns/f/executions/e1/x")
    with pytest.raises(StorageOutside):
        st.open_read("kestra:///ns/f/executions/e1/out.txt", within="ns/f/executions/e2")
    with pytest.raises(StorageOutside):  # a sibling whose name starts like the folder is outside it
        st.size("kestra:///ns/f/executions/e1/out.txt", within="ns/f/executions/e")
    for bad in ("../other/x", "a/../../x", "..", "a/\0b"):
        with pytest.raises(StorageError):
            st.put(bad, b"x")
    assert st.put("/a//b/./c", b"x") == "kestra:///a/b/c"  # normalised by the same rule as local storage
    with pytest.raises(StorageError):
        st.open_read("kestra:///ns/../../main/x")
    with pytest.raises(StorageError):
        st.open_read("s3://bucket/key")


def test_tenants_and_prefixes_are_isolated(seaweed, bucket):
    main = storage(seaweed, bucket, "main", prefix="roost/prod")
    acme = storage(seaweed, bucket, "acme", prefix="roost/prod")
    main.put("ns/f/file.txt", b"main's")
    acme.put("ns/f/file.txt", b"acme's")
    with main.open_read("kestra:///ns/f/file.txt") as a, acme.open_read("kestra:///ns/f/file.txt") as b:
        assert (a.read(), b.read()) == (b"main's", b"acme's")
    keys = sorted(o["Key"] for o in seaweed.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["roost/prod/acme/ns/f/file.txt", "roost/prod/main/ns/f/file.txt"]
    assert acme.delete_prefix("ns") == 1
    assert main.exists("kestra:///ns/f/file.txt") and not acme.exists("kestra:///ns/f/file.txt")


def test_delete_and_delete_prefix(seaweed, bucket):
    st = storage(seaweed, bucket)
    for i in range(5):
        st.put(f"ns/f/executions/e1/tasks/t/{i}.txt", b"x")
    st.put("ns/f/executions/e10/keep.txt", b"x")  # shares the first characters, not the folder
    assert st.delete("kestra:///ns/f/executions/e1/tasks/t/0.txt") is True
    assert st.delete("kestra:///ns/f/executions/e1/tasks/t/0.txt") is False
    assert st.delete_prefix("ns/f/executions/e1") == 4
    assert st.list("ns/f/executions/e1") == []
    assert st.exists("kestra:///ns/f/executions/e10/keep.txt")
    st.check_writable()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"secretKey": "plain-text-secret", "accessKey": "id"}, "secretKey: write a reference"),
        ({"accessKey": "${X}"}, "set accessKey and secretKey together"),
        ({"bucket": "Bad_Bucket"}, "bucket: a bucket name is 3-63 lower-case"),
        ({"colour": "blue"}, "colour: unknown property"),
        ({"multipartChunkSize": 1024}, "multipartChunkSize"),
    ],
)
def test_settings_are_checked_before_anything_connects(settings, message):
    config = {"type": "s3", "s3": {"bucket": "roost", **settings}}
    with pytest.raises(StorageConfigError, match=message):
        storage_factory(config, __import__("pathlib").Path("/nonexistent"), plugins=Plugins())


def test_kestra_spellings_and_an_unknown_type(seaweed, bucket):
    config = {"type": "s3", "s3": {"bucket": bucket, "endpoint": seaweed.endpoint, "access-key": "${ROOST_TEST_S3_ACCESS_KEY}",
                                   "secret-key": "${ROOST_TEST_S3_SECRET_KEY}", "force-path-style": True}}  # fmt: skip
    st = storage_factory(config, seaweed.root, plugins=Plugins(), environ=seaweed.environ())("main")
    assert st.put("k.txt", b"1") == "kestra:///k.txt"
    with pytest.raises(StorageConfigError, match="unknown storage backend 'gcs' \\(installed: local, s3"):
        storage_factory({"type": "gcs"}, seaweed.root, plugins=Plugins())
    with pytest.raises(
        StorageConfigError, match="refers to the environment variable NOPE_KEY, which is not set"
    ):
        bad = {"type": "s3", "s3": {"bucket": bucket, "accessKey": "${NOPE_KEY}", "secretKey": "${NOPE_KEY}"}}
        storage_factory(bad, seaweed.root, plugins=Plugins(), environ={})("main")
