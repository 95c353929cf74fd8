"""Documents of an s3db resource: their types, the change record, and the checks and merges of their data.

Shared by :mod:`cachekit.s3db.database` (the public methods) and :mod:`cachekit.s3db.storage` (how documents
and their partition index sit in S3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import quote

from .errors import ValidationError

__all__ = ["Change", "ChangeListener", "Document", "PartitionValues", "check_name", "encode_partition_value"]

#: A stored record: a JSON object with an ``id``.
Document: TypeAlias = dict[str, Any]
#: ``{partition: {field: value}}``: the partition values a document falls in.
PartitionValues: TypeAlias = dict[str, dict[str, str]]
# Aliases so that annotations inside ``Resource`` do not resolve ``list`` to the method of that name.
_Documents: TypeAlias = "list[Document]"


@dataclass(frozen=True, slots=True)
class Change:
    """One stored change, as seen by :meth:`Resource.on_change` listeners.

    :param resource: the resource name.
    :param old: the document before the write (``None`` for an insert).
    :param new: the document after it (``None`` for a delete).
    :param everything: ``True`` for :meth:`Resource.delete_all`: every document may have changed.
    """

    resource: str
    old: Document | None
    new: Document | None
    everything: bool = False


#: ``listener(change)``: called after each write of a resource (the plugin invalidates from it).
ChangeListener: TypeAlias = "Callable[[Change], object]"
_Ids: TypeAlias = "list[str]"


_NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid resource or partition name (``[A-Za-z0-9_-]+``), else raise.

    :raises ValidationError: naming the ``kind`` ("resource", "partition") and the rule.

    E.g.::

        check_name("resource", "users")        # -> "users"
        check_name("resource", "my users")     # ValidationError
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            f"invalid {kind} name {name!r}: use a non-empty string of letters, digits, '_' and '-' "
            f"(it becomes part of S3 keys)"
        )
    return name


def encode_partition_value(value: Any) -> str:
    """The string a field value takes in partition keys: a ``str`` as is, anything else its compact JSON.

    :raises ValidationError: when the value cannot be represented as JSON.

    E.g.::

        encode_partition_value("eu")    # -> "eu"
        encode_partition_value(2024)    # -> "2024"
        encode_partition_value(True)    # -> "true"
    """
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"partition value {value!r} cannot be used in a key ({exc}); "
            f"use a string, number, bool or a JSON list/object"
        ) from exc


def _quote(text: str) -> str:
    return quote(text, safe="")


def _check_id(id: object) -> str:
    # Ids are strings only: get(1) and get("1") would otherwise be two cache keys for one document.
    if not isinstance(id, str) or not id:
        raise ValidationError(f"invalid id {id!r}: ids are non-empty strings (pass str(value) for numbers)")
    return id


def _check_ids(ids: object) -> list[str]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise ValidationError(f"ids must be a list of id strings, not {type(ids).__name__} {ids!r}")
    return [_check_id(id) for id in ids]


def _check_data(data: object, what: str = "data") -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(f"{what} must be a dict (a JSON object), not {type(data).__name__}")
    bad = [key for key in data if not isinstance(key, str)]
    if bad:
        raise ValidationError(f"{what} has non-string keys {bad!r}; JSON objects only have string keys")
    return dict(data)


def _check_window(limit: object, offset: object) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValidationError(f"limit must be None or an int >= 0, not {limit!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValidationError(f"offset must be an int >= 0, not {offset!r}")


def _window(items: Sequence[Any], limit: int | None, offset: int) -> list[Any]:
    end = None if limit is None else offset + limit
    return list(items[offset:end])


def _check_positive(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError(f"{name} must be an int >= 1 (pages are 1-based), not {value!r}")
    return value


def _deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            merged[key] = _deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def _matches(document: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    # A field missing from the document never matches, not even a filter value of None.
    return all(field in document and document[field] == value for field, value in filter.items())
