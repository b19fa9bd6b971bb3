"""Who may see which shared watch-list on this edge, and ending access the moment it ends.

A watch-list's members are in the list itself (``members`` of the stored document), so the
check needs the newest document: the hub's cached one when this edge follows the list, else the
last revision stored in the bucket. Every later revision passes through :meth:`WatchlistGate.intercept`
*before* it is fanned out: subscriptions and presence memberships of users it no longer names end
there (code 301), all of them when the list was deleted (code 201), so a revoked user never
receives the revision that revoked them.

While anything on this edge depends on a list's access (a subscription to ``watchlist:<id>`` or
``presence:watchlist.<id>``, a membership of ``watchlist.<id>``), the gate keeps the edge
following ``tm.wl.<id>`` with a silent sink in the hub, so a revocation is seen even by an edge
where nobody has the list itself open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

import orjson

from tickmesh.contracts.channels import WATCHLISTS_BUCKET, watchlist_of, watchlist_store_subject, watchlist_subject
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import SEQ_HEADER

from .hub import Hub
from .upstream import Upstream

log = logging.getLogger(__name__)

NOT_FOUND = "no such watch-list, or it is not shared with you"
STORE_STREAM = f"KV_{WATCHLISTS_BUCKET}"
_GUARD = "~gate"  # the hub channel name of the silent sink (no client channel has a "~")

OnEnd = Callable[[int, str], None]


class _Silent:
    """A hub sink that keeps a subject followed and drops what it gets."""

    codec = 0

    def push_event(self, frame: bytes, seq: int, ts: int | None = None) -> bool:
        return True

    def push_state(self, key: str, frame: bytes, now: float = 0.0, ts: int | None = None) -> bool:
        return True


def members_of(payload: bytes | None) -> set[str]:
    """The users a stored watch-list names (owner included); empty for anything unreadable."""
    if not payload:
        return set()
    try:
        doc = orjson.loads(payload)
        return {m["user"] for m in doc["members"]}
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return set()


class WatchlistGate:
    def __init__(self, hub: Hub, upstream: Upstream) -> None:
        self.hub = hub
        self.upstream = upstream
        self._deps: dict[str, dict[Hashable, tuple[str, OnEnd]]] = {}  # id -> key -> (user, on_end)
        self._guards: dict[str, _Silent] = {}

    # -- checks ----------------------------------------------------------------------------

    def permits(self, user: str | None, wl_id: str) -> bool | None:
        """From the document this edge holds: True/False, or None when it holds none."""
        snap = self.hub.snapshot(watchlist_subject(wl_id))
        if snap is None:
            return None
        return user in members_of(snap[1])

    async def allowed(self, user: str | None, wl_id: str) -> bool:
        """Whether ``user`` is a member of ``wl_id`` now (fetching the list when not held)."""
        held = self.permits(user, wl_id)
        if held is not None:
            return held
        fetched = await self.fetch(wl_id)
        return fetched is not None and user in members_of(fetched[1])

    async def fetch(self, wl_id: str) -> tuple[int, bytes] | None:
        """The last stored revision as ``(version, payload)``; None when there is none (or it was
        deleted, or NATS is away)."""
        nc = self.upstream.nc
        if nc is None or not nc.is_connected:
            return None
        try:
            msg = await nc.jetstream().get_last_msg(STORE_STREAM, watchlist_store_subject(wl_id))
        except Exception:  # no such list (or the bucket is not there yet)
            return None
        seq = msg.headers.get(SEQ_HEADER) if msg.headers else None
        if not msg.data or seq is None or not seq.isdigit():
            return None
        return int(seq), msg.data

    # -- dependencies ----------------------------------------------------------------------

    def depend(self, wl_id: str, key: Hashable, user: str, on_end: OnEnd) -> None:
        """Call ``on_end(code, reason)`` when ``user`` loses access to ``wl_id`` (or it is
        deleted), until :meth:`forget` ``key``. Synchronous: register right after checking."""
        deps = self._deps.setdefault(wl_id, {})
        deps[key] = (user, on_end)
        if wl_id not in self._guards:
            guard = self._guards[wl_id] = _Silent()
            subject = watchlist_subject(wl_id)
            self.hub.add(subject, _GUARD, guard, conflate=True)
            self.upstream.ensure_soon(subject)

    def forget(self, wl_id: str, key: Hashable) -> None:
        deps = self._deps.get(wl_id)
        if deps is None or deps.pop(key, None) is None or deps:
            return
        del self._deps[wl_id]
        guard = self._guards.pop(wl_id, None)
        subject = watchlist_subject(wl_id)
        if guard is not None and self.hub.remove(subject, _GUARD, guard):
            self.upstream.release_soon(subject)

    # -- every revision, before it is fanned out -------------------------------------------

    def intercept(self, subject: str, headers: dict[str, str] | None, payload: bytes) -> bool:
        """Called by the upstream for each ``tm.wl.<id>`` message; returns whether to fan it out."""
        wl_id = watchlist_of(subject)
        if wl_id is None:
            return True
        deleted = bool(headers and headers.get("KV-Operation"))
        members = set() if deleted else members_of(payload)
        code, reason = (
            (ErrorCode.UNKNOWN_CHANNEL, "the watch-list was deleted")
            if deleted
            else (ErrorCode.FORBIDDEN, "access to the watch-list was revoked")
        )
        for key, (user, on_end) in list(self._deps.get(wl_id, {}).items()):
            if user not in members:
                self.forget(wl_id, key)
                try:
                    on_end(int(code), reason)
                except Exception:  # one connection's trouble must not stop the others' revocation
                    log.exception("ending watch-list access failed", extra={"event": "watchlist.end_failed"})
        return not deleted
