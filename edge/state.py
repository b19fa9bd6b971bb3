"""Everything one edge process shares between its connections.

It owns the hub, the NATS side (state subscriptions, event feeds, snapshots, commands), the
per-user and per-address limits, revocations, and the edge's life events: NATS going away and
coming back (``status`` frames), and draining on SIGTERM (``reconnect`` frames, then 4000).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

import orjson

from tickmesh import config as cfg
from tickmesh import metrics, streams
from tickmesh.contracts import streams as stream_table
from tickmesh.contracts.channels import REVOKE_SUBJECT, Channel, Kind, is_state_subject, public_subject
from tickmesh.contracts.codes import CloseCode
from tickmesh.contracts.instruments import instruments
from tickmesh.contracts.messages import SEQ_HEADER

from .auth import AuthConfig, Verifier
from .commands import CommandRunner
from .events import EventFeeds, unexpired
from .hub import Hub
from .identity import AuthFailure, Identity
from .limits import Counter, TokenBucket
from .outbox import Outbox, Recorder
from .session import RunCommand, SessionLimits, Subscribe
from .settings import EdgeSettings
from .tickets import Tickets, ticket_key
from .upstream import Upstream

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)


class WriterStats:
    """What the writers send, counted in plain integers on the hot path and handed to the
    Prometheus registry once a second by the edge's clock (a labelled counter costs ~1 µs per
    call, which at hundreds of thousands of frames a second would be a core's worth of work).
    Latency and queue depth are observed for one batch in :attr:`SAMPLE_EVERY`."""

    SAMPLE_EVERY = 16
    __slots__ = ("frames", "bytes", "conflated", "_n")

    def __init__(self) -> None:
        self.frames = [0, 0]  # [event, state]
        self.bytes = [0, 0]
        self.conflated = 0
        self._n = 0

    def sample(self) -> bool:
        self._n += 1
        return self._n % self.SAMPLE_EVERY == 0

    def sent(self, state: bool, frames: int, nbytes: int) -> None:
        self.frames[state] += frames
        self.bytes[state] += nbytes

    def flush(self) -> None:
        for index, cls in ((0, "event"), (1, "state")):
            if self.frames[index]:
                metrics.messages_out(cls, self.frames[index], self.bytes[index])
                self.frames[index] = self.bytes[index] = 0
        if self.conflated:
            metrics.conflated(self.conflated)
            self.conflated = 0


class EdgeState:
    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.retention = cfg.load(streams.Retention)
        self.hub = Hub()
        self.upstream = Upstream(self.hub, url=settings.nats_url, on_status=self._on_nats_status)
        self.events = EventFeeds(self.hub)
        self.commands = CommandRunner()
        self.verifier = Verifier(AuthConfig(
            algorithms=settings.jwt_algorithms, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
            leeway=settings.jwt_leeway, secret=settings.jwt_secret or None,
            public_key_file=settings.jwt_public_key_file or None, jwks_url=settings.jwks_url or None,
            jwks_refetch_cooldown=settings.jwks_refetch_cooldown))
        self.session_limits = SessionLimits(
            auth_timeout=settings.auth_timeout, heartbeat_interval=settings.heartbeat,
            max_subscriptions=settings.max_subscriptions, max_frame_bytes=settings.max_frame_bytes,
            expiry_leeway=settings.jwt_leeway, commands_per_second=settings.cmd_rate,
            commands_burst=settings.cmd_burst)
        self.tickets = Tickets(ticket_key(settings.jwt_secret, settings.ticket_secret),
                               ttl=settings.ticket_ttl, resume=self.retention.tickets_ttl)
        self.connections: set[Connection] = set()
        self.by_user: dict[str, set[Connection]] = {}
        self.per_user = Counter(settings.max_conns_per_user)
        self.per_ip = Counter(settings.max_conns_per_ip)
        self._limiters: dict[str, TokenBucket] = {}
        self.revoked: dict[str, float] = {}  # user -> revocation time (Unix seconds)
        self._pending: dict[str, int] = {}  # subjects with an attach waiting on upstream
        self._known_symbols = frozenset(instruments())
        self.ready = False
        self.draining = False
        self._clock: asyncio.Task | None = None
        self.writer_stats = WriterStats()
        # Batching: outboxes that became non-empty wait for the next flush tick, so frames due
        # within EDGE_FLUSH_MS leave together; connections whose pending frames are the very
        # same objects (a hot channel's subscribers) share one encoded batch per tick.
        self._flush_interval = settings.flush_ms / 1000.0
        self._dirty: list[Connection] = []
        self.batch_cache: dict[tuple[bytes, ...], Any] = {}
        self._flusher: asyncio.Task | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def batching(self) -> bool:
        return self._flush_interval > 0

    def on_ready(self, conn: Connection):
        """The outbox callback for ``conn``: wake its writer now, or at the next flush tick."""
        if self._flush_interval <= 0:
            return conn.wake.set
        dirty = self._dirty

        def mark() -> None:
            dirty.append(conn)

        return mark

    async def _flush_forever(self) -> None:
        interval = self._flush_interval
        while True:
            await asyncio.sleep(interval)
            if self._dirty:
                dirty = self._dirty[:]
                self._dirty.clear()
                self.batch_cache.clear()
                for conn in dirty:
                    conn.wake.set()

    async def start(self) -> None:
        """Connect to NATS (retrying until it answers), prepare streams, start the clock."""
        self._clock = asyncio.ensure_future(self._tick_forever())
        if self._flush_interval > 0:
            self._flusher = asyncio.ensure_future(self._flush_forever())
        await self.upstream.connect()
        nc = self.upstream.nc
        assert nc is not None
        js = nc.jetstream()
        await streams.ensure(js, self.retention)
        await self.events.start(js)
        await self.commands.start(nc)
        self.tickets.kv = await js.key_value(streams.TICKETS_BUCKET)
        await nc.subscribe(REVOKE_SUBJECT, cb=self._on_revoke)
        metrics.nats_status(True)
        self.ready = True

    async def stop(self) -> None:
        for task in (self._clock, self._flusher):
            if task is not None:
                task.cancel()
        await self.upstream.close()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            for conn in list(self.connections):
                conn.tick(now)
            self.writer_stats.flush()
            self._forget_old_revocations(now)
            self._forget_full_buckets(now)

    # -- connections -----------------------------------------------------------------------

    def admit_peer(self, peer: str) -> bool:
        return self.per_ip.acquire(peer)

    def register(self, conn: Connection) -> None:
        self.connections.add(conn)

    def unregister(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.per_ip.release(conn.peer)
        if conn.user is not None:
            self.per_user.release(conn.user)
            peers = self.by_user.get(conn.user)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self.by_user[conn.user]

    def admit(self, conn: Connection, identity: Identity) -> AuthFailure | None:
        """Revocation and the per-user connection limit, checked once a token is verified."""
        revoked_at = self.revoked.get(identity.user)
        if revoked_at is not None and identity.issued_at <= revoked_at:
            return AuthFailure(int(CloseCode.FORBIDDEN), "user revoked")
        if not self.per_user.acquire(identity.user):
            return AuthFailure(int(CloseCode.CONNECTION_LIMIT),
                               f"at most {self.settings.max_conns_per_user} connections per user")
        self.by_user.setdefault(identity.user, set()).add(conn)
        return None

    def limiter_for(self, user: str) -> TokenBucket:
        bucket = self._limiters.get(user)
        if bucket is None:
            bucket = self._limiters[user] = TokenBucket(self.settings.cmd_rate, self.settings.cmd_burst, time.time())
        return bucket

    async def verify(self, token: Any) -> Identity | AuthFailure:
        return await self.verifier.verify(token, time.time())

    def channel_exists(self, channel: Channel) -> bool:
        if channel.kind is Kind.PRICES:
            return channel.arg in self._known_symbols
        return True

    # -- subscriptions ---------------------------------------------------------------------

    async def attach(self, conn: Connection, sub: Subscribe) -> None:
        if sub.state:
            await self._attach_state(conn, sub)
        else:
            await self._attach_event(conn, sub)

    async def _attach_state(self, conn: Connection, sub: Subscribe) -> None:
        """Upstream live first, then ``ok``, the snapshot and live updates, with no await in
        between the last three, so nothing can slip between the snapshot and the first update."""
        subject = sub.subject
        self._pending[subject] = self._pending.get(subject, 0) + 1
        try:
            await self.upstream.ensure(subject)
            fetched = await self._fetch_snapshot(subject) if self.hub.snapshot(subject) is None else None
        finally:
            left = self._pending[subject] - 1
            if left:
                self._pending[subject] = left
            else:
                del self._pending[subject]
        if conn.closing is not None or sub.name not in conn._subscribed:
            return
        outbox = conn.outbox
        outbox.push(conn.codec.encode({"op": "ok", "id": sub.rid}))
        self.hub.add(subject, sub.name, outbox, conflate=True)
        if fetched is not None:
            self.hub.seed(subject, *fetched)
        snap = self.hub.snapshot(subject)
        if snap is not None:
            metrics.recovery("snapshot")
            seq, payload = snap
            outbox.push_state(sub.name, conn.codec.msg(sub.name, seq, payload, lambda: orjson.loads(payload)),
                              time.monotonic())
        if sub.max_hz:
            outbox.throttle(sub.name, sub.max_hz)

    async def _fetch_snapshot(self, subject: str) -> tuple[int, bytes] | None:
        nc = self.upstream.nc
        if nc is None or not nc.is_connected:
            return None
        try:
            stream = stream_table.stream_for_subject(subject).name
            msg = await nc.jetstream().get_last_msg(stream, subject, direct=True)
        except Exception:  # none yet, or JetStream unavailable: live updates will follow
            return None
        seq = msg.headers.get(SEQ_HEADER) if msg.headers else None
        if msg.data is None or seq is None or not seq.isdigit():
            return None
        return int(seq), msg.data

    async def _attach_event(self, conn: Connection, sub: Subscribe) -> None:
        """Register a recorder, replay from the stream, then cut the seam by position."""
        recorder = Recorder(conn.codec.index)
        self.hub.add(sub.subject, sub.name, recorder, conflate=False)
        try:
            announcements = sub.since is None and sub.subject == public_subject(Kind.ANNOUNCEMENTS)
            replay_all = announcements or sub.history is not None
            rec = await self.events.recover(sub.subject, sub.since, replay_all=replay_all)
        except Exception as exc:
            self.hub.remove(sub.subject, sub.name, recorder)
            conn._subscribed.pop(sub.name, None)
            conn.session.subscriptions.pop(sub.name, None)
            log.warning("recovery failed for %s: %s", sub.name, exc, extra={"event": "recovery.failed"})
            conn.push_frame({"op": "err", "id": sub.rid, "code": 501, "reason": "history unavailable; retry"})
            return
        if conn.closing is not None or sub.name not in conn._subscribed:
            self.hub.remove(sub.subject, sub.name, recorder)
            return
        metrics.recovery("replayed" if rec.recovered else "gap", len(rec.messages))
        messages = rec.messages
        if announcements:
            messages = rec.messages = unexpired(messages, int(time.time() * 1_000_000))
        if sub.history is not None:
            messages = rec.messages = messages[-sub.history:]
        outbox = conn.outbox
        outbox.push(conn.codec.encode({"op": "ok", "id": sub.rid, **rec.reply_fields()}))
        last = rec.seq
        # Replay in chunks, letting the writer drain in between: a long replay is flow-controlled
        # by the client's reading speed instead of overflowing the outbox. Live messages keep
        # arriving in the recorder meanwhile.
        chunk = max(1, outbox.max_frames // 4)
        for start in range(0, len(messages), chunk):
            while len(outbox) > outbox.max_frames // 2 and conn.closing is None:
                await asyncio.sleep(0.005)
            if conn.closing is not None or sub.name not in conn._subscribed:
                self.hub.remove(sub.subject, sub.name, recorder)
                return
            for seq, payload in messages[start:start + chunk]:
                outbox.push(conn.codec.msg(sub.name, seq, payload, lambda p=payload: orjson.loads(p)))
        for seq, frame in recorder.frames:
            if seq > last:
                outbox.push(frame)
                last = seq
        self.hub.replace(sub.subject, sub.name, recorder, outbox)

    async def detach(self, subject: str, name: str, outbox: Outbox) -> None:
        """Stop delivering; release the upstream subscription when nobody here wants it."""
        if self.hub.remove(subject, name, outbox) and is_state_subject(subject) and subject not in self._pending:
            await self.upstream.release(subject)

    # -- commands --------------------------------------------------------------------------

    async def run_command(self, action: RunCommand) -> dict[str, Any]:
        return await self.commands.run(action)

    # -- edge-wide events ------------------------------------------------------------------

    async def _on_nats_status(self, up: bool) -> None:
        metrics.nats_status(up)
        frame = {"op": "status", "state": "ok"} if up else {"op": "status", "state": "degraded",
                                                            "reason": "nats unavailable"}
        for conn in list(self.connections):
            if conn.session.state == conn.session.OPEN:
                conn.push_frame(frame)

    async def _on_revoke(self, msg) -> None:
        try:
            user = orjson.loads(msg.data).get("user")
        except (orjson.JSONDecodeError, AttributeError):
            return
        if not isinstance(user, str):
            return
        self.revoked[user] = time.time()
        for conn in list(self.by_user.get(user, ())):
            conn.close(int(CloseCode.FORBIDDEN), "user revoked")
        log.info("user revoked", extra={"event": "auth.revoked", "user": user})

    def _forget_full_buckets(self, now: float) -> None:
        """A bucket idle long enough to be full again is the same as a new one: drop it."""
        refill = self.settings.cmd_burst / self.settings.cmd_rate + 1.0
        for user, bucket in list(self._limiters.items()):
            if now - bucket.updated > refill:
                del self._limiters[user]

    def _forget_old_revocations(self, now: float) -> None:
        ttl = self.settings.revocation_ttl
        for user, at in list(self.revoked.items()):
            if now - at > ttl:
                del self.revoked[user]

    async def drain(self) -> None:
        """SIGTERM: stop being ready, ask clients to move (spread with jitter), then close the
        rest with 4000 at the deadline."""
        self.draining = True
        self.ready = False
        spread = self.settings.drain_spread_ms
        for conn in list(self.connections):
            conn.push_frame({"op": "reconnect", "after_ms": random.randint(0, spread)})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_deadline
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.1)
        for conn in list(self.connections):
            conn.close(int(CloseCode.SHUTDOWN), "edge shutting down; reconnect")
        end = loop.time() + 2.0
        while self.connections and loop.time() < end:
            await asyncio.sleep(0.05)
