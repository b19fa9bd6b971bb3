"""Flags, live: the one Python API services and edges read evaluated flags through.

::

    flags = await Flags.open(nc)                      # watches tm_flags; ready once replayed
    if flags.value("ws.msgpack", Subject(user, roles, ents), False): ...
    stop = flags.on_change(lambda names: ...)         # after every change and schedule boundary
    await flags.close()

Guarantees: every process that has seen the same bucket revision evaluates every subject to the
same values (:mod:`.evaluate`); a stored change reaches :meth:`Flags.on_change` listeners as soon
as the KV watch delivers it (NATS push, no polling), and a schedule boundary at its time. A
definition that fails validation counts as absent (logged), the same in every process. If the
watch breaks it is restarted with backoff from a fresh replay, and listeners hear of whatever
differs. Evaluations are counted per flag and variant (``tickmesh_flag_evaluations_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from tickmesh import metrics
from tickmesh.backoff import Backoff

from .evaluate import Evaluation, FlagSet, evaluate
from .model import Flag, FlagError, Subject
from .store import ensure

log = logging.getLogger(__name__)

Listener = Callable[[frozenset[str]], None]
_NOBODY = Subject()


def _now_us() -> int:
    return time.time_ns() // 1000


class Flags:
    def __init__(self, kv: Any, *, nc: Any = None, clock: Callable[[], int] = _now_us) -> None:
        self.kv = kv
        self._nc = nc  # when given, a reconnect restarts the watch at once (see _follow)
        self.clock = clock
        self.set = FlagSet()
        self.ready = asyncio.Event()
        self._listeners: list[Listener] = []
        self._task: asyncio.Task | None = None
        self._timer: asyncio.Task | None = None
        self._rescheduled = asyncio.Event()

    @classmethod
    async def open(cls, nc: Any, *, ready_timeout: float = 5.0, **kw: Any) -> Flags:
        """Ensure the bucket, start following it, and wait (at most ``ready_timeout`` s) until the
        stored flags are replayed. Until then every flag evaluates to the caller's default."""
        flags = cls(await ensure(nc.jetstream()), nc=nc, **kw)
        flags.start()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(flags.ready.wait(), ready_timeout)
        return flags

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._follow())
            self._timer = asyncio.ensure_future(self._schedule())

    async def close(self) -> None:
        for task in (self._task, self._timer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._timer = None

    # -- reading -------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self.set.revision

    def version(self, now_us: int | None = None) -> int:
        return self.set.version(self.clock() if now_us is None else now_us)

    def get(self, name: str) -> Flag | None:
        return self.set.get(name)

    def evaluate(self, name: str, subject: Subject = _NOBODY) -> Evaluation | None:
        """``name``'s value for ``subject``, or ``None`` when there is no such flag."""
        flag = self.set.get(name)
        if flag is None:
            metrics.flag_evaluated(name, "missing")
            return None
        result = evaluate(flag, subject, self.clock())
        metrics.flag_evaluated(name, result.variant)
        return result

    def value(self, name: str, subject: Subject = _NOBODY, default: Any = None) -> Any:
        """The value, or ``default`` when the flag does not exist (yet)."""
        result = self.evaluate(name, subject)
        return default if result is None else result.value

    def evaluate_all(self, subject: Subject, names: Iterable[str] | None = None) -> dict[str, Evaluation]:
        """Every flag's value for ``subject`` (what the ``flags`` channel carries), or only
        those of ``names`` that exist."""
        results = self.set.evaluate_all(subject, self.clock(), names)
        counts = Counter((name, r.variant) for name, r in results.items())
        for (name, variant), n in counts.items():
            metrics.flag_evaluated(name, variant, n)
        return results

    def on_change(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(names)`` after flags change (stored change, deletion, schedule
        boundary); it runs in the event loop and must not block. Returns the disposer."""
        self._listeners.append(listener)

        def dispose() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return dispose

    # -- following the bucket --------------------------------------------------------------------

    def _notify(self, names: frozenset[str]) -> None:
        if not names:
            return
        self._rescheduled.set()
        for listener in list(self._listeners):
            try:
                listener(names)
            except Exception:
                log.exception("a flag listener failed", extra={"event": "flags.listener_failed"})

    @staticmethod
    def _decode(entry: Any) -> Flag | None:
        if entry.operation in ("DEL", "PURGE") or not entry.value:
            return None
        try:
            return Flag.decode(entry.key, entry.value)
        except FlagError as exc:
            log.warning("flag %s ignored: %s", entry.key, exc.reason, extra={"event": "flags.bad_entry"})
            return None

    def _reconnects(self) -> int:
        stats = getattr(self._nc, "stats", None)
        return int(stats.get("reconnects", 0)) if isinstance(stats, dict) else 0

    async def _follow(self) -> None:
        """Follow the bucket; start over from a fresh replay when the watch breaks or NATS
        reconnects (the library's ordered consumer would notice only after its idle heartbeats,
        tens of seconds; a kill switch must not wait that long)."""
        backoff = Backoff(base=0.5, cap=10.0)
        while True:
            seen = self._reconnects()
            task = asyncio.ensure_future(self._follow_once())
            try:
                while not task.done() and self._reconnects() == seen:
                    await asyncio.wait([task], timeout=0.25)
            finally:
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._reconnects() != seen:
                backoff.succeeded()
                continue  # the replay after a reconnect is what the reconnect is for: at once
            error = None if task.cancelled() else task.exception()
            log.warning("flag watch ended (%s); restarting", error or "stopped", extra={"event": "flags.watch_restart"})
            await asyncio.sleep(backoff.next_delay(asyncio.get_running_loop().time()))

    async def _follow_once(self) -> None:
        watcher = await self.kv.watchall()
        fresh: FlagSet | None = FlagSet()  # the replay builds a new set, swapped in at its end
        try:
            async for entry in watcher:
                if entry is None:
                    if fresh is not None:
                        self._swap(fresh)
                        fresh = None
                    continue
                flag = self._decode(entry)
                if fresh is not None:
                    fresh.apply(entry.key, flag, entry.revision)
                elif self.set.apply(entry.key, flag, entry.revision):
                    self._notify(frozenset((entry.key,)))
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    def _swap(self, fresh: FlagSet) -> None:
        old = self.set
        changed = frozenset(n for n in old.flags.keys() | fresh.flags.keys() if old.flags.get(n) != fresh.flags.get(n))
        fresh.revision = max(fresh.revision, old.revision)
        self.set = fresh
        self.ready.set()
        self._notify(changed)

    async def _schedule(self) -> None:
        """Wake listeners at each schedule boundary (a flag turning on at 09:00 needs no write)."""
        while True:
            self._rescheduled.clear()
            upcoming = self.set.next_boundary(self.clock())
            timeout = None if upcoming is None else max(0.0, (upcoming[0] - self.clock()) / 1e6) + 0.001
            try:
                await asyncio.wait_for(self._rescheduled.wait(), timeout)
                continue
            except TimeoutError:
                pass
            if upcoming is not None and self.clock() >= upcoming[0]:
                self._notify(upcoming[1])
