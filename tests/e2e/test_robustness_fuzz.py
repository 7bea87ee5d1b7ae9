"""The short form of the fuzz run (tests/robustness/fuzz.py): 200 mutated flow documents through
``roost flow validate`` and a real server's ``POST /api/v1/main/flows``."""

from __future__ import annotations

from tests.robustness.fuzz import MAX_RSS_MB, MAX_SECONDS, generate, run


def test_generation_is_seeded_and_covers_every_kind_of_mutation():
    first, again = generate(300, seed=3), generate(300, seed=3)
    assert [d.data for d in first] == [d.data for d in again]
    assert [d.data for d in generate(300, seed=4)] != [d.data for d in first]
    kinds = {m.split(":")[0] for d in first for m in d.mutations}
    assert kinds == {"types", "tags", "anchors", "nesting", "sizes", "keys", "structure", "expressions", "shapes",
                     "encoding"}  # fmt: skip


def test_fuzzed_flows_get_answers_not_crashes(tmp_path):
    report = run(200, seed=7, workdir=tmp_path)
    figures = report.figures()
    assert report.failures == [], figures
    assert sum(report.api_status.values()) == 200
    assert all(status < 500 for status in report.api_status)
    assert report.cli_valid + report.cli_invalid == 200
    assert report.cli_invalid > 100 and report.api_status[200] > 0  # most mutations break a flow, not all
    assert max(report.api_seconds) < MAX_SECONDS and report.cli_max_per_input[0] < MAX_SECONDS
    assert report.rss_max_mb < MAX_RSS_MB
    assert set(report.readback_status) == {200}
