"""Cache keys: :class:`KeySpec`, stable parameter hashing and the key-resolver registry.

Keys read as paths::

    {namespace}/resource={name}[/partition={p}/{field}={value}...]/action={action}/{params_hash}

Item actions (``get``, ``exists``, ...) hash the item id on its own and any other argument separately
(``.../action=get/{id_hash}[/{extra_hash}]``). :func:`format_key` gives this *base* key; the namespace appends
the generations of the scopes the read depends on (``...@{g1}.{g2}.{g3}``, see :mod:`cachekit.scopes`), so a
write invalidates by bumping generations instead of finding and deleting keys. The path shape still makes
``{namespace}/resource={name}/`` the prefix of every entry of a resource, for listing and physical clears.

Hashes are blake2b (8 bytes, 16 hex characters) of a canonical msgpack encoding, stable across processes,
machines and Python versions (never ``hash()``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import msgpack

from .errors import ConfigurationError, KeyResolverError, SerializationError

__all__ = [
    "AGGREGATE_ACTIONS",
    "ITEM_ACTIONS",
    "KeyResolver",
    "KeySpec",
    "format_key",
    "coarse_text",
    "get_key_resolver",
    "id_segment",
    "item_actions",
    "partition_prefix",
    "register_key_resolver",
    "registered_actions",
    "resource_prefix",
    "segment",
    "stable_hash",
]

PARTITION_PARAMS = ("partition", "partition_values")


@dataclass(frozen=True, slots=True)
class KeySpec:
    """Everything that identifies one cached read.

    :param resource: the resource name (``"users"``).
    :param action: the read action (``"get"``, ``"count"`` ...).
    :param params: the arguments that can change the result (hashed into the key).
    :param partition: partition name, when the read is scoped to one partition.
    :param partition_values: that partition's field values (``{"region": "eu"}``).
    :param item_id: for item actions, the id; hashed on its own so writes can clear it precisely.
    """

    resource: str
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    partition: str | None = None
    partition_values: Mapping[str, Any] | None = None
    item_id: Any = None
    has_item: bool = False


#: ``resolver(resource, action, params) -> KeySpec``; ``params`` are the call's non-default arguments by name.
KeyResolver = Callable[[str, str, Mapping[str, Any]], KeySpec]


# -- canonical hashing ------------------------------------------------------------------------------------------


_TAG_MAP, _TAG_SET, _TAG_BIG_INT, _TAG_TEMPORAL, _TAG_SCALAR, _TAG_CUSTOM = range(1, 7)


def _tagged(tag: int, payload: Any) -> Any:
    # msgpack extension types cannot be spelled by plain data, so a tagged value never equals a list or string.
    return msgpack.ExtType(tag, _sort_key(payload))


def _canonical(value: Any, fold: bool) -> Any:
    """A msgpack-able, order-independent form of ``value``; types that could collide are tagged."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() if fold else value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else _tagged(_TAG_BIG_INT, str(value))
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Mapping):
        items = [(_canonical(k, fold), _canonical(v, fold)) for k, v in value.items()]
        return _tagged(_TAG_MAP, sorted(items, key=_sort_key))
    if isinstance(value, (list, tuple)):
        return [_canonical(v, fold) for v in value]
    if isinstance(value, (set, frozenset)):
        return _tagged(_TAG_SET, sorted((_canonical(v, fold) for v in value), key=_sort_key))
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return _tagged(_TAG_TEMPORAL, [type(value).__name__, value.isoformat()])
    if isinstance(value, _dt.timedelta):
        return _tagged(_TAG_TEMPORAL, ["timedelta", value.days, value.seconds, value.microseconds])
    if isinstance(value, (Decimal, uuid.UUID)):
        return _tagged(_TAG_SCALAR, [type(value).__name__, str(value)])
    custom = getattr(value, "__cache_key__", None)
    if callable(custom):
        return _tagged(_TAG_CUSTOM, [type(value).__qualname__, _canonical(custom(), fold)])
    raise SerializationError(
        f"cannot build a cache key from a {type(value).__qualname__}; pass plain data, give the class a "
        "__cache_key__() method returning plain data, or register a key resolver for this action"
    )


def _sort_key(item: Any) -> bytes:
    return bytes(msgpack.packb(item, use_bin_type=True))


def stable_hash(params: Any, *, case_sensitive: bool = True) -> str:
    """16 hex characters identifying ``params``, equal for equal data in any process or Python version.

    >>> stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1.0})
    True
    """
    encoded = msgpack.packb(_canonical(params, not case_sensitive), use_bin_type=True)
    return hashlib.blake2b(encoded, digest_size=8).hexdigest()


# -- key formatting ---------------------------------------------------------------------------------------------

_SAFE = "=-_.~:@+,"


def segment(value: Any, fold: bool = False) -> str:
    """``value`` as one path segment of a key: URL-quoted (no ``/``), lower-cased when ``fold``."""
    text = value if isinstance(value, str) else str(value)
    return quote(text.lower() if fold else text, safe=_SAFE)




def resource_prefix(namespace: str, resource: str, *, case_sensitive: bool = True) -> str:
    """``{namespace}/resource={name}/``: the prefix of every key of one resource."""
    return f"{namespace}/resource={segment(resource, not case_sensitive)}/"


def coarse_text(value: Any) -> str:
    """A value as invalidation scopes see it: numbers equal in Python, and their decimal spelling, are one text.

    ``1``, ``1.0``, ``True`` and ``"1"`` are all ``"1"``; other values are their compact, sorted JSON. Keys stay
    type-aware through their hashes; scopes use this, so a write under one spelling invalidates the others.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return str(int(value))
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _value_segment(value: Any, fold: bool) -> str:
    # The scope's spelling (see coarse_text); the key's final hash carries the values with their types.
    return segment(coarse_text(value), fold)


#: The id segment of an item key read without an id (``get(email=...)``): such reads depend on the aggregates.
NO_ID = "-"


def id_segment(item_id: Any, *, case_sensitive: bool = True) -> str:
    """The id segment of an item key: the hash of the id's :func:`coarse_text`, or ``-`` for no id."""
    if item_id is None:
        return NO_ID
    return stable_hash(coarse_text(item_id), case_sensitive=case_sensitive)


def _partition_path(partition: str, values: Mapping[str, Any], fold: bool) -> str:
    fields = "/".join(f"{segment(k, fold)}={_value_segment(values[k], fold)}" for k in sorted(values))
    return f"partition={segment(partition, fold)}/{fields}"


def partition_prefix(
    namespace: str,
    resource: str,
    partition: str,
    partition_values: Mapping[str, Any] | None = None,
    *,
    case_sensitive: bool = True,
) -> str:
    """The prefix of a partition's entries (of one value combination, or of all when ``partition_values`` is None).

    E.g. ``partition_prefix("ns", "users", "by_region", {"region": "eu"})`` is
    ``"ns/resource=users/partition=by_region/region=eu/"``.
    """
    fold = not case_sensitive
    base = resource_prefix(namespace, resource, case_sensitive=case_sensitive)
    if not partition_values:
        return f"{base}partition={segment(partition, fold)}/"
    return f"{base}{_partition_path(partition, partition_values, fold)}/"


def format_key(namespace: str, spec: KeySpec, *, case_sensitive: bool = True) -> str:
    """The key string of ``spec`` under ``namespace``; see the module docstring for the layout."""
    fold = not case_sensitive
    parts = [resource_prefix(namespace, spec.resource, case_sensitive=case_sensitive)]
    if spec.has_item:
        # An item entry lives under its id, wherever the item sits: a write to another item of the same
        # partition leaves it alone, and a write to this id clears it in every partition.
        parts.append(f"action={segment(spec.action, fold)}/")
        parts.append(id_segment(spec.item_id, case_sensitive=case_sensitive))
        extra = dict(spec.params)
        if spec.item_id is not None and not isinstance(spec.item_id, str):
            extra["~id"] = spec.item_id  # get(1) and get("1") are two entries of one item scope
        if spec.partition and spec.partition_values:
            extra.update(partition=spec.partition, partition_values=dict(spec.partition_values))
        if extra:
            parts.append("/" + stable_hash(extra, case_sensitive=case_sensitive))
        return "".join(parts)
    params: Any = spec.params
    if spec.partition and spec.partition_values:
        parts.append(_partition_path(spec.partition, spec.partition_values, fold) + "/")
        params = [spec.params, dict(spec.partition_values)]  # the path is for people; the hash tells 1 from "1"
    parts.append(f"action={segment(spec.action, fold)}/")
    parts.append(stable_hash(params, case_sensitive=case_sensitive))
    return "".join(parts)


# -- resolvers --------------------------------------------------------------------------------------------------


def _split_partition(params: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, Mapping[str, Any] | None]:
    """Move a complete partition scope (a name and its values) out of ``params``; anything less stays hashed."""
    partition = params.get("partition")
    values = params.get("partition_values")
    if not (isinstance(partition, str) and partition and isinstance(values, Mapping) and values):
        return dict(params), None, None
    rest = {k: v for k, v in params.items() if k not in PARTITION_PARAMS}
    return rest, partition, values


def aggregate_resolver(resource: str, action: str, params: Mapping[str, Any]) -> KeySpec:
    """Resolver for reads over many items (``list``, ``count``, ``page``, ``query`` ...): every argument counts."""
    rest, partition, values = _split_partition(params)
    return KeySpec(resource, action, rest, partition, values)


def item_resolver(resource: str, action: str, params: Mapping[str, Any]) -> KeySpec:
    """Resolver for one-item reads (``get``, ``exists``): the id is the argument named ``id``, never a position.

    (``@cached(action="get", id_param="email")`` passes another parameter under that name.) A call without an
    id (``get(email=...)`` where ``id`` defaults to None) is keyed by its other arguments and depends on the
    resource's aggregates, so any write clears it.
    """
    rest, partition, values = _split_partition(params)
    item_id = rest.pop("id", None)
    return KeySpec(resource, action, rest, partition, values, item_id=item_id, has_item=True)


_RESOLVERS: dict[str, KeyResolver] = {}
_ITEM_ACTIONS: set[str] = set()
_IN_USE: set[str] = set()

#: Built-in one-item actions: a write to an id clears their entries for that id.
ITEM_ACTIONS = ("exists", "get", "get_from_partition")
#: Built-in actions over many items: every write to the resource clears them (in the partitions it touches).
AGGREGATE_ACTIONS = ("count", "get_all", "get_many", "list", "list_ids", "page", "query")


def register_key_resolver(action: str, resolver: KeyResolver | None = None, *, item: bool = False) -> None:
    """Register ``resolver`` for ``action`` (replacing a previous one); ``None`` uses the built-in style.

    ``item=True`` marks a one-item action, whose entries a write clears by id; otherwise every write to the
    resource clears the action's entries (within the partitions it touches).

    E.g.::

        register_key_resolver("search")                      # every argument counts
        register_key_resolver("profile", item=True)          # keyed by the argument named id
    """
    if not isinstance(action, str) or not action.strip() or "/" in action:
        raise ConfigurationError(f"action must be a non-empty string without '/'; got {action!r}")
    if resolver is not None and not callable(resolver):
        raise ConfigurationError(f"resolver must be callable(resource, action, params) -> KeySpec; got {resolver!r}")
    if action in _IN_USE:
        raise ConfigurationError(
            f"action {action!r} is already used by a @cached read; register key resolvers before decorating, "
            "so reads and the invalidation of writes agree on its keys"
        )
    _RESOLVERS[action] = resolver or (item_resolver if item else aggregate_resolver)
    if item:
        _ITEM_ACTIONS.add(action)
    else:
        _ITEM_ACTIONS.discard(action)


def mark_in_use(action: str) -> None:
    """Record that a decorated read uses ``action``; its resolver can no longer be replaced."""
    _IN_USE.add(action)


def get_key_resolver(action: str) -> KeyResolver:
    """The resolver registered for ``action``.

    :raises KeyResolverError: nothing is registered; the message lists the known actions.
    """
    try:
        return _RESOLVERS[action]
    except KeyError:
        raise KeyResolverError(
            f"no key resolver for action {action!r}; known actions: {registered_actions()}. "
            "Register one with cachekit.register_key_resolver()"
        ) from None


def registered_actions() -> list[str]:
    """Every action with a resolver, sorted."""
    return sorted(_RESOLVERS)


def item_actions() -> frozenset[str]:
    """The actions registered as one-item reads."""
    return frozenset(_ITEM_ACTIONS)


for _action in ITEM_ACTIONS:
    register_key_resolver(_action, item=True)
for _action in AGGREGATE_ACTIONS:
    register_key_resolver(_action)
