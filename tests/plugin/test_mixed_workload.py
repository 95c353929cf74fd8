"""The mixed workload of the issue: 90 % reads, 10 % writes, 4 partitions, 2,000 operations, on moto's S3.

Every read is checked against a model of the data (``cachekit._tools.workload``): no read may be stale. Clearing the
whole resource on every write (the original's behaviour) is also never stale, but hits less often.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import CachePlugin
from cachekit._tools.workload import WorkloadResult, run_mixed_workload
from cachekit.s3db import Database
from tests.servers import MotoServer

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def run(db: Database, invalidation: str) -> WorkloadResult:
    db.use_plugin(CachePlugin(driver="memory", invalidation=invalidation))
    users = db.create_resource("users", partitions={"by_region": ["region"]})
    return run_mixed_workload(users, users.cache.stats, operations=2000, read_ratio=0.9, regions=4)


@pytest.fixture(scope="module")
def precise(moto_server: MotoServer) -> Iterator[WorkloadResult]:
    """The run with precise invalidation (the default), made once for this module's tests."""
    import boto3

    client: Any = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        with Database(client=client, bucket=f"cachekit-test-{uuid.uuid4().hex[:12]}", create_bucket=True) as db:
            yield run(db, "precise")
    finally:
        client.close()


def assert_sound(result: WorkloadResult) -> None:
    assert result.stale_reads == []
    assert result.operations == 2000
    assert result.reads + result.writes == 2000
    assert 0.85 < result.reads / result.operations < 0.95  # 90 % reads, give or take the seed's draws
    assert result.hits + result.misses >= result.reads  # every read went through the cache


def test_precise_invalidation_never_serves_a_stale_read(precise: WorkloadResult) -> None:
    assert_sound(precise)
    assert precise.hit_rate > 0.5


def test_resource_invalidation_is_never_stale_and_hits_less_than_precise(db: Database, precise: WorkloadResult) -> None:
    resource_wide = run(db, "resource")
    assert_sound(resource_wide)
    assert precise.hit_rate > resource_wide.hit_rate
    print(f"\nhit rate: precise {precise.hit_rate:.1%}, whole resource {resource_wide.hit_rate:.1%}")
