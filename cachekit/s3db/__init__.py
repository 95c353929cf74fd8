"""A small S3 document store on boto3: a :class:`Database` of :class:`Resource` collections of JSON documents.

It is the store the cache plugin wraps, and it stands alone: it needs boto3 (``pip install
'cachekit-orm[s3]'``) and nothing from cachekit's caching layers. ``import cachekit`` does not import it.

Storage layout in the bucket (``{prefix}/`` is absent when the database has no prefix)::

    {prefix}/resource={name}/data/id={id}.json                              one JSON object per document
    {prefix}/resource={name}/partition={p}/{field}={value}[/...]/id={id}    partition index entry, empty body

Ids, field names and partition values are URL-quoted in keys. Every write keeps the partition index in step
with the documents, and partition reads (``list``, ``list_ids``, ``count``, ``page``, ``query`` with
``partition=``) list only that partition's index prefix. See :mod:`cachekit.s3db.database` for the details.

E.g.::

    from cachekit.s3db import Database

    db = Database.connect("s3://KEY:SECRET@bucket/app?endpoint=http://127.0.0.1:5055", create_bucket=True)
    users = db.create_resource("users", partitions={"by_region": ["region"]})
    users.insert({"id": "u1", "name": "Ada", "region": "eu"})
    users.update("u1", {"region": "us"})
    users.list(partition="by_region", partition_values={"region": "us"})   # -> [{"id": "u1", ...}]
    db.close()
"""

from __future__ import annotations

try:
    import botocore  # noqa: F401  # every module below needs it; say which extra brings it
except ImportError as exc:
    raise ModuleNotFoundError(
        f"cachekit.s3db needs boto3 and botocore ({exc}): pip install 'cachekit-orm[s3]'", name=exc.name
    ) from exc

from .database import (
    Change,
    ChangeListener,
    Database,
    Document,
    PartitionValues,
    Plugin,
    Resource,
    ResourceCallback,
    S3Url,
    encode_partition_value,
)
from .errors import AlreadyExists, NotFound, PartitionError, S3dbError, ValidationError

__all__ = [
    "AlreadyExists",
    "Change",
    "ChangeListener",
    "Database",
    "Document",
    "NotFound",
    "PartitionError",
    "PartitionValues",
    "Plugin",
    "Resource",
    "ResourceCallback",
    "S3Url",
    "S3dbError",
    "ValidationError",
    "encode_partition_value",
]
