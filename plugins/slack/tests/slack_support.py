"""Constants and helpers shared by the Slack tests (a uniquely named module, unlike conftest)."""

from __future__ import annotations

from fake_slack import BOT_TOKEN, READ_ONLY_TOKEN

SECRETS = (BOT_TOKEN, READ_ONLY_TOKEN, "xoxb-0000-not-a-valid-token")


def assert_no_secret(result) -> None:
    """No token in any log line, output or error message of a task result."""
    texts = [log["message"] for log in result.logs] + [str(result.outputs), str(result.error or "")]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"token leaked in: {text!r}"
