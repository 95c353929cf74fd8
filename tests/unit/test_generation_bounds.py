"""Generation scopes stay bounded under attacker-chosen ids, and counters never move back (issue 19, item 5).

Before, 300,000 writes of distinct ids left 300,001 scopes in a memory store (``max_size=100``), and a view's
outage fallback grew by everything it had known at every reset, never pruned.
"""

from __future__ import annotations

from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit.generations import MemoryGenerations, store_for
from cachekit.generations import view as view_module
from cachekit.generations.view import GenerationView
from cachekit.keys import KeySpec


def test_memory_scopes_are_bounded_and_counters_never_move_back() -> None:
    store = MemoryGenerations(limit=100)
    seen: dict[str, int] = {}
    for round_ in range(3):
        for number in range(300):
            scope = f"users/item/{number}"
            (value,) = store.bump("ns", [scope])
            assert value > seen.get(scope, 0), f"{scope} went from {seen.get(scope)} to {value} in round {round_}"
            seen[scope] = value
        assert len(store._values) <= 100
    for scope, value in seen.items():
        assert store.read("ns", [scope])[0] >= value  # a forgotten scope reads at the floor, never below
    assert store.read("other", ["users/item/0"]) == [0]  # floors are per namespace
    assert len(store._values) <= 100


class _Users:
    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rows: dict[str, int] = {}
        self.calls = 0

    @cached(action="get")
    def get(self, id: str) -> int:
        self.calls += 1
        return self.rows.get(id, 0)

    @invalidates(action="update")
    def update(self, id: str, value: int) -> None:
        self.rows[id] = value


def test_writes_of_attacker_chosen_ids_leave_a_bounded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MemoryGenerations, "limit", 1000)
    users = _Users(Cache(namespace="bounded", config={"max_size": 100}))
    users.update("victim", 1)
    assert users.get("victim") == 1
    for number in range(5000):
        users.update(f"attacker-{number}", number)
    store = store_for(users.cache.driver)
    assert isinstance(store, MemoryGenerations)
    assert len(store._values) <= 1000
    users.update("victim", 2)  # its scope was forgotten: the bump still goes above every value it had
    assert users.get("victim") == 2
    fresh = _Users(Cache(users.cache.driver, namespace="bounded"))  # a view that never saw the old values
    fresh.rows = users.rows
    assert fresh.get("victim") == 2


def test_a_views_outage_fallback_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(view_module, "_KNOWN_LIMIT", 50)
    view = GenerationView(MemoryGenerations(), "ns")
    for round_ in range(10):
        view.changed([(f"r{round_}/item/{number}", 1) for number in range(40)])
        view.reset()
    assert len(view._fallback) <= 100
    scopes: Any = [f"gone/item/{number}" for number in range(200)]
    view._offline(scopes)
    assert len(view._unreachable) <= 51



def test_distinct_reads_on_a_capped_memory_driver_grow_no_table_of_scopes() -> None:
    """Issue 22, item 1: a memory driver's view copied the generation of every scope it read (three tables, up
    to 100,000 scopes each), so distinct ids grew the heap by megabytes whatever ``max_size`` said (3.6 MB
    here). Its store is read in place now: what 20 memos' worth of distinct ids leave behind is the last full
    key memo (about 500 bytes a slot) and the 100 entries, all allocated during the run.
    """
    import gc
    import tracemalloc

    from cachekit._cached_state import MEMO_LIMIT

    users = _Users(Cache(namespace="capped", config={"max_size": 100}))
    for number in range(2 * MEMO_LIMIT):  # the memo full at the end, as it is at the end of the run
        users.get(f"warm-{number}")
        users.get(f"warm-{number}")
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for number in range(20 * MEMO_LIMIT):
            users.get(f"id-{number}")
            users.get(f"id-{number}")
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 1 << 20, f"{20 * MEMO_LIMIT:,} distinct reads grew the heap by {grown / 1024:,.0f} KB"
    view = users.cache._gens
    assert (len(view._known), len(view._fallback), len(view._floors)) == (0, 0, 0)
    users.update("id-5", 7)  # no copy is kept, and every write is still seen
    assert users.get("id-5") == 7


def test_a_memory_stores_view_renders_every_key_locally_and_copies_no_bump() -> None:
    """The other two ways a view of an in-process store copied scopes: its own bumps (``_adopt``, one scope per
    distinct id written) and reads that rendered through the store (``render_local``, the event loop's way, said
    "ask the store" for every scope not copied yet)."""
    users = _Users(Cache(namespace="written", config={"max_size": 100}))
    view = users.cache._gens
    for number in range(2000):
        users.update(f"id-{number}", number)
    assert (len(view._known), len(view._fallback), len(view._floors)) == (0, 0, 0)
    template = users.cache.key_template(KeySpec("users", "get", item_id="id-7", has_item=True))
    assert len(template.scopes) == 3  # the namespace's, the resource's and the item's
    assert view.render_local(template) == view.render(template)[0]  # never deferred to a worker thread
    users.update("id-7", 8)
    assert view.render_local(template) == view.render(template)[0]
    assert users.get("id-7") == 8
