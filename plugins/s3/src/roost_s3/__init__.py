"""Roost plugin: internal storage on S3-compatible object stores (AWS S3, SeaweedFS, MinIO)."""
