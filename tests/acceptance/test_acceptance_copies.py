"""The repository's copies of the seed's example flows match the shared originals, when those are present."""

from __future__ import annotations

import pytest
from acceptance_support import FLOWS, SHARED


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/acceptance is not beside this checkout")
def test_copies_match_the_shared_examples():
    shared = {p.name: p.read_bytes() for p in SHARED.glob("*.yaml")}
    ours = {p.name: p.read_bytes() for p in FLOWS.glob("*.yaml")}
    assert ours == shared, "tests/acceptance/flows drifted from shared/acceptance/flows: copy them again"
