"""Plant one-line faults in the fast copies of the read path and check that the tests catch each one.

The architecture review (issue 18) planted ten one-line mutants in the copies of "read one key"; four survived
the whole suite. This script keeps that check runnable: each mutant is one textual edit of one line, applied to
a *copy* of the tree (the working tree is never touched), then the tests that could catch it run with ``-x``.
A mutant is *killed* when they fail; the first failing test is reported.

    PYTHONPATH=$PWD python tests/bench/mutants.py            # every mutant
    PYTHONPATH=$PWD python tests/bench/mutants.py R3-miss H1-kwargs   # some of them
    PYTHONPATH=$PWD python tests/bench/mutants.py --list

Exit status 1 when a mutant survives (or no longer applies: the line it edits changed; update its ``old``).
Needs Redis on 127.0.0.1:6379 for the contract tests (as the suite does). About 5 minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READS = ["tests/unit/test_read_paths_differential.py", "tests/unit/test_memory_reader.py",
         "tests/contract/test_reader_contract.py"]  # fmt: skip
CALLS = ["tests/unit/test_call_paths_differential.py", "tests/unit/test_lean_binding.py",
         "tests/unit/test_decorators.py", "tests/unit/test_async_cached.py"]  # fmt: skip
DIFF = "tests/unit/test_read_paths_differential.py"
MEMO_SLOTS = "tests/unit/test_memo_slots.py"
LEAN = "tests/unit/test_lean_binding.py"
TIERS = [f"{DIFF}::test_the_l1_bypass_reads_what_the_generic_tier_walk_reads",
         f"{DIFF}::test_an_observed_cache_reads_what_an_unobserved_one_reads", "tests/unit/test_tiered_driver.py",
         "tests/contract/test_reader_contract.py"]  # fmt: skip
_LRU_MOVE = ("                {move}\n            except KeyError:  # deleted by another thread between the two calls; "
             "the value read is still valid\n                pass\n        return entry[0], entry[1]")
FUSED_L1 = f"{DIFF}::test_the_fused_l1_reader_reads_what_the_generic_body_reads"  # D2, run first for D3 mutants
_L1_MOVE = ("                {move}\n            except KeyError:  # deleted by another thread since the lookup; the "
            "entry read is still valid\n                pass\n        tier.hits")
ASYNC_API = "tests/unit/test_async_api_differential.py"
_MEMO_CHECK = ("        if entry is not None and entry[1] == entry[2].epoch:\n"
               "            # Never a skip_cache call (the slot of one is never stored")
FLIGHTS = ("tests/unit/test_decorators.py", "tests/unit/test_async_single_flight_tiers.py")
FRESH = ("tests/unit/test_freshness_differential.py", "tests/unit/test_freshness.py")
OBSERVED = ["tests/unit/test_read_paths_differential.py", "tests/unit/test_metrics.py", "tests/unit/test_events.py"]


@dataclass(frozen=True)
class Mutant:
    """One fault: in ``path``, the one line containing ``old`` (unique in the file) becomes ``new``."""

    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    # -- the four that survived the review's run ---------------------------------------------------------------
    Mutant("R3-miss", "R3 (async read) forgets to count a miss", "cachekit/cache.py",
           "        if raw is MISSING:  # not found, or expired by its envelope\n            self.misses += 1",
           "        if raw is MISSING:  # not found, or expired by its envelope\n            pass", (*READS,)),
    Mutant("R3-corrupt", "R3 keeps a corrupt entry instead of dropping it", "cachekit/cache.py",
           "await self._adrop(key)  # corrupt", "pass  # corrupt", (*READS,)),
    Mutant("R4-corrupt", "R4 (get_many) keeps a corrupt entry", "cachekit/cache.py",
           "            self._backend_failed(key, exc)\n            self._drop(key)\n            return failed",
           "            self._backend_failed(key, exc)\n            pass\n            return failed", (*READS,)),
    Mutant("A1-keyspace", "aset lets a hand-written key into the decorated reads' key space", "cachekit/cache.py",
           "return await self._astore(self._settable_key(key), value, seconds, None)",
           "return await self._astore(self._full_key(key), value, seconds, None)", (ASYNC_API,)),
    Mutant("A2-refused", "aset_many keeps the old entry an uncacheable value replaces", "cachekit/cache.py",
           "await self._adrop(key)  # as set_many", "pass  # as set_many", (ASYNC_API,)),
    Mutant("F1-wait", "single flight: a follower loads instead of waiting for the leader", "cachekit/_flight.py",
           "            return flight.wait()", "            return alone()", FLIGHTS),
    Mutant("F2-atask", "async single flight: every caller starts a load of its own", "cachekit/_flight.py",
           "        task = self._tasks.get(flight_key) if self.enabled else None",
           "        task = None", FLIGHTS),
    Mutant("F3-recheck", "the async leader loads without reading the key again (issue 23, item 4)",
           "cachekit/cache.py", "            value = await self._aquiet_read(key)\n",
           "            value = MISSING\n", FLIGHTS),
    Mutant("H1-kwargs", "H1 calls a disabled action with its keyword arguments dropped", "cachekit/_binding.py",
           "            if kwargs:  # skip_cache and all: the generic path handles it",
           "            if False:  # skip_cache and all: the generic path handles it", (*CALLS,)),
    # -- planted for issue 18's tests-first step ---------------------------------------------------------------
    Mutant("H2-kwargs", "H2 calls a disabled action with its keyword arguments dropped", "cachekit/_cached_state.py",
           "                return wrapped(*args, **kwargs)\n            if \"skip_cache\" in kwargs:",
           "                return wrapped(*args)\n            if \"skip_cache\" in kwargs:", (*CALLS,)),
    Mutant("H2-skip-false", "H2 treats skip_cache=False as skip_cache=True", "cachekit/_cached_state.py",
           "return self(wrapped, instance, args, kwargs)  # skip_cache=False",
           "return wrapped(*args, **kwargs)  # skip_cache=False", (*CALLS,)),
    Mutant("H3-kwargs", "H3 (async) calls a disabled action with its keyword arguments dropped",
           "cachekit/_cached_state.py",
           "        if self.action in ns.disabled_actions:\n            return await wrapped(*args, **kwargs)",
           "        if self.action in ns.disabled_actions:\n            return await wrapped(*args)", (*CALLS,)),
    Mutant("H3-no-store", "H3 loads a miss without storing it", "cachekit/_cached_state.py",
           "return await ns._aload(key, self.action, functools.partial(wrapped, *args, **kwargs), self.ttl)",
           "return await wrapped(*args, **kwargs)", (*CALLS,)),
    Mutant("R2-hit", "R2 (memory reader) forgets to count a hit", "cachekit/drivers/memory.py",
           "        counts.hits += 1\n        return value\n\n    return read\n\n\ndef _decoding",
           "        pass\n        return value\n\n    return read\n\n\ndef _decoding", (*READS,)),
    Mutant("R2-lru", "R2 skips the LRU move of a hit", "cachekit/drivers/memory.py",
           "                    move(full)", "                    pass", (*READS,)),
    Mutant("R4-miss", "R4 counts a corrupt entry as a miss too (the bug fixed in this step)",
           "cachekit/cache.py", "failed += 1  # counted in errors", "pass  # counted in errors", (*READS,)),
    Mutant("D1-miss", "D1 (tiered L1 bypass) forgets the L1 miss", "cachekit/drivers/tiered.py",
           "                first.misses += 1", "                pass", (*TIERS,)),
    Mutant("D1-idle", "D1 reads L1 even while it is quarantined or its breaker is open",
           "cachekit/drivers/tiered.py", "        if first.idle():", "        if True:", (*TIERS,)),
    Mutant("D2-lru", "D2 (MemoryDriver.get_with_expiry) skips the LRU move (the bug fixed in this step)",
           "cachekit/drivers/memory.py",
           _LRU_MOVE.format(move="self._touch(full)"), _LRU_MOVE.format(move="pass"),
           (*TIERS,)),
    # -- issue 18, read path: Driver.reader() and one observation wrapper -----------------------------------------
    Mutant("G-miss", "the generic reader (Driver.reader) forgets to count a miss", "cachekit/drivers/base.py",
           "        if raw is MISSING:\n            counts.misses += 1", "        if raw is MISSING:\n            pass",
           (*READS,)),
    Mutant("G-expired", "the generic reader serves a blob whose envelope expired as a hit",
           "cachekit/drivers/base.py",
           "            if raw is MISSING:  # expired by its envelope",
           "            if False:  # expired by its envelope",
           (*READS,)),
    Mutant("G-failed", "the failure report keeps a corrupt entry (every reader)", "cachekit/cache.py",
           "found._drop(key)  # unreadable", "pass  # unreadable", (*READS,)),
    Mutant("D1-deadline", "tiered's reader serves a memory tier's kept copy past its envelope deadline",
           "cachekit/drivers/memory.py", "            return MISSING  # expired by its envelope",
           "            return copy(entry[3])  # expired by its envelope",
           ("tests/unit/test_decoded_copies.py", *READS)),
    Mutant("R3-copies", "aget and get_many of a tiered cache decode every memory-tier hit (the reader's copies "
           "not handed to them)", "cachekit/cache.py", "        return decode_at, blobs",
           "        return decode_at, decode_at", ("tests/unit/test_decoded_copies.py", *READS)),
    Mutant("D1-probe", "a reader drops the generation store's probed get", "cachekit/drivers/tiered.py",
           "read = super().reader(counts, failed, decode, decode_at=decoded, get=get)",
           "read = super().reader(counts, failed, decode, decode_at=decoded)",
           ("tests/unit/test_redis_generations.py", *READS)),
    Mutant("OBS-miss", "the observation wrapper counts a miss as a hit", "cachekit/_instrument.py",
           "                counters.misses += 1\n                if miss_listeners:",
           "                counters.hits += 1\n                if miss_listeners:", (*OBSERVED,)),
    Mutant("OBS-tier", "the observation wrapper labels an L1 bypass hit with no tier", "cachekit/_instrument.py",
           "tier = local.tier or (\"\" if value is MISSING else first)", "tier = local.tier", (*OBSERVED,)),
    Mutant("OBS-fused", "observation wraps the generic body, not the driver's reader", "cachekit/_instrument.py",
           "slots[\"_read\"] = self._observed_read(slots[\"_read\"])",
           "slots[\"_read\"] = self._observed_read(cache._reader(type(cache.driver).__base__.reader))",
           (*OBSERVED, "tests/unit/test_memory_reader.py")),
    Mutant("NULL-read", "cachekit_disabled leaves a live cache's reader as it was", "cachekit/testing.py",
           "        cache._install_read()", "        pass", ("tests/unit/test_testing_plugin.py",)),
    Mutant("VIEW-trust", "the local generations are used while the store is not trusted",
           "cachekit/generations/view.py", "            if value is None and trusted:\n                value = known",
           "            if value is None:\n                value = known", ("tests/unit/test_generations.py",
           "tests/unit/test_redis_generations.py", "tests/unit/test_generation_notifications.py",
           "tests/unit/test_async_hung_redis.py")),
    Mutant("GEN-copies", "a view copies the generations of its own bumps of an in-process store (issue 22)",
           "cachekit/generations/view.py", "        if self._reads_in_process:\n            return  # nothing is",
           "        if False:\n            return  # nothing is", ("tests/unit/test_generation_bounds.py",)),
    Mutant("GEN-local", "a view of an in-process store renders through the store's fetch path (issue 22)",
           "cachekit/generations/view.py", "        if self._reads_in_process:\n            read = self.store",
           "        if False:\n            read = self.store", ("tests/unit/test_generation_bounds.py",)),
    Mutant("PR1-retrier", "a view with pending bumps starts no background retrier (issue 23: they waited for a write "
           "past the retry interval and the breaker's cool-down)", "cachekit/generations/view.py",
           "            if self._retrier is None and not self._closed:", "            if False:",
           ("tests/unit/test_generations.py",)),
    Mutant("PR2-expedite", "expedite() leaves the breaker open until its cool-down", "cachekit/breaker.py",
           "            self._state, self._expedited = HALF_OPEN, True", "            return",
           ("tests/unit/test_breaker.py",)),
    Mutant("TLFU-tie", "a window candidate one access ahead displaces probation's least recent key (issue 22)",
           "cachekit/drivers/_tinylfu.py", "> self.sketch.frequency(incumbent) + 1:",
           "> self.sketch.frequency(incumbent):", ("tests/unit/test_tinylfu.py",)),
    Mutant("R5-error", "the observed read-failure hook forgets to count the error", "cachekit/_instrument.py",
           "            counters.errors += 1", "            pass", (*OBSERVED,)),
    Mutant("FR1-error", "an async read whose load fails raises instead of serving stale_if_error's value",
           "cachekit/_freshness.py", "            return await self._aload(key, action, fresh, loader, ttl)\n"
           "        except Exception as exc:\n            return self._served_on_error(",
           "            return await self._aload(key, action, fresh, loader, ttl)\n"
           "        except Exception as exc:\n            raise\n            return self._served_on_error(", FRESH),
    Mutant("FR2-count", "an async stale read does not count the refresh it starts", "cachekit/_freshness.py",
           "        task.add_done_callback(self.tasks.discard)\n"
           "        self.counter(resource, action).refreshes_started += 1",
           "        task.add_done_callback(self.tasks.discard)\n        pass", FRESH),
    # -- issue 18, the two hit bodies held to each other; the helpers written once -------------------------------
    Mutant("H1-epoch", "H1 serves a memo slot without checking its epoch (a write never reaches it)",
           "cachekit/_binding.py", _MEMO_CHECK, _MEMO_CHECK.replace(" and entry[1] == entry[2].epoch", ""),
           (*CALLS,)),
    Mutant("H1-rest", "H1 keys a call by its first argument alone, whatever follows it", "cachekit/_binding.py",
           "if not kwargs and not rest and (type(first) is str", "if not kwargs and (type(first) is str", (*CALLS,)),
    Mutant("H1-name", "H1 keys a miss by a name that is not a non-empty string (the hit path checks it only then)",
           "cachekit/_binding.py", "        if type(name) is not str or not name:  # an empty name, another type",
           "        if False:  # an empty name, another type", (LEAN,)),
    Mutant("H-disabled-memo", "a key rendered for an action the namespace disables is kept in the memo (the hit "
           "paths then serve it)", "cachekit/_cached_state.py",
           "        if self.action not in ns.disabled_actions:  # the hit paths skip the check for a slot they find",
           "        if True:  # the hit paths skip the check for a slot they find", (LEAN,)),
    Mutant("H1-noarg", "H1 passes its no-argument marker to a call without positional arguments",
           "cachekit/_binding.py", "return () if first is _NO_ARGUMENT else (first, *rest)", "return (first, *rest)",
           (*CALLS,)),
    Mutant("H2-epoch", "H2 serves a memo slot without checking its epoch", "cachekit/_cached_state.py",
           _MEMO_CHECK, _MEMO_CHECK.replace(" and entry[1] == entry[2].epoch", ""), (*CALLS,)),
    Mutant("H2-kwslot", "H2 gives every keyword-only call of a read one memo slot", "cachekit/_cached_state.py",
           "slot = pack(kwargs)  # its size", "slot = b''  # its size", (*CALLS, MEMO_SLOTS)),
    # -- issue 22, item 3: a keyword-only call's packed bytes alone, in the memo of its own state ----------------
    Mutant("H2-packed-ns", "a state whose namespace comes with each call keys its packed memo by bytes alone",
           "cachekit/_cached_state.py", "{} if namespace is not None and resource else None",
           "{} if resource else None", (MEMO_SLOTS, *CALLS)),
    Mutant("H2-packed-limit", "a keyword call packing past PACKED_LIMIT is kept in the state's packed memo",
           "cachekit/_memo.py", "        return len(slot) <= PACKED_LIMIT", "        return True",
           (MEMO_SLOTS, *CALLS)),
    Mutant("HELP-unbound", "the helpers through the class drop the instance from the uncached call",
           "cachekit/_binding.py", "call = functools.partial(self.__wrapped__, instance) if unbound else",
           "call = self.__wrapped__ if unbound else", (*CALLS,)),
    Mutant("HELP-classmethod", "the helpers of a classmethod looked up on its class call it unbound",
           "cachekit/_binding.py", "return state, owner, args, self._self_parent.__wrapped__.__get__(None, owner)",
           "return state, owner, args, self._self_parent.__wrapped__.__func__", (*CALLS,)),
    Mutant("HELP-arefresh", "refresh of an async def stores the coroutine, not its result",
           "cachekit/_cached_state.py", "        if state.is_async:  # the coroutine's result",
           "        if False:  # the coroutine's result", (*CALLS,)),
    Mutant("HELP-stacked", "uncached of a stacked cache reads the inner cache", "cachekit/_cached_state.py",
           "return call(*args, **skip_inner(self.__wrapped__, kwargs))", "return call(*args, **kwargs)", (*CALLS,)),
    # -- issue 22: the tiered driver's fused L1 reader (memory.tier_reader) ------------------------------------
    Mutant("D3-hit", "the fused L1 reader forgets the tier's hit", "cachekit/drivers/memory.py",
           "        tier.hits += 1", "        pass", (FUSED_L1, *READS)),
    Mutant("D3-idle", "the fused L1 reader reads L1 while it is quarantined or its breaker is open",
           "cachekit/drivers/memory.py",
           "        if tier._pending_prefixes or tier._pending_keys or tier.breaker._state != CLOSED:",
           "        if False:", (FUSED_L1, *READS)),
    Mutant("D3-envelope", "the fused L1 reader serves a kept copy past its envelope deadline",
           "cachekit/drivers/memory.py",
           "deadline <= clock():\n                return generic(key)  # expired by its envelope",
           "False:\n                return generic(key)  # expired by its envelope", (FUSED_L1, *READS)),
    Mutant("D3-copy", "the fused L1 reader hands out the kept value itself, not a copy", "cachekit/drivers/memory.py",
           "        value = entry[2](entry[3])", "        value = entry[3]", (FUSED_L1, *READS)),
    Mutant("D3-lru", "the fused L1 reader skips the LRU move of a hit", "cachekit/drivers/memory.py",
           _L1_MOVE.format(move="move(full)"), _L1_MOVE.format(move="pass"), (FUSED_L1, *READS)),
    # -- issue 22: an entry keeps a decoded value from its second hit (one-hit entries hold none) --------------
    Mutant("K1-first", "an entry's first hit keeps the decoded value (one-off keys each hold a copy)",
           "cachekit/drivers/memory.py", "    if len(entry) == 3:  # the first hit", "    if False:  # the first hit",
           ("tests/unit/test_decoded_copies.py", *READS)),
    Mutant("K1-mark", "the first hit's \"hit once\" mark puts back an entry written since its lookup",
           "cachekit/drivers/memory.py",
           "            if self._data.get(full) is entry:\n"
           "                self._data[full] = (entry[0], entry[1], None, None)",
           "            if True:\n                self._data[full] = (entry[0], entry[1], None, None)",
           ("tests/unit/test_decoded_copies.py", *READS)),
    Mutant("R2-copy-hit", "the memory reader's kept-copy branch forgets to count its hit", "cachekit/drivers/memory.py",
           "                value = copy(entry[3])\n                counts.hits += 1",
           "                value = copy(entry[3])\n                pass", (*READS,)),
    Mutant("R2-objects-hit", "the memory reader's objects-mode branch forgets to count its hit",
           "cachekit/drivers/memory.py", "                counts.hits += 1\n                return entry[0]",
           "                pass\n                return entry[0]", (*READS,)),
    Mutant("C1-unrolled", "a dict copier with two containers to copy shares the second",
           "cachekit/codecs/_copies.py",
           "            copy[key2] = plan2(value[key2])\n            return copy",
           "            return copy", ("tests/unit/test_decoded_copies.py", *READS)),
    # -- issue 18, driver capabilities instead of class checks ---------------------------------------------------
    Mutant("CAP-inherit", "a memory driver subclass inherits holds_blobs_in_process (its get may differ)",
           "cachekit/drivers/base.py", "        if \"holds_blobs_in_process\" not in cls.__dict__:",
           "        if False:", ("tests/unit/test_decoded_copies.py", *READS)),
    Mutant("CAP-decoder", "plain memory aget/get_many decode every hit (no blob_decoder)", "cachekit/drivers/memory.py",
           "        return tier_decoder(self, decode, deadline_of, clock or self._clock)", "        return decode_at",
           ("tests/unit/test_decoded_copies.py", *READS)),
]  # fmt: skip


def plant(tree: Path, mutant: Mutant) -> None:
    """Edit the copy; raise when ``old`` is not exactly once in the file (the mutant no longer applies)."""
    path = tree / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise LookupError(f"{mutant.name}: {mutant.old!r} found {count} times in {mutant.path}")
    path.write_text(text.replace(mutant.old, mutant.new))


def copy_tree() -> Path:
    """A copy of the package and the tests (the working tree is never edited)."""
    tree = Path(tempfile.mkdtemp(prefix="cachekit-mutants-"))
    for name in ("cachekit", "tests"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.cfg"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, tree / name)
    return tree


def run(mutant: Mutant) -> tuple[str, str, float]:
    """``(verdict, killing test or reason, seconds)`` for one mutant."""
    tree = copy_tree()
    start = time.monotonic()
    try:
        try:
            plant(tree, mutant)
        except LookupError as exc:
            return "STALE", str(exc), 0.0
        command = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header", *mutant.tests]
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=1200, check=False)
        found = re.search(r"^FAILED (\S+)", done.stdout, re.MULTILINE)
        if done.returncode == 0:
            return "SURVIVED", "", time.monotonic() - start
        return "killed", found.group(1) if found else f"pytest exit {done.returncode}", time.monotonic() - start
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    options = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not options.names or m.name in options.names]
    if options.list:
        for mutant in MUTANTS:
            print(f"{mutant.name:14} {mutant.what}  ({mutant.path})")
        return 0
    survived = 0
    print("| mutant | what | result | killed by | s |\n| --- | --- | --- | --- | ---: |")
    for mutant in chosen:
        verdict, detail, seconds = run(mutant)
        survived += verdict != "killed"
        print(f"| {mutant.name} | {mutant.what} | {verdict} | {detail} | {seconds:.0f} |", flush=True)
    print(f"\n{len(chosen) - survived} of {len(chosen)} mutants killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
