"""Constants and helpers shared by the Cloudflare tests (a uniquely named module, unlike conftest)."""

from __future__ import annotations

TOKEN = "good-token-0123456789"
READ_ONLY_TOKEN = "read-only-token-0123"
EMAIL = "ops@example.com"
API_KEY = "global-key-abcdef0123"
SECRETS = (TOKEN, READ_ONLY_TOKEN, API_KEY)


def assert_no_secret(result) -> None:
    """No credential in any log line, output or error message of a task result."""
    texts = [log["message"] for log in result.logs] + [str(result.outputs), str(result.error or "")]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"credential leaked in: {text!r}"
