"""The process :mod:`._instructions` counts under callgrind: ``python -c ... ROW_ID HITS [ARGS]``.

Kept apart from the counter so that the sections whose rows it runs can import the counter without a circle.
"""

from __future__ import annotations

import sys

__all__ = ["child"]

_WARMUP = 200


def child() -> None:
    """The measured process: ``python -c ... ROW_ID HITS [ARGS]`` runs HITS hits of the row after a warm-up.

    Memory rows call ``repo.get("u1")``; ``async_*`` rows are run by
    :func:`cachekit._tools.bench._async.instruction_child`, ``plugin_*`` rows by
    :func:`cachekit._tools.bench._plugin.instruction_child`, ``hitratio_*`` rows by
    :func:`cachekit._tools.bench._hitratio.instruction_child`.
    """
    row_id, hits = sys.argv[1], int(sys.argv[2])
    if row_id.startswith("async_"):
        from ._async import instruction_child

        instruction_child(row_id, hits, _WARMUP, *sys.argv[3:])
        return
    if row_id.startswith("fresh_"):
        from ._fresh_child import instruction_child as fresh_child

        fresh_child(row_id, hits, _WARMUP)
        return
    if row_id.startswith("hitratio_"):
        from ._hitratio import instruction_child as hitratio_child

        hitratio_child(row_id, hits, _WARMUP, *sys.argv[3:])
        return
    if row_id.startswith("plugin_"):
        from ._plugin import instruction_child as plugin_child

        plugin_child(row_id, hits, _WARMUP, *sys.argv[3:])
        return
    from ._memory import contender

    repo = contender(row_id)
    for _ in range(_WARMUP):  # the method looked up on each call, as user code (and the timed rows) do: its
        repo.get("u1")  # binding is part of a hit (about 1,800 instructions for cachekit's, 300 for a function's)
    for _ in range(hits):
        repo.get("u1")
