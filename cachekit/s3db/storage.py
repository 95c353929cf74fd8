"""How a resource's documents and partition index sit in S3: keys, reads and writes of objects, write steps.

:class:`ResourceStorage` is the base of :class:`~cachekit.s3db.Resource`: it holds the resource's state
and the private helpers its public methods share (they never call each other; see :mod:`cachekit.s3db.database`,
which also describes the layout).
"""

from __future__ import annotations

import json
import string
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

from botocore.exceptions import ClientError

from .._s3 import delete_in_batches, error_code, is_not_found
from .documents import (
    Change,
    ChangeListener,
    Document,
    PartitionValues,
    _check_data,
    _check_id,
    _Documents,
    _Ids,
    _quote,
    check_name,
    encode_partition_value,
)
from .errors import AlreadyExists, NotFound, PartitionError, S3dbError, ValidationError

__all__ = ["ResourceStorage"]

_T = TypeVar("_T")
_R = TypeVar("_R")

LOCK_STRIPES = 32


class _Bucket(Protocol):
    """What the S3 side of a resource uses of its :class:`~cachekit.s3db.Database`: the client, the bucket and
    the worker threads (a protocol, so this module does not import the database that imports it)."""

    @property
    def client(self) -> Any: ...

    @property
    def bucket(self) -> str: ...

    def _map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]: ...


class ResourceStorage:
    """The state of a resource and the S3 side of its methods (keys, object reads/writes, write steps)."""

    _database: _Bucket
    _name: str
    _partitions: dict[str, tuple[str, ...]]
    _id_generator: Callable[[], str]
    _root: str
    _data_prefix: str
    _locks: list[threading.RLock]
    _listeners: list[ChangeListener]

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

    def _notify(self, old: Document | None, new: Document | None, everything: bool = False) -> None:
        if self._listeners:
            change = Change(self._name, old, new, everything)
            for listener in list(self._listeners):
                listener(change)

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

    def _scope_listing(
        self, partition: str | None, partition_values: Mapping[str, Any] | None
    ) -> tuple[str, str]:
        """The key prefix and suffix of the entries of a scope (validated as :meth:`_scope_ids` does)."""
        if partition is None:
            if partition_values is not None:
                self._scope_ids(partition, partition_values)  # raises the same error
            return self._data_prefix, ".json"
        return self._partition_prefix(partition, partition_values), ""

    def _first_ids(self, prefix: str, suffix: str, count: int) -> tuple[_Ids, bool] | None:
        """The first ``count`` ids of a scope in id order, from one listing cut after ``count + 1`` keys.

        Returns ``(ids, complete)``: every id of the scope when the listing was not cut (``complete``), else the
        first ``count`` and the next one; ``None`` when the cut listing cannot prove them (then list it all).

        S3 lists keys in key order, which is not id order: ids are quoted, and data keys end in ``.json``. The
        ``count``-th id ``m`` (in id order) of the cut listing is proved when every id before it sorts before
        it as a key too, hence was listed: true when ``m`` has only unreserved characters (``A-Za-z0-9_.-~``,
        never quoted; a quoted character's ``%`` sorts before all of them), except for an id that is a prefix
        of ``m`` cut before a ``-`` or ``.`` (``a`` before ``a-b``: ``id=a.json`` sorts after ``id=a-b.json``),
        whose key must then sort before the listing's last key.
        """
        response = self._database.client.list_objects_v2(
            Bucket=self._database.bucket, Prefix=prefix, MaxKeys=count + 1
        )
        keys = [item["Key"] for item in response.get("Contents", ())]
        ids = sorted(found for found in (_id_in(key, prefix, suffix) for key in keys) if found is not None)
        if not response.get("IsTruncated"):
            return ids, True
        if len(ids) <= count:
            return None  # stray keys took places in the listing
        last, m = keys[-1], ids[count - 1]
        if not _PLAIN.issuperset(m):
            return None
        if suffix and any(c in "-." and f"{prefix}id={m[:j]}{suffix}" > last for j, c in enumerate(m) if j):
            return None
        return ids[: count + 1], False

    def _ids_under(self, prefix: str, suffix: str) -> _Ids:
        # Skip anything that is not one of our entries (e.g. a nested partition or a stray object).
        found = (_id_in(key, prefix, suffix) for key in self._scan(prefix))
        ids: _Ids = [id for id in found if id is not None]
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
        return self._locks[hash(id) % LOCK_STRIPES]

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


#: The characters ``quote(s, safe="")`` leaves as they are.
_PLAIN = frozenset(string.ascii_letters + string.digits + "_.-~")


def _id_in(key: str, prefix: str, suffix: str) -> str | None:
    """The id of an entry key listed under ``prefix``, or ``None`` for anything else (as :meth:`_ids_under`)."""
    rest = key[len(prefix) :]
    if rest.startswith("id=") and rest.endswith(suffix) and "/" not in rest:
        return unquote(rest[3 : len(rest) - len(suffix)])
    return None
