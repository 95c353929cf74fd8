"""``cachekit ping`` and ``cachekit invalidate``: a backend's health, and a write's invalidation by hand.

``ping`` probes the backend once per tier (:func:`cachekit.health.ping_driver`) and prints each tier's latency;
the exit status is 1 when a tier did not answer. ``invalidate`` bumps generations exactly as the application's
writes do (:meth:`cachekit.Cache.invalidate`), so every process stops reading what it names at once; nothing is
scanned or deleted:

- ``--resource users --id u1 [--id u2]``: those items, the resource's aggregates, and every partition the
  resource's stored reads use (found by their key layout, since the command cannot know the declared partitions:
  a write whose records are unknown bumps them whole, as the app's does);
- ``--resource users --partition by_region --value region=eu``: that partition value's reads (without ``--value``:
  every value of the partition);
- ``--resource users --all``: every read of the resource.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import unquote

from ..errors import DriverError, DriverUnavailable
from ..health import ping_driver
from .cli_cache import CacheView, UsageError

__all__ = ["parse_values", "run_invalidate", "run_ping"]


def run_ping(view: CacheView, as_json: bool) -> int:
    """Print each tier's answer (one line each, or JSON); 0 when every tier answered, else 1."""
    health = ping_driver(view.driver)
    if as_json:
        print(json.dumps(health.as_dict(), indent=2))
    else:
        width = max(len(tier.name) for tier in health.tiers)
        for tier in health.tiers:
            state = "ok" if tier.ok else "DOWN"
            line = f"{tier.name:<{width}}  {tier.driver:<10} {state:<4}  {tier.latency * 1000:9.3f} ms"
            print(line + (f"  {tier.error}" if tier.error else ""))
    return 0 if health.ok else 1


def parse_values(values: Sequence[str]) -> dict[str, str]:
    """``["region=eu", "tier=gold"]`` -> ``{"region": "eu", "tier": "gold"}``.

    :raises UsageError: an item without ``=`` or with an empty field name, or a field given twice.
    """
    parsed: dict[str, str] = {}
    for item in values:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--value takes FIELD=VALUE, such as region=eu; got {item!r}")
        if name.strip() in parsed:
            raise UsageError(f"--value gives field {name.strip()!r} twice")
        parsed[name.strip()] = value
    return parsed


def run_invalidate(
    view: CacheView, *, ids: Sequence[str], partition: str | None, values: Sequence[str], whole: bool
) -> int:
    """Bump what the options name (see the module docstring); 1 when the backend did not take the bump."""
    from ..generations import store_for
    from ..scopes import Invalidation

    cache, resource = view.cache, view.resource
    assert cache is not None
    assert resource
    chosen = sum((bool(ids), partition is not None, whole))
    if chosen != 1:
        raise UsageError("say what to invalidate: --id ID (repeatable), --partition NAME [--value FIELD=VALUE], "
                         "or --all (the whole resource); one of them")
    if values and partition is None:
        raise UsageError("--value goes with --partition NAME")
    if not store_for(view.driver).shared:
        raise UsageError(f"a {view.driver.name} cache lives inside one process: invalidate it from the application")
    if whole:
        count, what = cache.invalidate_resource(resource), "every entry"
    elif partition is not None:
        fields = parse_values(values)
        count = cache.invalidate_partition(resource, partition, fields or None)
        shown = ", ".join(f"{k}={v}" for k, v in fields.items())
        what = f"partition {partition!r} ({shown})" if fields else f"every value of partition {partition!r}"
    else:
        try:
            partitions = dict.fromkeys(_stored_partitions(view), ())
        except DriverError as exc:
            raise DriverUnavailable(f"cannot list the partitions of resource {resource!r}, so nothing was "
                                    f"invalidated: {exc}") from exc
        count = cache.invalidate(Invalidation(resource, ids=list(ids), partitions=partitions))
        what = f"{'id' if len(ids) == 1 else 'ids'} {', '.join(map(repr, ids))}"
        if partitions:
            what += f" (and partitions {', '.join(sorted(partitions))})"
    if cache.pending_invalidations:
        raise DriverUnavailable(f"the {view.driver.name} backend did not take the invalidation of {what} of "
                                f"resource {resource!r}; nothing was invalidated: check that it is reachable")
    print(f"Invalidated {what} of resource {resource!r} in namespace {cache.namespace!r} ({count} "
          f"{'scope' if count == 1 else 'scopes'} bumped); every process now misses those reads.")
    return 0


def _stored_partitions(view: CacheView) -> list[str]:
    """The partitions named in the resource's stored keys (``.../partition={p}/...``), current or not."""
    assert view.cache is not None
    assert view.resource
    from ..keys import resource_prefix

    prefix = resource_prefix(view.cache.namespace, view.resource, case_sensitive=view.cache.case_sensitive)
    found = set()
    for key in view.cache.keys(prefix, orphans=True):
        segments = key.rpartition("@")[0].split("/")
        if len(segments) > 2 and segments[2].startswith("partition="):
            found.add(unquote(segments[2][len("partition="):]))
    return sorted(found)
