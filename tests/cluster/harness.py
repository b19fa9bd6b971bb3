"""What the failover tests drive: a publisher that numbers its events, clients that follow a
channel across edges and count gaps and duplicates by position, an order flow that retries with
the same key, and the figures they measure.

All of it runs in the test's event loop against real processes (nats-server nodes, edges, the
broker); times are ``time.monotonic()`` of this process, so a message's latency is its arrival
at a client minus the moment the publisher started publishing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.timing import t
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh.publish import Publisher, PublishError

RETRYABLE = {501, 502}  # codes.toml: service unavailable / slow: retry with the same key


class Feed:
    """Publishes notifications ``<tag>-<user>-0``, ``-1``, ... for ``users`` at ``rate`` per second
    through tickmesh.publish (stored once per id, acknowledged by JetStream). A publish that
    fails is retried with the same id, so each number is stored exactly once whatever happens to
    the cluster; ``sent[n]`` is when number n was first attempted."""

    def __init__(self, publisher: Publisher, users: list[str], tag: str, rate: float = 20.0) -> None:
        self.publisher, self.users, self.tag, self.rate = publisher, users, tag, rate
        self.sent: dict[int, float] = {}
        self.acked: dict[int, float] = {}  # when number n was stored for every user
        self.count = 0
        self.retries = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> Feed:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sent[n] = time.monotonic()
            for user in self.users:
                while True:
                    try:
                        await self.publisher.notify(user, f"event {n}", id=f"{self.tag}-{user}-{n}")
                        break
                    except PublishError:
                        self.retries += 1
                        await asyncio.sleep(0.1)
            self.acked[n] = time.monotonic()
            n += 1
            self.count = n
            next_at += 1 / self.rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def stop(self) -> int:
        """Stop after the number in flight; the count of numbers published."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, t(60))
        return self.count


@dataclass
class Follower:
    """One user's client on ``channel``, first on ``edges()[first]``. It resumes from its own
    position (``since``) on another edge whenever its connection ends or the edge asks it to
    ``reconnect``, the way the TypeScript client does. It counts, by position: every message
    whose ``seq`` is not above the last one is a duplicate; the numbers it got tell the gaps."""

    user: str
    edges: Callable[[], list[str]]
    first: int
    tag: str
    channel: str = "notifications"
    received: dict[int, float] = field(default_factory=dict)  # number -> arrival time
    duplicates: list[int] = field(default_factory=list)
    statuses: list[tuple[float, str]] = field(default_factory=list)
    ends: list[tuple[float, Any]] = field(default_factory=list)  # (when, close code or reason)
    reconnect_frames: int = 0
    retried_subs: int = 0  # subscribes answered 501/502 (retryable), tried again
    sessions: list[int] = field(default_factory=list)  # index of the edge of each session
    position: tuple[str, int] | None = None
    failure: str | None = None  # a broken promise seen mid-run (e.g. a resume refused)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None

    def start(self) -> Follower:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        index = self.first
        while not self._stop.is_set():
            urls = self.edges()
            try:
                moved = await self._session(urls[index % len(urls)], index % len(urls))
            except AssertionError as exc:
                self.failure = str(exc)
                self.ready.set()
                return
            except Exception as exc:  # the connection ended or could not start: resume elsewhere
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                self.ends.append((time.monotonic(), code if code is not None else type(exc).__name__))
                moved = True
                await asyncio.sleep(0.05 + random.random() * 0.1)
            if moved:
                index += 1  # the other edge

    async def _session(self, url: str, index: int) -> bool:
        client = await Client.login(url, token(self.user))
        try:
            fields: dict[str, Any] = {"ch": self.channel}
            if self.position is not None:
                fields["since"] = {"epoch": self.position[0], "seq": self.position[1]}
            reply, seen = await client.request("sub", **fields)
            if reply["op"] == "err" and reply["code"] in RETRYABLE:  # what every client does: again, shortly
                self.retried_subs += 1
                await asyncio.sleep(0.2 + random.random() * 0.3)
                return False
            assert reply["op"] == "ok", reply
            if self.position is None:
                self.position = (reply["epoch"], reply["seq"])
            else:  # a resume: everything after our position follows (replayed, then live)
                assert reply["recovered"] is True and reply["epoch"] == self.position[0], f"{self.user}: {reply}"
            for frame in seen:
                self._frame(frame)
            self.sessions.append(index)
            self.ready.set()
            while not self._stop.is_set():
                frame = await client.recv(timeout=60)
                if frame.get("op") == "reconnect":
                    self.reconnect_frames += 1
                    await asyncio.sleep(frame.get("after_ms", 0) / 1000)
                    return True
                self._frame(frame)
                if frame.get("op") == "ping":
                    await client.send({"op": "pong"})
            return False
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    def _frame(self, frame: dict[str, Any]) -> None:
        now = time.monotonic()
        op = frame.get("op")
        if op == "status":
            self.statuses.append((now, frame["state"]))
        elif op == "msg" and frame.get("ch") == self.channel:
            seq = frame["seq"]
            ident = frame["data"].get("id", "")
            if not ident.startswith(f"{self.tag}-{self.user}-"):
                return
            n = int(ident.rsplit("-", 1)[1])
            if self.position is not None and seq <= self.position[1]:
                self.duplicates.append(n)
                return
            self.position = (self.position[0] if self.position else "", seq)
            if n in self.received:
                self.duplicates.append(n)
            else:
                self.received[n] = now

    def missing(self, count: int) -> list[int]:
        return [n for n in range(count) if n not in self.received]

    def latencies(self, sent: dict[int, float], since: float = 0.0) -> list[float]:
        return [self.received[n] - sent[n] for n in self.received if n in sent and sent[n] >= since]


async def wait_all_received(followers: list[Follower], count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + t(timeout)
    while time.monotonic() < deadline:
        if all(not f.missing(count) for f in followers):
            return
        await asyncio.sleep(0.05)


def check_exactly_once(followers: list[Follower], count: int) -> None:
    """Every follower got each of ``count`` numbers once: no gap, no duplicate."""
    problems = []
    for f in followers:
        missing = f.missing(count)
        if f.failure or missing or f.duplicates:
            problems.append(
                f"{f.user}: failure {f.failure}, missed {len(missing)} of {count} (first {missing[:5]}), "
                f"duplicates {f.duplicates[:5]}; sessions on edges {f.sessions}, ends {f.ends}, "
                f"statuses {[s for _, s in f.statuses]}"
            )
    assert not problems, "\n".join(problems)


@dataclass
class Orders:
    """Market orders of one share, one after another, on a WebSocket of ``user``, each with its
    own ``key``; a 501/502 is retried with the same key until it succeeds. Any other error fails."""

    user: str
    url: Callable[[], str]
    symbol: str
    keys: list[str] = field(default_factory=list)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)
    took: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (first sent, answered ok)
    errors: list[dict[str, Any]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None

    def start(self) -> Orders:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        client = await Client.login(self.url(), token(self.user))
        try:
            n = 0
            while not self._stop.is_set():
                key = f"{self.user}-{n}"
                self.keys.append(key)
                await self._submit(client, key)
                n += 1
                await asyncio.sleep(0.2)
        finally:
            await client.close()

    async def _submit(self, client: Client, key: str) -> None:
        data = {"client_order_id": key, "symbol": self.symbol, "side": "buy", "type": "market", "quantity": "1"}
        first = time.monotonic()
        while True:
            try:
                reply, _ = await client.request("cmd", timeout=20, name="order.submit", key=key, data=data)
            except TimeoutError:
                self.retried[key] = self.retried.get(key, 0) + 1
                continue
            if reply["op"] == "ok":
                self.replies[key] = reply["data"]
                self.took[key] = (first, time.monotonic())
                return
            if reply.get("code") in RETRYABLE:
                self.retried[key] = self.retried.get(key, 0) + 1
                await asyncio.sleep(0.2)
                continue
            self.errors.append(reply)
            return

    def done_after(self, when: float) -> int:
        """Orders first sent after ``when`` and answered ok."""
        return sum(1 for first, _ in self.took.values() if first > when)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, t(90))


async def follow(users: list[str], edges: Callable[[], list[str]], tag: str) -> list[Follower]:
    """One follower per user, alternating between the edges; returns once all are subscribed."""
    followers = [Follower(u, edges, i, tag).start() for i, u in enumerate(users)]
    await asyncio.wait_for(asyncio.gather(*(f.ready.wait() for f in followers)), t(20))
    return followers
