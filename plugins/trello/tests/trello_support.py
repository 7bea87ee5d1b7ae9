"""Constants and helpers shared by the Trello tests (a uniquely named module, unlike conftest)."""

from __future__ import annotations

KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
TOKEN = "ATTA7f3e9c2b1d4a5e6f7081928374655647382910abcdef0123456789abcdef0123"
READ_TOKEN = "ATTAread0only0token0aaaabbbbccccddddeeeeffff00001111222233334444"
SECRETS = (KEY, TOKEN, READ_TOKEN)


def assert_no_secret(result) -> None:
    texts = [log["message"] for log in result.logs] + [str(result.outputs), str(result.error or "")]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret leaked in: {text!r}"
