"""Scope groups (issue 19): what a scope without a record of its own reads as, in authenticated stores.

Each namespace hashes its scopes into :data:`GROUPS` groups, each with a record of its own under the scope name
``~group/NNNN`` (``~group/0000`` to ``~group/1023``). A scope's effective generation is its own value when it
has one, else its group's. A group record that is missing (never created, deleted, expired) or refused (not
sealed by the namespace's key, not a value cachekit writes) is *unknown*: a fresh value is written for the
group, which only invalidates, never rolls back. Reads of scopes never bumped therefore create at most
:data:`GROUPS` records per namespace, whatever the number of distinct ids read.

A bump of a scope first raises its group to a fresh value (above every value the scope or the group had, for
ordered stores; a new random token otherwise), then gives the scope that same value. So deleting a bumped
scope's own record (or losing it: expired, evicted, dropped for a cap) makes it read its group's current value:
the scope's current value, or a later one, never one its pre-bump entries were stored under. No rollback
without a recorded older value (see ``docs/architecture.md``), and a process that knew the scope's value reads
the same one again (no regression against its high-water mark, no bump).

Group raises are not published: scopes that read as the group value were not written, so the copies other
processes hold stay correct; a process that reads such a scope afresh misses once (collateral misses).

The names cannot collide with a user scope: every scope is ``*`` or starts with a resource segment, and
:func:`cachekit.scopes.resource_scope` refuses resource names starting with ``~`` after quoting and folding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

__all__ = ["GROUPS", "GROUP_PREFIX", "group_of", "groups_of"]

#: Groups per namespace: the bound on the records reads create (1024 small records: ~100 KB in Redis), against
#: collateral misses (a bump makes the never-bumped scopes of its group, 1/1024 of them, miss in views that
#: read them afresh).
GROUPS: Final = 1024
#: The scope name of a group starts with this (followed by four digits).
GROUP_PREFIX: Final = "~group/"


def group_of(scope: str) -> str:
    """The group scope of ``scope``: ``~group/`` and four digits, from a hash of its name."""
    digest = hashlib.blake2b(scope.encode(), digest_size=8, person=b"cachekit-group").digest()
    return f"{GROUP_PREFIX}{int.from_bytes(digest, 'big') % GROUPS:04d}"


def groups_of(scopes: Sequence[str]) -> dict[str, list[int]]:
    """The distinct groups of ``scopes``, each with the indexes of its scopes (in order of first appearance)."""
    found: dict[str, list[int]] = {}
    for index, scope in enumerate(scopes):
        found.setdefault(group_of(scope), []).append(index)
    return found
