"""The S3 generation poll reads a few bytes of a token, however large the object (issue 19, item 6).

A client with write rights on the bucket plants a large object where the epoch (polled every second in every
process) and a scope's token live: before, each poll downloaded it whole. Now one ranged GET reads at most 9
bytes, and an object that is not a token reads as a private generation.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from cachekit import Cache
from cachekit.generations import store_for
from cachekit.generations.polled import TokenGenerations

pytestmark = pytest.mark.s3

PLANTED = 8 << 20


def test_a_planted_large_token_is_never_downloaded(s3_client: Any, s3_bucket: str) -> None:
    cache = Cache(driver="s3", namespace="tokens", config={"bucket": s3_bucket, "client": s3_client,
                                                           "key_prefix": "t/"})
    try:
        store = store_for(cache.driver)
        assert isinstance(store, TokenGenerations)
        cache.invalidate_resource("users")  # writes the scope's token and the epoch
        for key in ("t/~gen/tokens/~epoch", "t/~gen/tokens/users"):
            s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"\0" * PLANTED)  # another writer
        tracemalloc.start()
        try:
            epoch = store._read_epoch("tokens")
            (value,) = store.read("tokens", ["users"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < PLANTED // 4, f"the poll allocated {peak} bytes for a planted {PLANTED}-byte object"
        assert epoch is not None
        assert len(epoch) <= 9
        assert value < 0  # not a token of ours: private, never 0 or an older value
    finally:
        cache.close()


def test_real_tokens_still_round_trip(s3_client: Any, s3_bucket: str) -> None:
    cache = Cache(driver="s3", namespace="tokens", config={"bucket": s3_bucket, "client": s3_client,
                                                           "key_prefix": "t/"})
    try:
        store = store_for(cache.driver)
        (group,) = store.read("tokens", ["users"])  # never bumped: its group's token (written once)
        assert group > 0
        assert store.read("tokens", ["users"]) == [group]
        (bumped,) = store.bump("tokens", ["users"])
        assert bumped != group
        assert store.read("tokens", ["users"]) == [bumped]
        s3_client.put_object(Bucket=s3_bucket, Key="t/~gen/tokens/users", Body=b"")  # emptied by another writer
        assert store.read("tokens", ["users"])[0] < 0
    finally:
        cache.close()
