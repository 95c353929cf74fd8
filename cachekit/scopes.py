"""Invalidation scopes: what a read depends on and what a write bumps.

Every cached read depends on a few *scopes*, and every scope has a generation number kept by the backend
(:mod:`cachekit.generations`). A read's key ends with the generations of its scopes, so a write invalidates by
bumping the generations of the scopes it touches: O(scopes touched), nothing scanned or deleted. Entries
under old generations are unreachable and age out by TTL and eviction.

Scopes of resource ``users`` in one namespace (names are the key's URL-quoted segments)::

    *                              the whole namespace               (Cache.clear())
    users                          the resource                      (clear_all, invalidate_resource)
    users/agg                      its unpartitioned aggregates      (every write)
    users/p/by_region              every value of one partition      (a write whose records are not known)
    users/p/by_region/{hash}       one value combination of it       (a write of a record in that partition)
    users/item/{hash}              one item                          (a write of that id)

A read depends on the namespace and its resource, plus:

* an item read (``get(id)``): its item;
* an aggregate (``list``, ``count`` ...): the unpartitioned aggregates;
* an aggregate scoped to a partition the resource *declares* (``partitions = {"by_region": ["region"]}``),
  with a value for each of its fields: that partition and that value combination. Any other partition
  arguments (an undeclared name, some fields only) are hashed like other arguments and the read depends on the
  unpartitioned aggregates, which every write bumps: such a read is never left stale.

Scope hashes are deliberately coarser than key hashes: ``1``, ``1.0``, ``True`` and ``"1"`` name one scope
(whatever the store's idea of equality, a write under one spelling bumps reads made with another), while
entry keys stay type-aware, so ``count(region=1)`` and ``count(region="1")`` are two entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .errors import ConfigurationError
from .keys import NO_ID, KeySpec, coarse_text, id_segment, item_actions, segment, stable_hash

__all__ = [
    "NAMESPACE_SCOPE",
    "Invalidation",
    "declared_partition",
    "invalidation_scopes",
    "key_scopes",
    "partition_scopes",
    "read_scopes",
    "resource_of",
    "resource_scope",
]

#: The scope every read of a namespace depends on: bumping it invalidates the whole namespace.
NAMESPACE_SCOPE = "*"

Partitions = Mapping[str, Sequence[str]]


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What one write changed, from which :func:`invalidation_scopes` derives the scopes to bump.

    :param resource: the resource written to.
    :param ids: ids of the items written.
    :param records: the old and new records, as far as known; their partition values pick the partition
        scopes to bump. Only partitions whose fields all appear in every record can be bumped precisely.
    :param partitions: the resource's partitions, ``{"by_region": ["region"]}``.
    :param records_complete: ``True`` when ``records`` hold both the before and after state of every written item,
        so partitions can be bumped precisely; otherwise every value of every partition is bumped.
    :param whole: invalidate everything of the resource (``delete_all``, an unknown write).
    """

    resource: str
    ids: Sequence[Any] = ()
    records: Sequence[Mapping[str, Any]] = ()
    partitions: Partitions = field(default_factory=dict)
    records_complete: bool = False
    whole: bool = False


def resource_scope(resource: str, fold: bool = False) -> str:
    """The scope of ``resource`` (its key segment), refused when reserved *after* quoting and case folding.

    Scope names share the generation stores' key space with their own records (``~epoch``), so a resource whose
    segment starts with ``~`` (``"~epoch"``, ``"~gen"``) or is empty is a :class:`ConfigurationError`.
    """
    scope = segment(resource, fold)
    if not scope or scope.startswith("~"):
        raise ConfigurationError(
            f"resource name {resource!r:.80} is reserved: names starting with '~' (and empty names) are cachekit's "
            "own records; rename the resource"
        )
    return scope


def resource_of(scope: str) -> str:
    """The resource part of a scope (``"users"`` for ``"users/item/..."``); ``"*"`` for the namespace scope."""
    return scope.split("/", 1)[0]


def _item_scope(resource: str, item_id: Any, fold: bool) -> str:
    return f"{resource}/item/{id_segment(item_id, case_sensitive=not fold)}"


def _partition_scope(resource: str, partition: str, fold: bool) -> str:
    return f"{resource}/p/{segment(partition, fold)}"


def _value_scope(resource: str, partition: str, values: Mapping[str, Any], fold: bool) -> str:
    coarse = {str(k): coarse_text(v) for k, v in values.items()}
    return f"{_partition_scope(resource, partition, fold)}/{stable_hash(coarse, case_sensitive=not fold)}"


def declared_partition(spec: KeySpec, partitions: Partitions | None) -> bool:
    """Whether ``spec`` reads one value combination of a partition the resource declares (every field given)."""
    if not (spec.partition and spec.partition_values and partitions):
        return False
    fields = partitions.get(spec.partition)
    return fields is not None and set(spec.partition_values) == set(fields)


def read_scopes(spec: KeySpec, partitions: Partitions | None, *, case_sensitive: bool = True) -> tuple[str, ...]:
    """The scopes the read ``spec`` depends on, namespace first (see the module docstring)."""
    fold = not case_sensitive
    resource = resource_scope(spec.resource, fold)
    if spec.has_item and spec.item_id is not None:
        return (NAMESPACE_SCOPE, resource, _item_scope(resource, spec.item_id, fold))
    partition, values = spec.partition, spec.partition_values
    if partition and values and declared_partition(spec, partitions):
        return (
            NAMESPACE_SCOPE,
            resource,
            _partition_scope(resource, partition, fold),
            _value_scope(resource, partition, values, fold),
        )
    # An aggregate, a read without an id (``get(email=...)``), or an undeclared partition: any write changes it.
    return (NAMESPACE_SCOPE, resource, f"{resource}/agg")


def invalidation_scopes(inv: Invalidation, *, case_sensitive: bool = True) -> list[str]:
    """The scopes a write must bump: its items, the aggregates, and the partitions it touched."""
    fold = not case_sensitive
    resource = resource_scope(inv.resource, fold)
    if inv.whole:
        return [resource]
    scopes = [f"{resource}/agg"]
    scopes.extend(_item_scope(resource, item_id, fold) for item_id in inv.ids)
    for name, fields in inv.partitions.items():
        precise = inv.records_complete and fields and all(all(f in r for f in fields) for r in inv.records)
        if not precise:
            scopes.append(_partition_scope(resource, name, fold))
            continue
        scopes.extend(_value_scope(resource, name, {f: r[f] for f in fields}, fold) for r in inv.records)
    return list(dict.fromkeys(scopes))


def partition_scopes(
    resource: str, partition: str, values: Mapping[str, Any] | None, *, case_sensitive: bool = True
) -> list[str]:
    """The scope of one partition value combination, or of every value of the partition (``values=None``)."""
    fold = not case_sensitive
    name = resource_scope(resource, fold)
    if not values:
        return [_partition_scope(name, partition, fold)]
    return [_value_scope(name, partition, values, fold)]


def key_scopes(key: str, namespace: str, partitions: Mapping[str, Partitions]) -> tuple[str, ...] | None:
    """The scopes a stored key depends on, read back from the key itself (``None``: not a read's key).

    The inverse of :func:`read_scopes` over the key layout, used to tell current entries from the orphans that
    writes left behind (``Cache.keys()``). ``partitions`` maps resource names to their declared partitions.
    """
    base, at, _ = key.rpartition("@")
    if not at or not base.startswith(namespace + "/resource="):
        return None
    parts = base[len(namespace) + 1 :].split("/")
    resource = parts[0][len("resource=") :]
    if len(parts) > 1 and parts[1] == "custom":
        return (NAMESPACE_SCOPE, resource)
    rest = parts[1:]
    partition, values = None, {}
    if rest and rest[0].startswith("partition="):
        partition = unquote(rest[0][len("partition=") :])
        while len(rest) > 1 and not rest[1].startswith("action="):
            name, _, text = rest.pop(1).partition("=")
            values[unquote(name)] = unquote(text)
        rest = rest[1:]
    if not rest or not rest[0].startswith("action="):
        return None
    action = unquote(rest[0][len("action=") :])
    if action in item_actions() and len(rest) > 1:
        if rest[1] == NO_ID:
            return (NAMESPACE_SCOPE, resource, f"{resource}/agg")
        return (NAMESPACE_SCOPE, resource, f"{resource}/item/{rest[1]}")
    declared = partitions.get(unquote(resource), {}).get(partition) if partition else None
    if partition and declared is not None and set(values) == set(declared):
        scope = f"{resource}/p/{segment(partition)}"
        return (NAMESPACE_SCOPE, resource, scope, f"{scope}/{stable_hash(values)}")  # values folded in the key
    return (NAMESPACE_SCOPE, resource, f"{resource}/agg")
