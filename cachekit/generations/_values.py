"""What a generation value read from a store may be (issue 19): the range of unsigned counters, and the private
value that anything else reads as. No dependency: the Redis, filesystem and S3 stores and the notification
parser all use it."""

from __future__ import annotations

import random
from typing import Final

__all__ = ["COUNTER_LIMIT", "private_value"]

#: Unsigned counters are below this (clock µs plus bumps, about 2^51 today; exact in Lua's doubles). A larger
#: number is another writer's: it reads as unknown, and its + 1 would overflow what a record or INCR holds.
COUNTER_LIMIT: Final = 1 << 53


def private_value() -> int:
    """A generation no other process uses (negative, random): what an unparsable record reads as."""
    return -random.getrandbits(48) - 1
