"""A resource: a named collection of JSON documents in S3, with optional partitions.

Storage layout (``{prefix}/`` is absent when the database has no prefix)::

    {prefix}/resource={name}/data/id={id}.json                              the document (JSON object)
    {prefix}/resource={name}/partition={p}/{field}={value}[/...]/id={id}    index entry (empty body)

Ids, field names and values are URL-quoted (``quote(s, safe="")``) in keys, so any string is a valid id or
value and a ``/`` in a value never adds a path segment. A partition value is the string itself when the field
holds a string, otherwise its compact JSON (``2024`` -> ``"2024"``, ``True`` -> ``"true"``); the same rule
applies to the ``partition_values`` given to reads, so ``{"year": 2024}`` and ``{"year": "2024"}`` select the
same partition. A document is in a partition only when every field of the partition is present and not
``None``.

Every write keeps the index in step with the data: the document is written first, then new index entries are
added, then stale ones are removed (a concurrent partition read may briefly see a moving document in both
partitions, never in neither). A delete removes the index entries and the document in one batch. Writes to one
id are serialised in-process by a striped lock; across processes, ``insert`` is atomic through S3's
conditional write (``If-None-Match: *``), other writes are last-writer-wins.

Public methods never call each other (they share private helpers), so a wrapper installed on one of them - the
cache plugin wraps reads and writes - never changes what another one sees: ``update`` reads the stored
document, not a cached ``get``.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import quote, unquote

try:
    from botocore.exceptions import ClientError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("cachekit.s3db needs boto3: pip install 'cachekit-orm[s3]'") from exc

from .._s3 import delete_in_batches, error_code, is_not_found
from .errors import AlreadyExists, NotFound, PartitionError, S3dbError, ValidationError

if TYPE_CHECKING:
    from .database import Database

__all__ = [
    "Change",
    "ChangeListener",
    "Document",
    "PartitionValues",
    "Resource",
    "check_name",
    "encode_partition_value",
]

Document: TypeAlias = dict[str, Any]
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


ChangeListener: TypeAlias = "Callable[[Change], object]"
_Ids: TypeAlias = "list[str]"

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_LOCK_STRIPES = 32


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


class Resource:
    """A named collection of JSON documents stored in the database's bucket, with optional partitions.

    Create resources with :meth:`Database.create_resource`, not directly. Every document has a string
    ``"id"``. Lists are ordered by id (Python string order). Partitions are named lists of fields; a partition
    read (``partition=..., partition_values=...``) reads only that partition's index prefix.

    :param database: the owning :class:`~cachekit.s3db.Database`.
    :param name: the resource name, ``[A-Za-z0-9_-]+``.
    :param partitions: partition name -> list of field names, e.g. ``{"by_region": ["region"]}``.
    :param id_generator: makes ids for documents inserted without one (default: ``uuid4().hex``).

    E.g.::

        users = db.create_resource("users", partitions={"by_region": ["region"]})
        users.insert({"id": "u1", "name": "Ada", "region": "eu"})
        users.update("u1", {"region": "us"})          # moves u1 from region=eu to region=us
        users.count(partition="by_region", partition_values={"region": "us"})   # -> 1
        users.page(page=1, size=25)["items"]
    """

    def __init__(
        self,
        database: Database,
        name: str,
        *,
        partitions: Mapping[str, Sequence[str]] | None = None,
        id_generator: Callable[[], str] | None = None,
    ) -> None:
        self._database = database
        self._name = check_name("resource", name)
        self._partitions = self._check_partitions(partitions or {})
        if id_generator is not None and not callable(id_generator):
            raise ValidationError(f"id_generator must be a callable returning a str, not {id_generator!r}")
        self._id_generator = id_generator or (lambda: uuid.uuid4().hex)
        self._root = f"{database.key_prefix}resource={self._name}/"
        self._data_prefix = f"{self._root}data/"
        self._locks = [threading.RLock() for _ in range(_LOCK_STRIPES)]
        self._listeners: list[ChangeListener] = []

    def _check_partitions(self, partitions: object) -> dict[str, tuple[str, ...]]:
        if not isinstance(partitions, Mapping):
            raise ValidationError(
                f"partitions of resource {self._name!r} must be a dict name -> list of fields, "
                f'e.g. {{"by_region": ["region"]}}, not {partitions!r}'
            )
        checked: dict[str, tuple[str, ...]] = {}
        for pname, fields in partitions.items():
            check_name("partition", pname)
            if isinstance(fields, str) or not isinstance(fields, Sequence) or not fields:
                raise ValidationError(
                    f"partition {pname!r} of resource {self._name!r} needs a non-empty list of field names, "
                    f'e.g. ["region"], not {fields!r}'
                )
            valid = all(isinstance(field, str) and field for field in fields)
            if not valid or len(set(fields)) != len(fields):
                raise ValidationError(
                    f"partition {pname!r} of resource {self._name!r}: fields must be distinct non-empty "
                    f"strings, got {list(fields)!r}"
                )
            checked[pname] = tuple(fields)
        return checked

    def __repr__(self) -> str:
        return f"Resource(name={self._name!r}, partitions={self.partitions!r})"

    # -- attributes ------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The resource name (``resource={name}`` in keys)."""
        return self._name

    @property
    def database(self) -> Database:
        """The :class:`~cachekit.s3db.Database` this resource belongs to."""
        return self._database

    @property
    def partitions(self) -> dict[str, list[str]]:
        """A copy of the partition definitions: partition name -> its fields, in key order."""
        return {pname: list(fields) for pname, fields in self._partitions.items()}

    def partition_values_of(self, record: Mapping[str, Any]) -> PartitionValues:
        """The partitions ``record`` falls in, with its encoded value for each of their fields.

        A partition is included only when all its fields are present in ``record`` and not ``None``; values
        are encoded as in keys (:func:`encode_partition_value`). The cache plugin uses this to clear exactly
        the partitions a write touches.

        E.g.::

            users.partition_values_of({"id": "u1", "region": "eu", "year": 2024})
            # -> {"by_region": {"region": "eu"}, "by_region_year": {"region": "eu", "year": "2024"}}
        """
        found: PartitionValues = {}
        for pname, fields in self._partitions.items():
            if all(record.get(field) is not None for field in fields):
                found[pname] = {field: encode_partition_value(record[field]) for field in fields}
        return found

    # -- reads -----------------------------------------------------------------------------------------------

    def get(self, id: str) -> Document:
        """The document with this id.

        :raises NotFound: when there is none (the message names the resource and the id).
        """
        return self._load(_check_id(id))

    def get_many(self, ids: Iterable[str]) -> _Documents:
        """The documents with these ids, in the order of ``ids``; ids with no document are skipped."""
        return self._fetch(_check_ids(ids))

    def exists(self, id: str) -> bool:
        """Whether a document with this id is stored (a HEAD request; the body is not read)."""
        return self._object_exists(self._data_key(_check_id(id)))

    def list(
        self,
        limit: int | None = None,
        offset: int = 0,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> _Documents:
        """Documents ordered by id, ``offset`` skipped, at most ``limit``; only one partition when given."""
        _check_window(limit, offset)
        ids = self._scope_ids(partition, partition_values)
        return self._fetch(_window(ids, limit, offset))

    def list_ids(
        self,
        limit: int | None = None,
        offset: int = 0,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> _Ids:
        """Ids in order, ``offset`` skipped, at most ``limit``; reads only keys, never document bodies."""
        _check_window(limit, offset)
        return _window(self._scope_ids(partition, partition_values), limit, offset)

    def count(self, partition: str | None = None, partition_values: Mapping[str, Any] | None = None) -> int:
        """The number of documents, or of documents in one partition (reads only keys)."""
        return len(self._scope_ids(partition, partition_values))

    def page(
        self,
        page: int = 1,
        size: int = 25,
        cursor: str | None = None,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One page of documents ordered by id.

        Without ``cursor``, page ``page`` (1-based) of ``size`` documents. With ``cursor`` (the last id of the
        previous page, i.e. its ``next_cursor``) the page starts right after that id - even if it was deleted
        since - and ``page`` is not used for positioning; the returned ``"page"`` is then the page number the
        first item falls on.

        :returns: ``{"items": [...], "page": n, "size": size, "total": total, "next_cursor": id or None}``;
            ``next_cursor`` is the last item's id, ``None`` on the last page.
        :raises ValidationError: when ``page`` or ``size`` is below 1.

        E.g.::

            first = users.page(page=1, size=2)
            second = users.page(size=2, cursor=first["next_cursor"])
        """
        _check_positive(page, "page")
        _check_positive(size, "size")
        if cursor is not None and not isinstance(cursor, str):
            raise ValidationError(f"cursor must be None or the id string from next_cursor, not {cursor!r}")
        ids = self._scope_ids(partition, partition_values)
        start = (page - 1) * size if cursor is None else bisect.bisect_right(ids, cursor)
        chunk = ids[start : start + size]
        more = start + size < len(ids)
        return {
            "items": self._fetch(chunk),
            "page": page if cursor is None else start // size + 1,
            "size": size,
            "total": len(ids),
            "next_cursor": chunk[-1] if chunk and more else None,
        }

    def query(
        self,
        filter: Mapping[str, Any],
        limit: int | None = None,
        offset: int = 0,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> _Documents:
        """Documents whose fields equal every ``filter`` item, ordered by id, ``offset``/``limit`` applied.

        This scans the documents in scope; narrow it with a partition when you can. A field missing from a
        document never matches. ``{}`` matches everything.

        E.g.::

            users.query({"role": "admin"}, partition="by_region", partition_values={"region": "eu"})
        """
        if not isinstance(filter, Mapping):
            raise ValidationError(f'filter must be a dict of field -> value, e.g. {{"role": "admin"}}, not {filter!r}')
        _check_window(limit, offset)
        documents = self._fetch(self._scope_ids(partition, partition_values))
        return _window([doc for doc in documents if _matches(doc, filter)], limit, offset)

    def get_from_partition(self, id: str, partition: str, partition_values: Mapping[str, Any]) -> Document:
        """The document with this id, only if it is in the given partition.

        :raises NotFound: when the id is not indexed in that partition.
        :raises PartitionError: when the partition or its values are wrong.
        """
        id = _check_id(id)
        prefix = self._partition_prefix(partition, partition_values)
        if not self._object_exists(f"{prefix}id={_quote(id)}"):
            where = ", ".join(f"{field}={value}" for field, value in partition_values.items())
            raise NotFound(
                f"resource {self._name!r} has no document {id!r} in partition {partition!r} ({where}); "
                f"check the id and partition_values, or read it with get(id)"
            )
        return self._load(id)

    def get_all(self) -> _Documents:
        """Every document, ordered by id."""
        return self._fetch(self._scope_ids(None, None))

    # -- change listeners ------------------------------------------------------------------------------------

    def on_change(self, listener: ChangeListener) -> ChangeListener:
        """Call ``listener(Change)`` after every stored change, from every write method.

        Listeners run in the writing thread once the document itself is written (also when a later step of the
        write, such as an index move, fails), so a cache in front of this resource can invalidate exactly what
        changed. A listener's exception propagates to the writer.

        E.g.::

            users.on_change(lambda change: print(change.old, "->", change.new))
        """
        if not callable(listener):
            raise ValidationError(f"on_change needs a callable(Change); got {listener!r}")
        self._listeners.append(listener)
        return listener

    def remove_change_listener(self, listener: ChangeListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, old: Document | None, new: Document | None, everything: bool = False) -> None:
        if self._listeners:
            change = Change(self._name, old, new, everything)
            for listener in list(self._listeners):
                listener(change)

    # -- writes ----------------------------------------------------------------------------------------------

    def insert(self, data: Mapping[str, Any]) -> Document:
        """Store a new document; its id is ``data["id"]`` when given, else a generated one.

        :returns: the stored document, ``"id"`` included.
        :raises AlreadyExists: when the id is taken (use ``update``/``replace``/``upsert`` to change it).
        """
        return self._insert_document(self._new_document(data))

    def insert_many(self, items: Iterable[Mapping[str, Any]]) -> _Documents:
        """Insert several documents (in parallel); returns them in the order given.

        All items are validated before anything is written (a duplicate id within ``items`` raises
        :class:`ValidationError`). Not atomic: when some ids are taken, the other items are still stored, then
        the first :class:`AlreadyExists` is raised.
        """
        if isinstance(items, Mapping) or not isinstance(items, Iterable):
            raise ValidationError(f"items must be a list of dicts, not {type(items).__name__}")
        documents = [self._new_document(item) for item in items]
        counts = Counter(doc["id"] for doc in documents)
        duplicates = sorted(id for id, count in counts.items() if count > 1)
        if duplicates:
            raise ValidationError(f"items repeat the ids {duplicates!r}; each id can be inserted once")
        return self._database._map(self._insert_document, documents)

    def update(self, id: str, data: Mapping[str, Any]) -> Document:
        """Merge ``data`` into the stored document, recursively for nested dicts; returns the new document.

        ``update("u1", {"address": {"city": "Lyon"}})`` keeps the other keys of ``address``; :meth:`patch`
        would replace ``address`` whole. Partition index entries move when partition fields change.

        :raises NotFound: when there is no document with this id.
        :raises ValidationError: when ``data["id"]`` differs from ``id`` (ids cannot change).
        """
        return self._change(_check_id(id), data, _deep_merge)

    def patch(self, id: str, data: Mapping[str, Any]) -> Document:
        """Shallow-merge ``data`` into the stored document: each top-level key given replaces the stored one.

        The cost is the same as :meth:`update` (read, write, index moves); only the merge differs.

        :raises NotFound: when there is no document with this id.
        """
        return self._change(_check_id(id), data, lambda old, new: {**old, **new})

    def replace(self, id: str, data: Mapping[str, Any]) -> Document:
        """Replace the whole stored document by ``data`` (the id is kept); fields not in ``data`` are gone.

        :raises NotFound: when there is no document with this id (use :meth:`upsert` to create or replace).
        """
        return self._change(_check_id(id), data, lambda old, new: dict(new))

    def upsert(self, data: Mapping[str, Any]) -> Document:
        """Insert ``data``, or when its id is already stored, :meth:`update` (deep-merge) that document.

        The id is ``data["id"]`` when given, else a generated one (so the call always inserts).
        """
        document = self._new_document(data)
        id = document["id"]
        with self._lock_for(id):
            old = self._load_or_none(id)
            if old is None:
                try:
                    return self._insert_document(document)
                except AlreadyExists:  # another process inserted it since our read
                    old = self._load(id)
            return self._store({**_deep_merge(old, document), "id": id}, old)

    def delete(self, id: str) -> None:
        """Delete the document and its partition index entries.

        :raises NotFound: when there is no document with this id.
        """
        if not self._remove(_check_id(id)):
            raise self._not_found(id)

    def delete_many(self, ids: Iterable[str]) -> int:
        """Delete these documents (in parallel), skipping missing ids; returns how many were deleted."""
        return sum(self._database._map(self._remove, _check_ids(ids)))

    def delete_all(self) -> int:
        """Delete every document and index entry of this resource (other resources are untouched).

        Not synchronised with concurrent writes to this resource. Returns the number of documents deleted.
        """
        keys = list(self._scan(self._root))
        try:
            self._delete_keys(keys)
        finally:
            self._notify(None, None, everything=True)
        return sum(1 for key in keys if key.startswith(self._data_prefix))

    # -- keys ------------------------------------------------------------------------------------------------

    def _data_key(self, id: str) -> str:
        return f"{self._data_prefix}id={_quote(id)}.json"

    def _partition_prefix(self, partition: str, partition_values: Mapping[str, Any] | None) -> str:
        fields = self._partition_fields(partition)
        if not isinstance(partition_values, Mapping):
            raise PartitionError(
                f"partition {partition!r} of resource {self._name!r} needs partition_values, a dict with "
                f"a value for each of its fields {list(fields)!r}, not {partition_values!r}"
            )
        extra = sorted(set(partition_values) - set(fields), key=str)
        if extra:
            raise PartitionError(
                f"partition_values has fields {extra!r} that partition {partition!r} of resource "
                f"{self._name!r} does not use; its fields are {list(fields)!r}"
            )
        for field in fields:
            if partition_values.get(field) is None:
                raise PartitionError(
                    f"partition_values for partition {partition!r} of resource {self._name!r} has no value "
                    f"for field {field!r}; give one for each of {list(fields)!r}"
                )
        segments = "".join(
            f"{_quote(field)}={_quote(encode_partition_value(partition_values[field]))}/" for field in fields
        )
        return f"{self._root}partition={partition}/{segments}"

    def _partition_fields(self, partition: object) -> tuple[str, ...]:
        if isinstance(partition, str) and partition in self._partitions:
            return self._partitions[partition]
        defined = ", ".join(repr(name) for name in self._partitions)
        hint = f"defined partitions: {defined}" if defined else "it has none; pass partitions= to create_resource"
        raise PartitionError(f"resource {self._name!r} has no partition {partition!r} ({hint})")

    def _index_keys(self, document: Mapping[str, Any]) -> set[str]:
        suffix = f"id={_quote(document['id'])}"
        return {
            self._partition_prefix(pname, values) + suffix
            for pname, values in self.partition_values_of(document).items()
        }

    # -- S3 access -----------------------------------------------------------------------------------------

    def _scope_ids(self, partition: str | None, partition_values: Mapping[str, Any] | None) -> _Ids:
        if partition is None:
            if partition_values is not None:
                raise PartitionError(
                    f"partition_values given without partition= on resource {self._name!r}; name the "
                    f"partition they belong to"
                )
            return self._ids_under(self._data_prefix, ".json")
        return self._ids_under(self._partition_prefix(partition, partition_values), "")

    def _ids_under(self, prefix: str, suffix: str) -> _Ids:
        ids: _Ids = []
        for key in self._scan(prefix):
            rest = key[len(prefix) :]
            # Skip anything that is not one of our entries (e.g. a nested partition or a stray object).
            if rest.startswith("id=") and rest.endswith(suffix) and "/" not in rest:
                ids.append(unquote(rest[3 : len(rest) - len(suffix)]))
        ids.sort()
        return ids

    def _scan(self, prefix: str) -> Iterator[str]:
        paginator = self._database.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._database.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield item["Key"]

    def _object_exists(self, key: str) -> bool:
        try:
            self._database.client.head_object(Bucket=self._database.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def _load_or_none(self, id: str) -> Document | None:
        key = self._data_key(id)
        try:
            response = self._database.client.get_object(Bucket=self._database.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        body = response["Body"]
        try:
            raw = body.read()
        finally:
            body.close()
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise S3dbError(
                f"s3://{self._database.bucket}/{key} is not valid JSON ({exc}); delete or rewrite it"
            ) from exc
        if not isinstance(document, dict):
            raise S3dbError(f"s3://{self._database.bucket}/{key} holds a JSON {type(document).__name__}, not an object")
        return document

    def _load(self, id: str) -> Document:
        document = self._load_or_none(id)
        if document is None:
            raise self._not_found(id)
        return document

    def _fetch(self, ids: Sequence[str]) -> _Documents:
        # Ids listed a moment ago may be deleted by now: skip them rather than fail the whole read.
        return [doc for doc in self._database._map(self._load_or_none, ids) if doc is not None]

    def _not_found(self, id: str) -> NotFound:
        return NotFound(f"resource {self._name!r} has no document with id {id!r}; check the id or insert it first")

    def _encode(self, document: Mapping[str, Any]) -> bytes:
        try:
            return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"document {document.get('id')!r} of resource {self._name!r} cannot be stored as JSON "
                f"({exc}); use str, int, float, bool, None, list and dict values only"
            ) from exc

    def _delete_keys(self, keys: Sequence[str]) -> None:
        delete_in_batches(self._database.client, self._database.bucket, keys, self._delete_failure)

    def _delete_failure(self, errors: Sequence[Mapping[str, Any]], batch_size: int) -> S3dbError:
        first = errors[0]
        return S3dbError(
            f"could not delete {len(errors)} of {batch_size} object(s) of resource {self._name!r}, first "
            f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}; retry the call"
        )

    # -- write helpers ---------------------------------------------------------------------------------------

    def _lock_for(self, id: str) -> threading.RLock:
        return self._locks[hash(id) % _LOCK_STRIPES]

    def _new_document(self, data: object) -> Document:
        document = _check_data(data)
        if document.get("id") is None:
            generated = self._id_generator()
            document["id"] = _check_id(generated)
        # ``id`` first, for readable objects in the bucket.
        return {"id": _check_id(document["id"]), **document}

    def _insert_document(self, document: Document) -> Document:
        with self._lock_for(document["id"]):
            return self._store(document, None)

    def _change(
        self,
        id: str,
        data: Mapping[str, Any],
        merge: Callable[[Document, dict[str, Any]], dict[str, Any]],
    ) -> Document:
        changes = _check_data(data)
        if changes.get("id", id) != id:
            raise ValidationError(
                f"data['id'] is {changes['id']!r} but the document is {id!r}; ids cannot change "
                f"(insert a new document and delete the old one)"
            )
        with self._lock_for(id):
            old = self._load(id)
            document = {"id": id, **merge(old, changes)}
            document["id"] = id
            return self._store(document, old)

    def _store(self, document: Document, old: Document | None) -> Document:
        """Write ``document`` (creating it when ``old`` is None) and move its index entries."""
        body = self._encode(document)
        new_keys = self._index_keys(document)
        options: dict[str, Any] = {"IfNoneMatch": "*"} if old is None else {}
        client, bucket = self._database.client, self._database.bucket
        try:
            client.put_object(
                Bucket=bucket,
                Key=self._data_key(document["id"]),
                Body=body,
                ContentType="application/json",
                **options,
            )
        except ClientError as exc:
            if old is None and error_code(exc) in ("PreconditionFailed", "412"):
                raise AlreadyExists(
                    f"resource {self._name!r} already has a document with id {document['id']!r}; use update, "
                    f"replace or upsert to change it, or insert without an id to get a new one"
                ) from exc
            raise
        try:
            old_keys = self._index_keys(old) if old is not None else set()
            for key in sorted(new_keys - old_keys):
                client.put_object(Bucket=bucket, Key=key, Body=b"")
            self._delete_keys(sorted(old_keys - new_keys))
        finally:
            self._notify(old, document)
        return document

    def _remove(self, id: str) -> bool:
        with self._lock_for(id):
            old = self._load_or_none(id)
            if old is None:
                return False
            try:
                self._delete_keys([*sorted(self._index_keys(old)), self._data_key(id)])
            finally:
                self._notify(old, None)
            return True
