"""Where the seed's example flows are: shared/acceptance/flows beside the checkout."""

from __future__ import annotations

from pathlib import Path

FLOWS = Path(__file__).resolve().parents[2].parent / "shared" / "acceptance" / "flows"


def acceptance_flow(name: str) -> str:
    path = FLOWS / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: shared/acceptance must sit beside the checkout")
    return path.read_text()
