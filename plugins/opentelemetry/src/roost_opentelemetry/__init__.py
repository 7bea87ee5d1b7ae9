"""Roost plugin: ship execution logs to an OpenTelemetry collector (OTLP/HTTP, JSON encoding)."""
