"""The bench's cold-page rows (issue 22, item 2): the goal's row, page(total=False) against the original's work.

Nothing is timed here: the rows are checked for what they compare and the targets they carry, on a small data
set in the test moto server (the bench's own section code, with fewer documents and one short round).
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from cachekit._tools.bench import _plugin
from cachekit._tools.bench._core import Section, Settings
from cachekit._tools.bench._report import print_section

pytestmark = pytest.mark.s3


def test_the_cold_page_rows_compare_each_page_with_the_original(
    monkeypatch: pytest.MonkeyPatch, s3_client: Any
) -> None:
    monkeypatch.setattr(_plugin, "_PAGE_DOCUMENTS", 60)
    section = Section("plugin", "test")
    _plugin._cold_page(section, Settings(rounds_s3=1, ops_s3=20), s3_client)
    rows = {row.id: row.as_dict() for row in section.rows}
    assert list(rows) == ["s3_page_reference", "plugin_page_cold_no_total", "plugin_page_cold",
                          "plugin_page_cold_count_warm", "s3_page_reference_parallel"]
    goal = rows["plugin_page_cold_no_total"]
    assert goal["target"] == {"max_ratio": 0.8, "vs": "s3_page_reference"}
    assert "total=False" in goal["label"]
    assert set(goal["ratios"]) == {"s3_page_reference", "s3_page_reference_parallel"}
    assert goal["status"] in ("PASS", "MISS")
    assert rows["plugin_page_cold_count_warm"]["target"] == {"max_ratio": 1.0, "vs": "s3_page_reference"}
    assert rows["plugin_page_cold"]["target"] is None
    assert "listing of all 60 keys" in rows["plugin_page_cold"]["note"]
    printed = io.StringIO()
    print_section(section, printed)
    assert "total=False) cold" in printed.getvalue()
    assert any("skipCount" in note for note in section.notes)


def test_a_page_that_is_not_the_named_one_is_refused_before_timing() -> None:
    page = {"items": [{}] * _plugin._PAGE_SIZE, "total": 500, "next_cursor": "d0024"}
    _plugin._check_page(page, 500)
    with pytest.raises(RuntimeError, match="total 500"):
        _plugin._check_page(page, None)  # a page(total=False) that still counted
    with pytest.raises(RuntimeError, match="next_cursor None"):
        _plugin._check_page({**page, "next_cursor": None}, 500)
