"""Hookimpls only: the `s3` internal-storage backend."""

from roost import hookimpl


@hookimpl
def register_storage_backends(register):
    from roost_s3.storage import S3Backend  # boto3 loads only when S3 storage is configured

    register("s3", S3Backend())
