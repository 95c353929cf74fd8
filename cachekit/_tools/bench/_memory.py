"""Section ``memory`` (issue 2): a decorated method's cache hit, cachekit against cachetools and cachebox.

Every row calls ``repo.get("u1")`` on an instance, as user code does (the attribute lookup, and for wrapt the
binding of the method, are part of the cost), and the method returns a 10-field dict.
"""

from __future__ import annotations

import operator
from typing import Any

from ._core import RECORD, Case, Outcome, Section, Settings, batch_timer, make_row, measure
from ._instructions import add_instruction_counts
from ._typed import typed_contender, typed_outcomes, typed_repos

__all__ = ["RECORD", "contender", "memory_repos", "run_memory"]

_STMT = "repo.get(key)"
_SETUP = "repo = REPO; key = KEY"  # locals inside timeit's loop function, as in a real caller
_REFERENCE = "cachetools_cached"
_CACHEBOX = "cachebox_cached"
_TARGETS = {"cachekit_objects": 2.5, "cachekit_msgpack": 6.0}
#: A tiered L1 hit against a plain memory hit (both msgpack), in instructions per hit (issue 22).
_TIERED_TARGET = 1.2


def _load(self: Any, id: str) -> dict[str, Any]:
    """The 'expensive' read every cached variant wraps: a fresh copy of the record."""
    return dict(RECORD)


def _cachekit_repo(store: str) -> Any:
    from cachekit import Cache, cached

    config = {"store": "objects"} if store == "objects" else {}
    if store == "tiered":
        import tempfile

        # An L1 hit in front of a shared tier: generations come from the shared tier's store, known locally.
        directory = tempfile.mkdtemp(prefix="cachekit-bench-tiers-")
        disk = {"driver": "filesystem", "ttl": 600, "config": {"directory": directory}}
        shared = Cache(drivers=[{"driver": "memory", "ttl": 600}, disk], namespace="bench-memory-tiered")
    else:
        shared = Cache(driver="memory", namespace=f"bench-memory-{store}", config=config)

    class Repo:
        name = "users"
        cache = shared

        @cached(action="get")
        def get(self, id: str) -> dict[str, Any]:
            return dict(RECORD)

    return Repo()


def _plain_repo() -> Any:
    class Repo:
        def get(self, id: str) -> dict[str, Any]:
            return RECORD

    return Repo()


def _peer_repos(notes: list[str]) -> dict[str, tuple[str, Any]]:
    """cachetools and cachebox variants, each applied as its docs show for methods; absent libraries noted."""
    repos: dict[str, tuple[str, Any]] = {}
    try:
        import cachetools
        import cachetools.keys
    except ImportError:
        notes.append("cachetools is not installed (pip install 'cachekit-orm[bench]'): its rows and the targets "
                     "are skipped")
    else:
        shared = type("Repo", (), {"get": cachetools.cached(cachetools.LRUCache(maxsize=1024),
                                                            key=cachetools.keys.methodkey)(_load)})
        per_instance = type("Repo", (), {
            "__init__": lambda self: setattr(self, "_cache", cachetools.LRUCache(maxsize=1024)),
            # The cache found by a C getter, as in cachetools' docs and shared/tools/hitpath_instr.py (a lambda
            # would add a Python frame to the reference).
            "get": cachetools.cachedmethod(operator.attrgetter("_cache"))(_load),
        })
        repos[_REFERENCE] = ("cachetools @cached(LRUCache, key=methodkey) method", shared())
        repos["cachetools_cachedmethod"] = ("cachetools @cachedmethod(LRUCache per instance)", per_instance())
    try:
        import cachebox
    except ImportError:
        notes.append("cachebox is not installed (pip install 'cachekit-orm[bench]'): its rows are skipped")
    else:
        boxed = type("Repo", (), {"get": cachebox.cached(cachebox.LRUCache(1024))(_load)})
        repos[_CACHEBOX] = ("cachebox @cached(LRUCache) method (defaults: lock, copies the dict)", boxed())
        try:
            bare = cachebox.cached(cachebox.LRUCache(1024), postprocess=None, lock=False)(_load)
        except TypeError:  # cachebox < 5 has no postprocess
            notes.append("this cachebox has no postprocess option: the no-copy row is skipped")
        else:
            repos["cachebox_cached_nocopy"] = ("cachebox @cached, postprocess=None, lock=False (no copy)",
                                               type("Repo", (), {"get": bare})())
    return repos


def memory_repos(notes: list[str]) -> dict[str, tuple[str, Any]]:
    """Every contender of the section: ``{row id: (label, repo)}``; a missing peer library is noted in ``notes``."""
    repos: dict[str, tuple[str, Any]] = {"plain": ("plain method call (returns a prebuilt dict)", _plain_repo())}
    repos.update(_peer_repos(notes))
    repos["cachekit_objects"] = ('cachekit @cached, Cache(driver="memory", store="objects")', _cachekit_repo("objects"))
    repos["cachekit_msgpack"] = ('cachekit @cached, Cache(driver="memory") (msgpack)', _cachekit_repo("msgpack"))
    repos["cachekit_tiered_l1"] = ("cachekit @cached, memory -> filesystem tiers, L1 hit", _cachekit_repo("tiered"))
    repos.update(typed_repos(notes))  # issue 17: typed results vs the dict row and pickle.loads
    return repos


def contender(row_id: str) -> Any:
    """The repository of one row, built alone (what an instruction-counting child process measures)."""
    if row_id == "plain":
        return _plain_repo()
    typed = typed_contender(row_id)
    if typed is not None:
        return typed
    if row_id.startswith("cachekit_"):
        return _cachekit_repo({"cachekit_tiered_l1": "tiered"}.get(row_id, row_id.removeprefix("cachekit_")))
    return _peer_repos([])[row_id][1]


def _tiered_instructions(section: Section) -> None:
    """Instructions per tiered L1 hit against a plain memory hit (same run), and the ratio against its target."""
    counts = {row.id: row.extra.get("instructions") for row in section.rows}
    tiered, plain = counts.get("cachekit_tiered_l1"), counts.get("cachekit_msgpack")
    if not tiered or not plain:
        return
    ratio = tiered / plain
    section.outcomes.append(Outcome(
        "cachekit_tiered_l1_instructions", "tiered L1 hit vs plain memory hit (msgpack): instructions per hit",
        round(ratio, 3), "x", f"≤ {_TIERED_TARGET:g}x", "PASS" if ratio <= _TIERED_TARGET else "MISS",
        f"{tiered:,} vs {plain:,}",
    ))


def run_memory(settings: Settings) -> Section:
    """Measure the memory decorator hits (one group, so every ratio is within the same rounds)."""
    section = Section("memory", "Memory decorator hit: repo.get('u1') returning a 10-field dict")
    repos = memory_repos(section.notes)
    cases = []
    for case_id, (label, repo) in repos.items():
        repo.get("u1")  # the first call is the miss that fills the cache
        cases.append(Case(case_id, label, batch_timer(_STMT, {"REPO": repo, "KEY": "u1"}, _SETUP),
                          settings.ops_memory, batch_ns=settings.batch_ns))
    found = measure(cases, settings.rounds_fast)
    reference = _REFERENCE if _REFERENCE in found else "plain"
    if reference != _REFERENCE:
        section.notes.append("without cachetools the ratios are against the plain call and targets are not checked")
    for case_id in found:
        if case_id == "cachekit_tiered_l1":
            section.rows.append(make_row(found, case_id, "cachekit_msgpack", target=_TIERED_TARGET))
            continue
        if case_id.startswith("pickle_") or case_id in ("cachekit_dataclass", "cachekit_pydantic"):
            section.rows.append(make_row(found, case_id, "cachekit_msgpack"))  # typed rows: see bench/_typed.py
            continue
        target = _TARGETS.get(case_id) if reference == _REFERENCE else None
        also = [_CACHEBOX] if case_id.startswith("cachekit") and _CACHEBOX in found else []
        section.rows.append(make_row(found, case_id, reference, also=also, target=target))
    section.notes.append(
        "Batch-timed (timeit loop, GC off, batches of about 2 ms): no per-call percentiles, a clock read would "
        "cost as much as a hit. Keys: cachetools' methodkey leaves self out, cachebox's make_key hashes it, "
        "cachekit uses the resource name."
    )
    add_instruction_counts(section, list(found), settings)
    _tiered_instructions(section)
    if settings.mode != "quick":
        from ._footprint import add_footprint

        add_footprint(section)
    typed_outcomes(section)
    return section
