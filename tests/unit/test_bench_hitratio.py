"""``cachekit bench --only hitratio``: the traces are fixed and the outcomes carry their verdicts (no timing)."""

from __future__ import annotations

import dataclasses

from cachekit._tools.bench._core import Settings
from cachekit._tools.bench._hitratio import TRACES, hit_ratio, run_hitratio, trace


def test_traces_are_deterministic_and_shaped_as_documented() -> None:
    zipf = trace("zipf_scan", 60_000)
    assert zipf == trace("zipf_scan", 60_000)
    assert len(zipf) == 60_000
    assert all(key.startswith("s") for key in zipf[40_000:50_000])  # the scan after the first block
    assert len(set(zipf[40_000:50_000])) == 10_000
    loop = trace("loop", 50_000)
    assert loop[:20_000] == loop[20_000:40_000]


def test_tinylfu_beats_lru_on_the_scan_trace_and_equals_it_on_a_tiny_loop() -> None:
    keys = trace("zipf_scan", 100_000)
    assert hit_ratio("cachekit_tinylfu", keys, 1_000) > hit_ratio("cachekit_lru", keys, 1_000) + 0.03
    assert hit_ratio("cachekit_lru", keys, 1_000) == hit_ratio("cachetools_lru", keys, 1_000)  # LRU is LRU
    small = [f"k{i % 10}" for i in range(1000)]
    assert hit_ratio("cachekit_tinylfu", small, 100) == hit_ratio("cachekit_lru", small, 100) == 0.99


def test_the_section_reports_every_trace_size_and_contender_with_verdicts() -> None:
    settings = dataclasses.replace(Settings.quick(), instructions=False)
    section = run_hitratio(settings, reads=20_000)
    ids = {outcome.id for outcome in section.outcomes}
    for name in TRACES:
        for capacity in (1_000, 10_000):
            assert f"{name}_{capacity}_cachekit_tinylfu" in ids
            assert f"{name}_{capacity}_cachekit_lru" in ids
    judged = [o for o in section.outcomes if o.id.endswith("_cachekit_tinylfu")]
    assert all(o.status in ("PASS", "MISS") and 0 <= o.value <= 1 for o in judged)
    assert any("instructions: n/a" in note for note in section.notes)
