"""The database: a bucket (and key prefix) holding resources, plus the hooks plugins install through.

Resource definitions (names, partitions) live in memory: a process that connects to a bucket written by
another one calls :meth:`Database.create_resource` again with the same definition, and the resource reads the
documents already stored under its prefix.

This module is the home of :class:`Database` (resources, plugins, the worker threads, closing) and of the
:class:`Plugin` protocol; the ``s3://`` connection URL, :class:`S3Url`, lives in :mod:`cachekit.s3db._url`
and is importable from here as well.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol, TypeVar

from botocore.exceptions import ClientError

from ._url import S3Url
from .errors import AlreadyExists, NotFound, S3dbError, ValidationError
from .resource import Resource, check_name

__all__ = ["Database", "Plugin", "ResourceCallback", "S3Url"]

_T = TypeVar("_T")
_R = TypeVar("_R")

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
