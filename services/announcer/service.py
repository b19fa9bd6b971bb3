"""``tickmesh service announcer``: ``announcement.publish`` (admins only), now or at a start time.

An announcement due now is published at once; a scheduled one is held (in memory: see the
report for the bucket that would make it survive a restart) and published at its start, unless
it has expired by then. Each one goes to ``TM_ANNOUNCEMENTS`` (the last N are replayed to new
connections) with ``Nats-Msg-Id`` = its id, which is derived from (user, cmd_id): a retried
command is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from typing import Any

from tickmesh import streams
from tickmesh.contracts.channels import Channel, Kind
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import CommandRequest
from tickmesh.publish import Publisher, now_us, stable_id
from tickmesh.services.runner import CommandError, run_service, serve_commands, wait_wake_or_stop

from .schedule import AnnouncementError, Schedule, due_now, prepare
from .settings import AnnouncerSettings

log = logging.getLogger(__name__)

RECENT_REPLIES = 1000  # retries of older commands are still stored once (Nats-Msg-Id)


class Announcer:
    def __init__(self, publisher: Publisher, *, default_ttl_s: float) -> None:
        self.publisher = publisher
        self.default_ttl_us = int(default_ttl_s * 1_000_000)
        self.schedule = Schedule()
        self.wake = asyncio.Event()
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # replies to repeat on a retry

    async def publish_command(self, req: CommandRequest) -> dict[str, Any]:
        if "admin" not in req.roles:  # the edge checks roles too: defence in depth
            raise CommandError(ErrorCode.FORBIDDEN, "announcements need the admin role")
        now = now_us()
        try:
            ann = prepare(
                req.data, ann_id=stable_id("ann", req.user, req.cmd_id), now=now, default_ttl_us=self.default_ttl_us
            )
        except AnnouncementError as exc:
            raise CommandError(exc.code, exc.reason) from None
        if ann["id"] in self._recent:  # a retried command: same reply, nothing sent twice
            return self._recent[ann["id"]]
        if due_now(ann, now):
            return self._remember(await self._publish(ann))
        self.schedule.add(ann)
        self._remember(ann)
        self.wake.set()
        log.info(
            "announcement %s scheduled", ann["id"], extra={"event": "announcer.scheduled", "announcement_id": ann["id"]}
        )
        return ann

    def _remember(self, reply: dict[str, Any]) -> dict[str, Any]:
        self._recent[reply["id"]] = reply
        while len(self._recent) > RECENT_REPLIES:
            self._recent.popitem(last=False)
        return reply

    async def _publish(self, ann: dict[str, Any]) -> dict[str, Any]:
        out = {**ann, "ts": now_us()}
        await self.publisher.publish(Channel(Kind.ANNOUNCEMENTS), out)
        log.info(
            "announcement %s published", ann["id"], extra={"event": "announcer.published", "announcement_id": ann["id"]}
        )
        return out

    async def run(self, stop: asyncio.Event) -> None:
        """Publish scheduled announcements as they start, until ``stop``."""
        while not stop.is_set():
            self.wake.clear()
            due, expired = self.schedule.pop_due(now_us())
            for ann in expired:
                log.info(
                    "announcement %s expired before its start",
                    ann["id"],
                    extra={"event": "announcer.expired", "announcement_id": ann["id"]},
                )
            for ann in due:
                try:
                    await self._publish(ann)
                except Exception:
                    log.exception("publishing an announcement failed", extra={"event": "announcer.failed"})
                    self.schedule.add(ann)  # retried on the next pass
            nxt = self.schedule.next_start()
            timeout = None if nxt is None else max((nxt - now_us()) / 1e6, 0.0)
            if due and nxt is not None and nxt <= now_us():
                timeout = 0.5  # a failed publish: do not spin
            await wait_wake_or_stop(self.wake, stop, timeout)


async def serve(settings: AnnouncerSettings, nc, stop: asyncio.Event) -> None:
    js = nc.jetstream()
    await streams.ensure(js)
    announcer = Announcer(Publisher(nc), default_ttl_s=settings.default_ttl)
    subs = await serve_commands(nc, "announcer", {"announcement.publish": announcer.publish_command})
    log.info("announcer running", extra={"event": "announcer.started"})
    try:
        await announcer.run(stop)
    finally:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if len(announcer.schedule):
            log.warning(
                "%d scheduled announcements dropped at shutdown",
                len(announcer.schedule),
                extra={"event": "announcer.dropped"},
            )
        log.info("announcer stopped", extra={"event": "announcer.stopped"})


SETTINGS = AnnouncerSettings


def main() -> None:
    run_service("announcer", AnnouncerSettings, serve)
