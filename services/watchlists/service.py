"""``tickmesh service watchlists``: the ``watchlist.*`` commands.

Every change is a read, a pure change (:mod:`.model`) and a compare-and-set write (:mod:`.store`);
when another writer won the race, the list is read again and the change redone on it, so
concurrent edits from any number of edges and service instances merge or are refused by the
rules of the model, and none is lost. The bucket republishes each stored revision on
``tm.wl.<id>``; this service publishes nothing else.

For ``watchlist.list`` it follows the bucket and keeps, per user, the lists they have (several
instances each keep their own copy; a change is visible to all of them within milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tickmesh import streams
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import CommandRequest
from tickmesh.contracts.instruments import instruments
from tickmesh.publish import now_us
from tickmesh.services.common.buckets import follow
from tickmesh.services.runner import CommandError, run_service, serve_commands

from . import model
from .model import Watchlist, WatchlistError
from .settings import WatchlistsSettings
from .store import Stale, WatchlistStore

log = logging.getLogger(__name__)


def tradable(symbol: str) -> bool:
    return symbol in instruments()


class Index:
    """Which lists each user has: id -> list, user -> ids (owner and members)."""

    def __init__(self) -> None:
        self.lists: dict[str, Watchlist] = {}
        self.by_user: dict[str, set[str]] = {}

    def apply(self, wl_id: str, wl: Watchlist | None) -> None:
        old = self.lists.pop(wl_id, None)
        if old is not None and (wl is None or old.version <= wl.version):
            for user in (old.owner, *old.members):
                self.by_user.get(user, set()).discard(wl_id)
        elif old is not None:  # an older revision than the one held: keep the newer
            self.lists[wl_id] = old
            return
        if wl is not None:
            self.lists[wl_id] = wl
            for user in (wl.owner, *wl.members):
                self.by_user.setdefault(user, set()).add(wl_id)

    def of(self, user: str) -> list[Watchlist]:
        return [self.lists[i] for i in self.by_user.get(user, ()) if i in self.lists]

    def owned(self, user: str) -> int:
        return sum(1 for wl in self.of(user) if wl.owner == user)


class Watchlists:
    def __init__(self, store: WatchlistStore, settings: WatchlistsSettings) -> None:
        self.store = store
        self.settings = settings
        self.index = Index()

    def _id(self, req: CommandRequest) -> str:
        wl_id = req.data["id"]
        if not model.valid_id(wl_id):  # same answer as a list that exists but is not shared
            raise CommandError(ErrorCode.FORBIDDEN, model.NOT_FOUND)
        return wl_id

    async def _change(self, wl_id: str, change: Callable[[Watchlist | None], Any]) -> Any:
        """Read, change, compare-and-set; on a lost race, again. ``change`` returns the new list
        (or ``(list, extra)``); returning the list it was given means nothing to write."""
        for _ in range(self.settings.max_attempts):
            got = await self.store.get(wl_id)
            current, revision = got if got is not None else (None, 0)
            try:
                result = change(current)
            except WatchlistError as exc:
                raise CommandError(exc.code, exc.reason, exc.data) from None
            wl = result[0] if isinstance(result, tuple) else result
            if wl is current:
                return result
            try:
                await self.store.write(wl, revision)
            except Stale:
                continue
            self.index.apply(wl.id, wl)
            return result
        raise CommandError(ErrorCode.TIMEOUT, "the list is changing too fast; retry with the same key")

    # -- commands --------------------------------------------------------------------------

    async def create(self, req: CommandRequest) -> dict[str, Any]:
        try:
            wl = model.create(
                user=req.user,
                name=req.data["name"],
                symbols=req.data.get("symbols", ()),
                now_us=now_us(),
                tradable=tradable,
                owned=self.index.owned(req.user),
            )
        except WatchlistError as exc:
            raise CommandError(exc.code, exc.reason) from None
        await self.store.write(wl, 0)  # a fresh random id: the create cannot lose a race
        self.index.apply(wl.id, wl)
        log.info("watch-list created", extra={"event": "watchlist.created", "user": req.user})
        return {"watchlist": wl.doc()}

    async def list(self, req: CommandRequest) -> dict[str, Any]:
        lists = sorted(self.index.of(req.user), key=lambda w: (w.name.lower(), w.id))
        return {"watchlists": [wl.summary(req.user) for wl in lists]}

    async def edit(self, req: CommandRequest) -> dict[str, Any]:
        wl_id = self._id(req)
        now = now_us()
        wl, merged = await self._change(
            wl_id,
            lambda cur: model.edit(
                cur, user=req.user, base=req.data["base"], ops=req.data["ops"], now_us=now, tradable=tradable
            ),
        )
        return {"watchlist": wl.doc(), "merged": merged}

    async def share(self, req: CommandRequest) -> dict[str, Any]:
        wl_id = self._id(req)
        now = now_us()
        wl = await self._change(
            wl_id,
            lambda cur: model.share(cur, user=req.user, target=req.data["user"], role=req.data["role"], now_us=now),
        )
        return {"watchlist": wl.doc()}

    async def unshare(self, req: CommandRequest) -> dict[str, Any]:
        wl_id = self._id(req)
        now = now_us()
        wl = await self._change(
            wl_id, lambda cur: model.unshare(cur, user=req.user, target=req.data["user"], now_us=now)
        )
        log.info("watch-list access ended", extra={"event": "watchlist.unshared", "user": req.user})
        return {"watchlist": wl.doc() if wl.role_of(req.user) else None}

    async def history(self, req: CommandRequest) -> dict[str, Any]:
        wl_id = self._id(req)
        got = await self.store.get(wl_id)
        try:
            model.check_read(got[0] if got else None, req.user)
        except WatchlistError as exc:
            raise CommandError(exc.code, exc.reason) from None
        return {"changes": await self.store.history(wl_id, self.settings.history)}

    async def delete(self, req: CommandRequest) -> dict[str, Any]:
        wl_id = self._id(req)
        got = await self.store.get(wl_id)
        wl = got[0] if got else None
        if wl is None or wl.role_of(req.user) is None:
            raise CommandError(ErrorCode.FORBIDDEN, model.NOT_FOUND)
        if wl.owner != req.user:
            raise CommandError(ErrorCode.FORBIDDEN, "only the owner may delete the list")
        await self.store.delete(wl_id)
        self.index.apply(wl_id, None)
        log.info("watch-list deleted", extra={"event": "watchlist.deleted", "user": req.user})
        return {"id": wl_id}

    def handlers(self) -> dict[str, Callable[[CommandRequest], Awaitable[dict[str, Any]]]]:
        return {
            "watchlist.create": self.create,
            "watchlist.list": self.list,
            "watchlist.edit": self.edit,
            "watchlist.share": self.share,
            "watchlist.unshare": self.unshare,
            "watchlist.history": self.history,
            "watchlist.delete": self.delete,
        }

    async def follow(self, ready: asyncio.Event) -> None:
        def decode(key: str, value: bytes | None) -> tuple[str, Watchlist | None]:
            return key, (Watchlist.from_doc(orjson.loads(value)) if value else None)

        def apply(item: tuple[str, Watchlist | None], initial: bool) -> None:
            self.index.apply(*item)

        await follow(self.store.kv, decode, apply, ready=ready, what="watch-list", event="watchlist.bad_entry")


async def serve(settings: WatchlistsSettings, nc: Any, stop: asyncio.Event) -> None:
    js = nc.jetstream()
    await streams.ensure(js)
    store = WatchlistStore(js)
    await store.start()
    service = Watchlists(store, settings)
    ready = asyncio.Event()
    following = asyncio.ensure_future(service.follow(ready))
    await asyncio.wait([asyncio.ensure_future(ready.wait()), following], return_when=asyncio.FIRST_COMPLETED)
    if following.done():
        following.result()  # the bucket could not be followed: fail loudly
    subs = await serve_commands(nc, "watchlists", service.handlers())
    log.info("watchlists running: %d lists", len(service.index.lists), extra={"event": "watchlists.started"})
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([stopper, following], return_when=asyncio.FIRST_COMPLETED)
        if following.done():
            following.result()
    finally:
        stopper.cancel()
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await following


SETTINGS = WatchlistsSettings


def main() -> None:
    run_service("watchlists", WatchlistsSettings, serve)
