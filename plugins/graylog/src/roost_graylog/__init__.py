"""Roost plugin: ship execution logs to a Graylog GELF HTTP input."""
