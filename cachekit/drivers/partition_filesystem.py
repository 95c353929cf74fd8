"""The partition-aware filesystem driver: one diskcache per resource and per partition folder.

See :class:`PartitionAwareFilesystemCache`. Everything about storing bytes safely (the raw-bytes ``Disk``,
reopening a replaced directory, full disks) is the plain :class:`~cachekit.drivers.filesystem.FilesystemDriver`'s,
per folder; this module adds the routing of keys to folders, and creates a folder's database only when an
entry is stored there (a read or delete of a partition value never seen creates nothing).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from cachekit.drivers._disk import Store
from cachekit.drivers._fs_options import prefix_range
from cachekit.drivers.filesystem import _OPTIONS, FilesystemDriver
from cachekit.errors import ConfigurationError, DriverError

__all__ = ["PartitionAwareFilesystemCache"]


class PartitionAwareFilesystemCache(FilesystemDriver):
    """A filesystem driver with one diskcache per resource and per partition folder.

    cachekit keys read as paths, ``{namespace}/resource={name}[/partition={p}/{field}={value}...]/action=``;
    each key is stored in the diskcache of the folder its path names up to the resource and partition::

        <directory>/<namespace>/resource=users/                                 get, count, list... of users
        <directory>/<namespace>/resource=users/partition=by_region/region=eu/   the eu partition's aggregates
        <directory>/@default/                                                   keys of any other shape

    Folder names are the key's segments, percent-encoded where a character is not filename-safe. A partition
    folder is a diskcache of its own (rather than one database per resource with partition folders for
    files only) so that :meth:`clear_partition` and :meth:`partition_stats` read one small database, and a
    write into one partition never contends for the lock of another. The shape costs file handles: at most
    ``max_open_folders`` databases stay open (least recently used first to close). ``max_bytes`` bounds each
    folder's database, not the sum. ``clear(prefix)``, ``keys(prefix)`` and ``size()`` walk only the folders
    whose path can hold keys under the prefix, and run the same index range scan in each.

    Keys route to partition folders only in cachekit's order (``partition=`` right after ``resource=``);
    other keys with a ``resource=`` segment stay in the resource's folder, and the rest in ``@default``.

    E.g.::

        driver = PartitionAwareFilesystemCache(directory="/var/cache/myapp")
        driver.set("app/resource=users/partition=by_region/region=eu/action=count", b"...")
        driver.clear_partition("users", "by_region", {"region": "eu"})   # only that folder's entries
        driver.partition_stats("users")  # {"app/resource=users/partition=by_region/region=eu": {...}, ...}
    """

    name = "partition-filesystem"

    #: The folder holding keys that do not look like cachekit keys (``@`` never appears in encoded segments).
    DEFAULT_FOLDER = "@default"
    # Folder names stay well inside NAME_MAX (255) and the whole folder inside PATH_MAX; keys that would not
    # fit go to the default folder rather than failing on every write.
    _MAX_SEGMENT = 200
    _MAX_FOLDER = 1000
    _MAX_DEPTH = 16

    def __init__(
        self,
        *,
        directory: str | os.PathLike[str] | None = None,
        create_directory: bool = True,
        max_bytes: int | None = None,
        eviction_policy: str = "lru",
        enable_cleanup: bool = True,
        key_prefix: str = "",
        clock: Callable[[], float] | None = None,
        timeout: float = 10.0,
        max_open_folders: int = 64,
        **unknown: Any,
    ) -> None:
        """The plain driver's options, plus ``max_open_folders``: how many folder databases stay open."""
        if type(max_open_folders) is not int or max_open_folders < 1:
            raise ConfigurationError(f"max_open_folders must be an int >= 1; got {max_open_folders!r}")
        self.max_open_folders = max_open_folders
        self._folders: OrderedDict[tuple[str, ...], Store] = OrderedDict()
        self._folders_lock = threading.RLock()
        super().__init__(
            directory=directory, create_directory=create_directory, max_bytes=max_bytes,
            eviction_policy=eviction_policy, enable_cleanup=enable_cleanup, key_prefix=key_prefix,
            clock=clock, timeout=timeout, **unknown,
        )

    # -- partitions ----------------------------------------------------------------------------------------

    def clear_partition(
        self,
        resource: str,
        partition: str,
        partition_values: Mapping[str, object] | None = None,
        *,
        namespace: str | None = None,
    ) -> int:
        """Remove this driver's entries of one partition; return how many were removed.

        ``partition_values`` selects the folders holding every given ``field=value`` (``None`` or ``{}``: all
        values of the partition); ``namespace=None`` matches the resource in every namespace.
        """
        with self._errors("clear_partition", f"{resource}/{partition}"):
            lo, hi = prefix_range(self.key_prefix)
            return sum(
                self._store_at(folder).delete_range(lo, hi)
                for folder in self._partition_folders(resource, partition, partition_values, namespace)
            )

    def partition_stats(self, resource: str | None = None) -> dict[str, dict[str, Any]]:
        """Per-folder stats, keyed by folder path: namespace, resource, partition, values, entries, bytes.

        The resource folder itself (its unpartitioned entries) is listed with ``partition`` ``None``.
        """
        lo, hi = prefix_range(self.key_prefix)
        stats: dict[str, dict[str, Any]] = {}
        with self._errors("partition_stats", resource):
            now = self._clock()
            for folder in self._walk(""):
                info = _describe(folder)
                if resource is not None and info["resource"] != resource:
                    continue
                store = self._store_at(folder)
                entries = store.count(lo, hi, now)
                stats["/".join(folder)] = {**info, "entries": entries, "bytes": store.volume()}
        return stats

    def stats(self) -> dict[str, Any]:
        """The plain driver's stats summed over every folder, plus ``folders`` and ``partitions`` counts."""
        stats = super().stats()
        with self._errors("stats"):
            folders = [_describe(folder) for folder in self._walk("")]
        stats["folders"] = len(folders)
        stats["partitions"] = sum(1 for info in folders if info["partition"] is not None)
        return stats

    def close(self) -> None:
        """Close every open folder's database (the calling thread's connections). Safe to call twice."""
        with self._folders_lock:
            self._closed = True
            stores, self._folders = list(self._folders.values()), OrderedDict()
        for store in stores:
            store.close()
        self._root.close()

    # -- routing -------------------------------------------------------------------------------------------

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return (*_OPTIONS, "max_open_folders")

    def _root_path(self) -> Path:
        return self.directory / self.DEFAULT_FOLDER

    def _store_for(self, key: str) -> Store:
        folder = self._folder_of(key)
        return super()._store_for(key) if folder is None else self._store_at(folder)

    def _existing_store_for(self, key: str) -> Store | None:
        """A read or delete never creates a folder: a miss on a new partition value leaves the disk alone."""
        folder = self._folder_of(key)
        return super()._store_for(key) if folder is None else self._folder_store(folder, create=False)

    def _open_stores(self) -> list[Store]:
        with self._folders_lock:
            return [self._root, *self._folders.values()]

    def _stores_for_prefix(self, prefix: str) -> Iterator[Store]:
        yield super()._store_for(prefix)
        for folder in self._walk(prefix):
            yield self._store_at(folder)

    def _folder_of(self, key: str) -> tuple[str, ...] | None:
        """The folder segments of a cachekit key, or ``None`` for the default folder."""
        if "resource=" not in key:
            return None
        segments = key.split("/")
        leading = segments[: self._MAX_DEPTH]
        resource = next((i for i, segment in enumerate(leading) if segment.startswith("resource=")), None)
        if resource is None:
            return None
        end = resource + 1
        if end < len(segments) and segments[end].startswith("partition="):
            fields = end + 1
            while fields < len(segments) and _is_field(segments[fields]):
                fields += 1
            if fields > end + 1:
                end = fields
        folder = tuple(segments[:end])
        lengths = [len(_encode(segment)) for segment in folder]
        if min(lengths) == 0 or max(lengths) > self._MAX_SEGMENT or sum(lengths) > self._MAX_FOLDER:
            return None
        return folder

    def _store_at(self, folder: tuple[str, ...]) -> Store:
        store = self._folder_store(folder, create=True)
        if store is None:  # pragma: no cover - create=True always opens one
            raise DriverError(f"cannot open the cache folder {'/'.join(folder)!r}")
        return store

    def _folder_store(self, folder: tuple[str, ...], *, create: bool) -> Store | None:
        """The open store of ``folder``, opening it if its database exists or ``create``; else ``None``."""
        if self._closed:
            raise DriverError(f"this {type(self).__name__} is closed; create a new one")
        with self._folders_lock:
            store = self._folders.get(folder)
            if store is not None:
                self._folders.move_to_end(folder)
                current = self._current(store, always=create, create=create)
                if current is None:
                    del self._folders[folder]  # deleted under us; a read does not bring it back
                else:
                    self._folders[folder] = current
                return current
            path = self.directory.joinpath(*map(_encode, folder))
            if not create and not (path / "cache.db").is_file():
                return None
            store = self._open_store(path)
            self._folders[folder] = store
            if len(self._folders) > self.max_open_folders:
                _, oldest = self._folders.popitem(last=False)
                # Closes this thread's connection; other threads' close when the store is garbage-collected.
                oldest.close()
            return store

    def _walk(self, prefix: str) -> Iterator[tuple[str, ...]]:
        """Folder segments of every database on disk that may hold keys under ``prefix`` (any process's)."""
        *complete, partial = prefix.split("/")
        complete_lower = [segment.lower() for segment in complete]
        partial_lower = partial.lower()

        def compatible(depth: int, segment: str) -> bool:
            # Compared case-insensitively: on macOS/Windows "region=EU" and "region=eu" share one folder, and
            # visiting a folder too many costs one indexed query, missing one would leave stale entries.
            if depth < len(complete_lower):
                return segment.lower() == complete_lower[depth]
            return depth > len(complete_lower) or segment.lower().startswith(partial_lower)

        def visit(path: Path, folder: tuple[str, ...], in_resource: bool) -> Iterator[tuple[str, ...]]:
            if in_resource and (path / "cache.db").is_file():
                yield folder
            try:
                with os.scandir(path) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except (FileNotFoundError, NotADirectoryError):
                return
            for entry in entries:
                # At and below a resource folder, every folder of ours has a "=": the others are diskcache's.
                if not entry.is_dir(follow_symlinks=False) or (in_resource and "=" not in entry.name):
                    continue
                if not folder and entry.name == self.DEFAULT_FOLDER:
                    continue
                segment = unquote(entry.name)
                if compatible(len(folder), segment):
                    yield from visit(
                        Path(entry.path), (*folder, segment), in_resource or segment.startswith("resource=")
                    )

        yield from visit(self.directory, (), False)

    def _partition_folders(
        self,
        resource: str,
        partition: str,
        partition_values: Mapping[str, object] | None,
        namespace: str | None,
    ) -> list[tuple[str, ...]]:
        # Key segments are percent-encoded, and lower-cased in a case-insensitive namespace: compare decoded
        # and case-insensitively. Clearing a partition that differs only in case costs a few misses; missing
        # the right one would leave stale entries.
        given = (partition_values or {}).items()
        wanted = {(str(field).lower(), str(value).lower()) for field, value in given}
        found = []
        for folder in self._walk("" if namespace is None else f"{namespace}/"):
            info = _describe(folder)
            if namespace is not None and info["namespace"] != namespace:
                continue
            if info["resource"].lower() != resource.lower():
                continue
            if (info["partition"] or "").lower() != partition.lower():
                continue
            values = {(field.lower(), value.lower()) for field, value in info["partition_values"].items()}
            if wanted <= values:
                found.append(folder)
        return found


# -- folders ------------------------------------------------------------------------------------------------


def _is_field(segment: str) -> bool:
    """Whether a key segment after ``partition=`` is a ``field=value`` of the partition."""
    return "=" in segment and not segment.startswith("action=")


def _encode(segment: str) -> str:
    """A filename for a key segment: percent-encoded, reversible with :func:`urllib.parse.unquote`."""
    encoded = quote(segment, safe="=-_.,+")
    return encoded.replace(".", "%2E") if encoded in {".", ".."} else encoded


def _describe(folder: tuple[str, ...]) -> dict[str, Any]:
    """Namespace, resource, partition and partition values named by a folder's segments (percent-decoded)."""
    index = next(i for i, segment in enumerate(folder) if segment.startswith("resource="))
    partition = unquote(folder[index + 1].partition("=")[2]) if len(folder) > index + 1 else None
    values = {}
    for segment in folder[index + 2 :]:
        field, _, value = segment.partition("=")
        values[unquote(field)] = unquote(value)
    return {
        "namespace": "/".join(folder[:index]),
        "resource": unquote(folder[index].partition("=")[2]),
        "partition": partition,
        "partition_values": values,
    }
