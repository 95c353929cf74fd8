"""The database: a bucket (and key prefix) holding resources (named collections of JSON documents, with optional
partitions), plus the hooks plugins install through.

Resource definitions (names, partitions) live in memory: a process that connects to a bucket written by
another one calls :meth:`Database.create_resource` again with the same definition, and the resource reads the
documents already stored under its prefix.

This module is the home of :class:`Database` (resources, plugins, the worker threads, closing), of
:class:`Resource` (the public methods of a collection) and of the :class:`Plugin` protocol. They live together
because each names the other (a resource's ``database``, a database's resources): one module, not a circle. The
S3 side of a resource's methods is in :mod:`cachekit.s3db.storage`, its documents' types and checks in
:mod:`cachekit.s3db.documents`; the ``s3://`` connection URL, :class:`S3Url`, lives in :mod:`cachekit.s3db._url`
and is importable from here as well.

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
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol, TypeVar

from botocore.exceptions import ClientError

from ._url import S3Url
from .documents import (
    Change,
    ChangeListener,
    Document,
    PartitionValues,
    _check_id,
    _check_ids,
    _check_positive,
    _check_window,
    _deep_merge,
    _Documents,
    _Ids,
    _matches,
    _quote,
    _window,
    check_name,
    encode_partition_value,
)
from .errors import AlreadyExists, NotFound, S3dbError, ValidationError
from .storage import LOCK_STRIPES, ResourceStorage

__all__ = [
    "Change",
    "ChangeListener",
    "Database",
    "Document",
    "PartitionValues",
    "Plugin",
    "Resource",
    "ResourceCallback",
    "S3Url",
    "check_name",
    "encode_partition_value",
]

_T = TypeVar("_T")
_R = TypeVar("_R")


class Resource(ResourceStorage):
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

    #: Where a numbered :meth:`page` takes its ``total`` from: ``page_total(partition, partition_values)``.
    #: ``None``: a listing of the scope's ids. The cache plugin sets its cached ``count()`` here.
    page_total: Callable[[str | None, Mapping[str, Any] | None], int] | None = None
    _database: Database  # (ResourceStorage needs less of it: storage._Bucket)

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
        self._locks = [threading.RLock() for _ in range(LOCK_STRIPES)]
        self._listeners: list[ChangeListener] = []

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
        total: bool = True,
    ) -> dict[str, Any]:
        """One page of documents ordered by id.

        Without ``cursor``, page ``page`` (1-based) of ``size`` documents. With ``cursor`` (the last id of the
        previous page, i.e. its ``next_cursor``) the page starts right after that id - even if it was deleted
        since - and ``page`` is not used for positioning; the returned ``"page"`` is then the page number the
        first item falls on.

        :param total: ``False`` skips the count (s3db.js ``skipCount``): ``"total"`` is then ``None``, and a
            numbered page within the first 999 ids costs one listing cut after the page and its GETs, nothing
            more (no listing of the whole scope, no ``count()``). The other fields are the same.
        :returns: ``{"items": [...], "page": n, "size": size, "total": total, "next_cursor": id or None}``;
            ``next_cursor`` is the last item's id, ``None`` on the last page; ``total`` is the number of
            documents in scope, ``None`` with ``total=False``.

        A numbered page within the first 999 ids lists only the keys up to it (``MaxKeys``) when that proves
        which ids come first (see ``_first_ids``), and takes ``total`` from a count run meanwhile: the
        resource's count hook (the cache plugin puts its cached ``count()`` there), else a listing of ids.
        A page with a cursor, past the first 999 ids, or of ids the cut listing cannot prove lists every id of
        the scope, whatever ``total`` says.
        :raises ValidationError: when ``page`` or ``size`` is below 1, or ``total`` is not a bool.

        E.g.::

            first = users.page(page=1, size=2)
            second = users.page(size=2, cursor=first["next_cursor"])
            quick = users.page(page=1, size=25, total=False)    # quick["total"] is None
        """
        _check_positive(page, "page")
        _check_positive(size, "size")
        if cursor is not None and not isinstance(cursor, str):
            raise ValidationError(f"cursor must be None or the id string from next_cursor, not {cursor!r}")
        if not isinstance(total, bool):
            raise ValidationError(f"total must be True (count the scope) or False (skip the count), not {total!r}")
        if cursor is None and page * size < 1000:
            found = self._numbered_page(page, size, partition, partition_values, total)
            if found is not None:
                return found
        ids = self._scope_ids(partition, partition_values)
        start = (page - 1) * size if cursor is None else bisect.bisect_right(ids, cursor)
        chunk = ids[start : start + size]
        more = start + size < len(ids)
        return {
            "items": self._fetch(chunk),
            "page": page if cursor is None else start // size + 1,
            "size": size,
            "total": len(ids) if total else None,
            "next_cursor": chunk[-1] if chunk and more else None,
        }

    def _numbered_page(
        self, page: int, size: int, partition: str | None, partition_values: Mapping[str, Any] | None, total: bool
    ) -> dict[str, Any] | None:
        """:meth:`page` from a listing cut after the page, or ``None`` when that listing proves nothing.

        With ``total`` the count (the resource's hook, else a listing of ids) runs on a worker meanwhile.
        """
        prefix, suffix = self._scope_listing(partition, partition_values)
        counting: Future[int] | None = None
        if total:
            counter = self.page_total or self._count_ids
            counting = self._database._submit(lambda: counter(partition, partition_values))
        try:
            listed = self._first_ids(prefix, suffix, page * size)
            if listed is None:
                return None
            ids, complete = listed
            chunk = ids[(page - 1) * size : page * size]
            items = self._fetch(chunk)
            more = page * size < len(ids)  # the cut listing holds one id past the page
            counted: int | None = None
            if counting is not None:
                counted = len(ids) if complete else max(counting.result(), page * size + 1)
        finally:
            if counting is not None:
                wait([counting])  # never leave the count running behind the caller
        return {"items": items, "page": page, "size": size, "total": counted,
                "next_cursor": chunk[-1] if chunk and more else None}

    def _count_ids(self, partition: str | None, partition_values: Mapping[str, Any] | None) -> int:
        return len(self._scope_ids(partition, partition_values))

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


#: ``callback(resource)``: called for each resource created (``Database.on_resource_created``).
ResourceCallback = Callable[[Resource], object]


def _check_workers(max_workers: object) -> None:
    if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
        raise ValidationError(f"max_workers must be an int >= 1, not {max_workers!r}")


class Plugin(Protocol):
    """What :meth:`Database.use_plugin` needs from a plugin (the cache plugin is one)."""

    def install(self, database: Database, name: str | None) -> None:
        """Attach to ``database``; ``name`` is the one given to ``use_plugin`` (``None`` when not given)."""

    def stop(self) -> None:
        """Release what ``install`` acquired (called by :meth:`Database.stop_plugins` and ``close``)."""


class Database:
    """A bucket (and an optional key prefix) holding :class:`Resource` collections of JSON documents.

    :param client: a boto3 S3 client (the database does not close it; see :meth:`connect` for one it owns).
    :param bucket: the bucket name.
    :param prefix: a key prefix for everything this database stores (``"app/v1"``); ``""`` for none.
    :param create_bucket: create the bucket when it does not exist.
    :param max_workers: threads used to fetch, insert or delete many documents at once.
    :raises ValidationError: for a bad option.

    E.g.::

        db = Database.connect("s3://KEY:SECRET@bucket/app?endpoint=http://127.0.0.1:5055", create_bucket=True)
        users = db.create_resource("users", partitions={"by_region": ["region"]})
        users.insert({"id": "u1", "region": "eu"})
        db.close()

        # or with a client of your own, which you close yourself:
        with Database(client=boto3.client("s3"), bucket="bucket", prefix="app") as db:
            ...
    """

    def __init__(
        self,
        *,
        client: Any,
        bucket: str,
        prefix: str = "",
        create_bucket: bool = False,
        max_workers: int = 8,
    ) -> None:
        if client is None:
            raise ValidationError("client is required: pass a boto3 S3 client, or use Database.connect(url)")
        if not isinstance(bucket, str) or not bucket:
            raise ValidationError(f"bucket must be a non-empty bucket name, not {bucket!r}")
        if not isinstance(prefix, str):
            raise ValidationError(f"prefix must be a str such as 'app/v1' (or '' for none), not {prefix!r}")
        _check_workers(max_workers)
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._max_workers = max_workers
        self._owns_client = False
        self._closed = False
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._resources: dict[str, Resource] = {}
        self._plugins: list[Plugin] = []
        self._listeners: list[ResourceCallback] = []
        if create_bucket:
            self._ensure_bucket()

    @classmethod
    def connect(cls, url: str, *, create_bucket: bool = False, max_workers: int = 8) -> Database:
        """Open a database from an ``s3://KEY:SECRET@bucket/prefix?endpoint=...&region=...`` URL.

        The database creates the boto3 client and closes it in :meth:`close`. See :class:`S3Url` for the URL.

        E.g.::

            db = Database.connect("s3://KEY:SECRET@bucket/app?endpoint=http://127.0.0.1:5055&region=us-east-1")
        """
        settings = S3Url.parse(url)
        _check_workers(max_workers)
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:  # pragma: no cover - the s3db package already needs botocore
            raise ImportError("Database.connect needs boto3: pip install 'cachekit-orm[s3]'") from exc
        client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint,
            region_name=settings.region,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            # One pooled connection per worker thread, so parallel fetches never wait for a connection.
            config=Config(max_pool_connections=max(10, max_workers)),
        )
        try:
            database = cls(
                client=client,
                bucket=settings.bucket,
                prefix=settings.prefix,
                create_bucket=create_bucket,
                max_workers=max_workers,
            )
        except BaseException:
            client.close()
            raise
        database._owns_client = True
        return database

    def __repr__(self) -> str:
        names = sorted(self._resources)
        return f"Database(bucket={self._bucket!r}, prefix={self._prefix!r}, resources={names!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- attributes ------------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client (the cache plugin's S3 driver uses it by default)."""
        return self._client

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix without surrounding slashes (``""`` when none)."""
        return self._prefix

    @property
    def key_prefix(self) -> str:
        """The prefix as it starts keys: ``"app/"``, or ``""`` when there is no prefix."""
        return f"{self._prefix}/" if self._prefix else ""

    @property
    def resources(self) -> dict[str, Resource]:
        """A copy of the defined resources, name -> :class:`Resource`, in creation order."""
        return dict(self._resources)

    @property
    def plugins(self) -> list[Plugin]:
        """A copy of the installed, not yet stopped plugins, in install order."""
        return list(self._plugins)

    # -- resources -------------------------------------------------------------------------------------------

    def create_resource(
        self,
        name: str,
        *,
        partitions: Mapping[str, Sequence[str]] | None = None,
        id_generator: Callable[[], str] | None = None,
        exist_ok: bool = False,
    ) -> Resource:
        """Define a resource and tell the :meth:`on_resource_created` listeners about it.

        :param name: ``[A-Za-z0-9_-]+``.
        :param partitions: partition name -> list of fields, e.g. ``{"by_region": ["region"]}``.
        :param id_generator: makes ids for documents inserted without one (default ``uuid4().hex``).
        :param exist_ok: when the name is taken, return that resource if its partitions are the same.
        :raises AlreadyExists: when the name is taken (and ``exist_ok`` is false, or the partitions differ).
        :raises ValidationError: for a bad name or partition definition.

        E.g.::

            users = db.create_resource("users", partitions={"by_region": ["region"]})
        """
        check_name("resource", name)
        with self._lock:
            existing = self._resources.get(name)
            if existing is None:
                resource = Resource(self, name, partitions=partitions, id_generator=id_generator)
                self._resources[name] = resource
        if existing is not None:
            return self._check_reuse(existing, partitions, exist_ok)
        for listener in list(self._listeners):
            listener(resource)
        return resource

    def _check_reuse(
        self, existing: Resource, partitions: Mapping[str, Sequence[str]] | None, exist_ok: bool
    ) -> Resource:
        wanted = {pname: list(fields) for pname, fields in (partitions or {}).items()}
        if not exist_ok:
            raise AlreadyExists(
                f"resource {existing.name!r} already exists; use db.resource({existing.name!r}) or pass exist_ok=True"
            )
        if wanted != existing.partitions:
            raise AlreadyExists(
                f"resource {existing.name!r} already exists with partitions {existing.partitions!r}, not "
                f"{wanted!r}; use another name or the same partitions"
            )
        return existing

    def resource(self, name: str) -> Resource:
        """The resource with this name.

        :raises NotFound: when no resource has this name (the message lists the defined ones).
        """
        try:
            return self._resources[name]
        except KeyError:
            defined = ", ".join(repr(known) for known in self._resources) or "none"
            raise NotFound(
                f"no resource {name!r} (defined: {defined}); create it with db.create_resource({name!r})"
            ) from None

    # -- plugins ---------------------------------------------------------------------------------------------

    def use_plugin(self, plugin: Plugin, name: str | None = None) -> Plugin:
        """Install ``plugin`` (``plugin.install(db, name)``) and remember it in :attr:`plugins`; returns it.

        :raises ValidationError: when this plugin object is already installed.

        E.g.::

            db.use_plugin(CachePlugin(driver="memory"))
            db.use_plugin(CachePlugin(driver="redis"), "cache_hot")
        """
        if any(installed is plugin for installed in self._plugins):
            raise ValidationError(f"{plugin!r} is already installed on this database; create another instance")
        plugin.install(self, name)
        self._plugins.append(plugin)
        return plugin

    def on_resource_created(self, callback: ResourceCallback) -> ResourceCallback:
        """Call ``callback(resource)`` for each resource created from now on; returns ``callback``.

        Plugins use this to handle resources created after they were installed. A callback that raises makes
        ``create_resource`` raise (the resource stays defined).
        """
        self._listeners.append(callback)
        return callback

    def stop_plugins(self) -> None:
        """Call ``stop()`` on every installed plugin, last installed first, and forget them.

        Every plugin is stopped even when one raises; the first error is raised afterwards.
        """
        first_error: BaseException | None = None
        while self._plugins:
            plugin = self._plugins.pop()
            try:
                plugin.stop()
            except Exception as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the plugins, shut the worker threads down and close the client if :meth:`connect` made it.

        Plugins stop first because they may use :attr:`client`. Calling ``close`` again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self.stop_plugins()
        finally:
            with self._lock:
                executor, self._executor = self._executor, None
            if executor is not None:
                executor.shutdown(wait=True)
            if self._owns_client:
                self._client.close()

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        region = self._client.meta.region_name
        options: dict[str, Any] = {}
        if region and region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(Bucket=self._bucket, **options)
        except ClientError as exc:  # created by someone else since our HEAD
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise

    def _map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """``[fn(item) for item in items]`` on the worker threads; all calls finish before an error is raised.

        ``fn`` must not call ``_map`` itself (the pool is bounded, nested waits could deadlock).
        """
        if len(items) <= 1:
            return [fn(item) for item in items]
        executor = self._pool()
        futures = [executor.submit(fn, item) for item in items]
        wait(futures)
        return [future.result() for future in futures]

    def _submit(self, fn: Callable[[], _R]) -> Future[_R]:
        """Start ``fn()`` on a worker thread (``fn`` must not call :meth:`_map`)."""
        return self._pool().submit(fn)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise S3dbError("this database is closed; open a new one with Database(...) or Database.connect()")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="s3db")
            return self._executor
