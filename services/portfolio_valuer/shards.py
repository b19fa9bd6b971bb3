"""Which valuer instance values which users: the sans-I/O core of portfolio-valuer's sharding.

Users are split into ``VALUER_SHARDS`` shards by a stable hash of their id (:func:`shard_of`).
Every instance has a *home* shard (``VALUER_SHARD``, or its StatefulSet ordinal) and announces
itself with a member lease in the ``tm_valuer_shards`` bucket; who values a shard follows from the
live members alone (:func:`assignment`), so every instance computes the same answer:

* a shard whose home instance is alive is valued by it (the smallest instance id if two claim
  the same home, a misconfiguration);
* a shard whose home instance is gone is valued by the live member that wins a rendezvous hash
  of (shard, member): the orphans of one lost instance spread over the others, and a shard does
  not move again when some other member comes or goes.

Holding a shard takes its *shard lease* (a key created only when absent, renewed by
compare-and-set, with a per-key TTL), so two instances never value one shard at once while NATS
works: :func:`plan` says which free shards an instance should take and which it must hand back.
Instances started with another ``VALUER_SHARDS`` (a resize in progress) are not members of this
partitioning and use leases of their own (the count is part of the key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def shard_of(user: str, shards: int) -> int:
    """The shard (0 .. shards-1) that values ``user``: stable across processes and restarts."""
    if shards == 1:
        return 0
    return _hash(user) % shards


def assignment(shards: int, members: Mapping[str, int]) -> dict[int, str]:
    """Shard -> the member (instance id) that should value it, from the live ``members``
    (instance id -> home shard). Empty when no member is alive."""
    if not members:
        return {}
    homes: dict[int, str] = {}
    for member in sorted(members):
        homes.setdefault(members[member], member)
    alive = sorted(members)
    return {s: homes.get(s) or max(alive, key=lambda m: _hash(f"{s}/{m}")) for s in range(shards)}


def plan(
    me: str,
    shards: int,
    members: Mapping[str, int],
    owners: Mapping[int, str],
    mine: set[int] | frozenset[int],
    *,
    adopt: bool = True,
) -> tuple[list[int], list[int]]:
    """``(take, give_back)`` for instance ``me``: the shards it should lease now (those assigned
    to it whose lease is free) and those it holds but are assigned to another (to release, so
    that one can take them). ``owners`` are the shard leases seen in the bucket (shard -> holder),
    ``mine`` the shards ``me`` holds. ``adopt=False`` takes the home shard only: an instance that
    has just started has not yet seen the others announce themselves, and must not take their
    shards in the meantime."""
    wanted = {s for s, m in assignment(shards, members).items() if m == me and (adopt or s == members.get(me))}
    take = sorted(s for s in wanted - set(mine) if s not in owners)
    give_back = sorted(set(mine) - wanted)
    return take, give_back
