"""The one wording of "unknown option" errors, with a "did you mean ...?" suggestion (difflib).

E.g.::

    reject_unknown_options("redis driver", {"comand_timeout": 1}, ("command_timeout", "connect_timeout"))
    # ConfigurationError: unknown redis driver option 'comand_timeout' (did you mean 'command_timeout'?);
    # accepted options: command_timeout, connect_timeout
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .errors import ConfigurationError

__all__ = ["check_flag", "reject_unknown_options", "unknown_options_message"]


def unknown_options_message(owner: str, unknown: Iterable[str], accepted: Iterable[str]) -> str:
    """The message for ``unknown`` options of ``owner`` (``"redis driver"``, ``"Cache"``), with suggestions."""
    names = sorted(str(name) for name in unknown)
    valid = sorted(dict.fromkeys(accepted))
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    noun = "option" if len(names) == 1 else "options"
    return f"unknown {owner} {noun} {', '.join(parts)}; accepted options: {', '.join(valid)}"


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a ``bool``; else a :class:`~cachekit.errors.ConfigurationError` (``"false"`` is truthy,
    so ``bool(value)`` would silently turn it into ``True``)."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False; got a {type(value).__name__}")
    return value


def reject_unknown_options(owner: str, unknown: Iterable[str], accepted: Iterable[str]) -> None:
    """Raise :class:`~cachekit.errors.ConfigurationError` when ``unknown`` is not empty."""
    names = list(unknown)
    if names:
        raise ConfigurationError(unknown_options_message(owner, names, accepted))
