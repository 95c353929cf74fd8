"""Per-action method policies: whether an action is cached, for how long, and when a result is stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._freshness import FIELDS as FRESHNESS_FIELDS
from ._freshness import Freshness, check_freshness
from ._options import unknown_options_message
from ._types import DEFAULT, normalize_ttl
from .errors import ConfigurationError
from .keys import registered_actions

__all__ = ["MethodPolicy", "parse_method_policies"]

_FIELDS = ("enabled", "ttl", "max_payload_bytes", "min_hits_before_store", "none_ttl", *FRESHNESS_FIELDS)


@dataclass(frozen=True, slots=True)
class MethodPolicy:
    """How one action is cached.

    :param enabled: ``False`` calls straight through, no cache.
    :param ttl: seconds (or ``timedelta``; ``None``: no expiry); ``DEFAULT`` uses the namespace's TTL.
    :param max_payload_bytes: results whose encoded size exceeds this are returned and not stored.
    :param min_hits_before_store: store a result on the N-th miss of its key (1: the first). Counters are bounded.
    :param none_ttl: TTL for a ``None`` result (negative caching); ``DEFAULT`` uses ``ttl``; ``0`` never stores it.
    :param stale_while_revalidate: seconds after ``ttl`` during which a read returns the expired value at once
        while one background refresh reloads it (:mod:`cachekit._freshness`).
    :param stale_if_error: seconds after ``ttl`` during which a failing source returns the expired value.
    :param early_refresh: refresh hot entries before they expire (XFetch), ``early_refresh_beta`` its beta.
    """

    enabled: bool = True
    ttl: Any = DEFAULT
    max_payload_bytes: int | None = None
    min_hits_before_store: int = 1
    none_ttl: Any = DEFAULT
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    early_refresh: bool = False
    early_refresh_beta: float = 1.0

    def freshness(self, action: str = "?") -> Freshness | None:
        """The action's freshness policies, ``None`` when all are off; checked (``ConfigurationError``)."""
        return check_freshness(f"method_policies[{action!r}]", {f: getattr(self, f) for f in FRESHNESS_FIELDS})

    @classmethod
    def parse(cls, action: str, option: object) -> MethodPolicy:
        """Build a policy from ``True``/``False``, a dict of the fields above, or a policy."""
        if isinstance(option, MethodPolicy):
            return option
        if isinstance(option, bool):
            return cls(enabled=option)
        if not isinstance(option, Mapping):
            raise ConfigurationError(
                f"method_policies[{action!r}] must be True, False or a dict with keys {list(_FIELDS)}; got {option!r}"
            )
        unknown = sorted(set(option) - set(_FIELDS))
        if unknown:
            raise ConfigurationError(
                f"method_policies[{action!r}] has unknown keys {unknown}; the keys are {list(_FIELDS)}"
            )
        return cls(
            enabled=_check_bool(action, "enabled", option.get("enabled", True)),
            ttl=_ttl(action, "ttl", option.get("ttl", DEFAULT)),
            max_payload_bytes=_positive_int(action, "max_payload_bytes", option.get("max_payload_bytes"), True),
            min_hits_before_store=_positive_int(
                action, "min_hits_before_store", option.get("min_hits_before_store", 1)
            ),
            none_ttl=_ttl(action, "none_ttl", option.get("none_ttl", DEFAULT)),
            **_freshness_options(action, option),
        )


def parse_method_policies(options: Mapping[str, object] | None) -> dict[str, MethodPolicy]:
    """Validate a ``method_policies`` mapping (action -> option)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"method_policies must be a dict of action -> policy; got {options!r}")
    known = registered_actions()
    unknown = [action for action in options if not isinstance(action, str) or action not in known]
    if unknown:  # a typo ("gett") would silently leave the real action's policy at its default
        raise ConfigurationError(
            unknown_options_message("method_policies", [str(action) for action in unknown], known).replace(
                "option", "action"
            ) + ". Register a custom action's key resolver (cachekit.register_key_resolver) before the Cache"
        )
    return {action: MethodPolicy.parse(action, option) for action, option in options.items()}


def _freshness_options(action: str, option: Mapping[str, Any]) -> dict[str, Any]:
    """The freshness fields of ``option``, checked, in the form the policy keeps them."""
    fresh = check_freshness(f"method_policies[{action!r}]", option)
    if fresh is None:
        return {}
    return {"stale_while_revalidate": fresh.stale_while_revalidate, "stale_if_error": fresh.stale_if_error,
            "early_refresh": fresh.early_refresh, "early_refresh_beta": fresh.beta}


def _check_bool(action: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"method_policies[{action!r}][{name!r}] must be a bool; got {value!r}")
    return value


def _ttl(action: str, name: str, value: object) -> Any:
    where = f"method_policies[{action!r}][{name!r}]"
    return DEFAULT if value is DEFAULT else normalize_ttl(value, what=where)


def _positive_int(action: str, name: str, value: object, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        where = f"method_policies[{action!r}][{name!r}]"
        raise ConfigurationError(f"{where} must be a whole number >= 1; got {value!r}")
    return value
