"""``cachekit stats --watch``: a live view of a cache's stats, refreshed every ``--interval`` seconds.

The stats are those ``cachekit stats`` prints (:func:`cachekit._tools.cli_cache.stats_of`), read again each refresh
from the backend another process fills (Redis, filesystem, S3), with the change per second of every number
that moved. ``--iterations N`` stops after N refreshes (scripts, tests); otherwise Ctrl-C stops it. With
``--json`` each refresh prints one JSON object on its own line instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .cli_cache import CacheView, UsageError, stats_of

__all__ = ["check_watch_options", "flatten", "refresh_loop", "run_watch"]

State = TypeVar("State")


def flatten(info: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"tiers": [{"hits": 1}]}`` -> ``{"tiers.0.hits": 1}``: one row per leaf."""
    rows: dict[str, Any] = {}
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.update(flatten(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
            for index, item in enumerate(value):
                rows.update(flatten(item, f"{name}.{index}."))
        else:
            rows[name] = value
    return rows


def check_watch_options(interval: float, iterations: int | None) -> None:
    """Refuse an ``--interval`` that is not > 0 and ``--iterations`` below 1 (before connecting)."""
    if not interval > 0:
        raise UsageError(f"--interval must be a number of seconds > 0; got {interval!r}")
    if iterations is not None and iterations < 1:
        raise UsageError(f"--iterations must be >= 1; got {iterations!r}")


def _rates(now: Mapping[str, Any], before: Mapping[str, Any] | None, seconds: float) -> dict[str, float]:
    if before is None or seconds <= 0:
        return {}
    rates = {}
    for name, value in now.items():
        old = before.get(name)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, old))
        if numbers and value != old:
            rates[name] = (value - old) / seconds
    return rates


def _table(title: str, rows: Mapping[str, Any], rates: Mapping[str, float]) -> Any:
    from rich.table import Table

    table = Table(title=title, caption="Ctrl-C to stop")
    table.add_column("stat")
    table.add_column("value", overflow="fold")
    table.add_column("per second", justify="right")
    for name, value in rows.items():
        rate = rates.get(name)
        table.add_row(name, json.dumps(value, default=str) if isinstance(value, list) else str(value),
                      "" if rate is None else f"{rate:+.1f}")
    return table


def refresh_loop(
    refresh: Callable[[State | None, float], tuple[State, Any]],
    *,
    command: str,
    as_json: bool,
    interval: float,
    iterations: int | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> int:
    """The ``--watch`` loop of every command that has one: ``refresh`` every ``interval`` seconds, ``iterations``
    times (``None``: until Ctrl-C).

    ``refresh(state, seconds)`` gets the state it returned the previous time (``None`` the first time) and the
    seconds since, and returns its new state and a rich renderable, which a ``Live`` view redraws in place. With
    ``as_json`` it prints its own line and what it returns to draw is ignored.
    """
    state: State | None = None
    then, done = clock(), 0
    live: Any = None
    try:
        if not as_json:
            try:
                from rich.live import Live
            except ImportError as exc:
                raise UsageError(f"{command} needs rich: pip install 'cachekit-orm[cli]'") from exc
            live = Live(auto_refresh=False)
            live.start()
        while iterations is None or done < iterations:
            if done:
                sleep(interval)
            now = clock()
            state, drawing = refresh(state, now - then)
            if live is not None:
                live.update(drawing, refresh=True)
            then, done = now, done + 1
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
    return 0


def run_watch(
    view: CacheView,
    *,
    interval: float = 1.0,
    iterations: int | None = None,
    as_json: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show :func:`stats_of` every ``interval`` seconds, ``iterations`` times (``None``: until Ctrl-C)."""
    check_watch_options(interval, iterations)

    def refresh(before: dict[str, Any] | None, seconds: float) -> tuple[dict[str, Any], Any]:
        info = stats_of(view)
        rows = flatten(info)
        rates = _rates(rows, before, seconds)
        if as_json:
            print(json.dumps({"stats": info, "per_second": rates}, sort_keys=True, default=str), flush=True)
            return rows, None
        return rows, _table(f"{info['driver']} cache {view.where}", rows, rates)

    return refresh_loop(refresh, command="cachekit stats --watch", as_json=as_json, interval=interval,
                        iterations=iterations, clock=clock, sleep=sleep)
