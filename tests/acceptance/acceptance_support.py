"""The seed's example flows, kept inside the repository (tests/acceptance/flows) so a clone alone passes.

They are copies of ``shared/acceptance/flows``; ``test_acceptance_copies.py`` checks they have not drifted
whenever the shared folder sits beside the checkout.
"""

from __future__ import annotations

from pathlib import Path

FLOWS = Path(__file__).resolve().parent / "flows"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "acceptance" / "flows"


def acceptance_flow(name: str) -> str:
    return (FLOWS / f"{name}.yaml").read_text()
