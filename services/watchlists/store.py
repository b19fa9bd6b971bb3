"""Watch-lists in the ``tm_watchlists`` KV bucket, written with a compare-and-set on the revision.

Every write names the revision it replaces (``Nats-Expected-Last-Subject-Sequence``), so two
writers can never overwrite each other: the second gets :class:`Stale` and must re-read. Each
write also carries ``Tm-Seq`` = the list's version; the bucket republishes the stored message,
headers included, on ``tm.wl.<id>``, which is how edges receive it in order with its version.
"""

from __future__ import annotations

from typing import Any

import orjson
from nats.js.errors import APIError, KeyNotFoundError, NotFoundError

from tickmesh.contracts.channels import WATCHLISTS_BUCKET, watchlist_store_subject
from tickmesh.contracts.messages import SEQ_HEADER

from .model import Watchlist

_WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream's codes for a failed compare-and-set


class Stale(Exception):
    """The list changed since it was read: read it again and redo the change."""


class WatchlistStore:
    def __init__(self, js: Any) -> None:
        self.js = js
        self.kv: Any = None

    async def start(self) -> None:
        self.kv = await self.js.key_value(WATCHLISTS_BUCKET)

    async def get(self, wl_id: str) -> tuple[Watchlist, int] | None:
        """The list and its revision, or ``None`` when there is none (or it was deleted)."""
        try:
            entry = await self.kv.get(wl_id)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return Watchlist.from_doc(orjson.loads(entry.value)), entry.revision

    async def write(self, wl: Watchlist, revision: int) -> int:
        """Store ``wl`` if the list is still at ``revision`` (0: if it does not exist yet)."""
        headers = {"Nats-Expected-Last-Subject-Sequence": str(revision), SEQ_HEADER: str(wl.version)}
        try:
            ack = await self.js.publish(watchlist_store_subject(wl.id), orjson.dumps(wl.doc()), headers=headers)
        except APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise Stale(wl.id) from None
            raise
        return ack.seq

    async def delete(self, wl_id: str) -> None:
        """Remove the list and all its revisions; subscribers see the marker on ``tm.wl.<id>``."""
        await self.kv.purge(wl_id)

    async def history(self, wl_id: str, limit: int) -> list[dict[str, Any]]:
        """The ``change`` of each stored revision, newest first, at most ``limit``.

        Walks the key's revisions with direct gets (next message on the subject after a
        sequence): a KV history watch can report "no more" before its messages arrive.
        """
        subject, stream = watchlist_store_subject(wl_id), f"KV_{WATCHLISTS_BUCKET}"
        changes: list[dict[str, Any]] = []
        seq = 1
        while True:
            try:
                msg = await self.js.get_msg(stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                break
            if msg.data and not (msg.headers and msg.headers.get("KV-Operation")):
                changes.append(orjson.loads(msg.data)["change"])
            else:
                changes.clear()  # a delete or purge: what came before is gone
            seq = msg.seq + 1
        return changes[::-1][:limit]
