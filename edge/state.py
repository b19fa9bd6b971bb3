"""One edge process: its parts, its connections, and its life events.

The parts live in rooms of their own: :mod:`admission` (who may connect and act),
:mod:`subscribe` (snapshots, replays and the seam to live delivery), :mod:`flusher` (when
queued frames leave), :mod:`hub` (fan-out), :mod:`upstream` and :mod:`events` (NATS),
:mod:`commands` (request/reply to services), :mod:`revocations`. This module wires them
together and owns what belongs to the whole edge: the set of open connections, the one-second
clock, NATS going away and coming back (``status`` frames), and draining on SIGTERM
(``reconnect`` frames, then 4000).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from tickmesh import config as cfg
from tickmesh import metrics, streams
from tickmesh.contracts.channels import WATCHLIST_PREFIX, Channel, Kind
from tickmesh.contracts.codes import CloseCode
from tickmesh.contracts.instruments import instruments

from .admission import Admission
from .audit import TradeAudit, edge_name
from .auth import AuthConfig, Verifier
from .commands import CommandRunner
from .events import EventFeeds
from .flagfeed import FlagFeed
from .flusher import Flusher
from .gates import FEATURES, GATE_FLAGS
from .hub import Hub
from .identity import AuthFailure, Identity
from .presence import EdgePresence
from .revocations import RevocationFeed
from .session import RunCommand, SessionLimits
from .settings import EdgeSettings
from .subscribe import Subscriptions
from .tickets import Tickets, ticket_key
from .upstream import Upstream
from .watchlists import WatchlistGate

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)

CLOCK_SLICES = 10  # the one-second clock visits a tenth of the connections every 100 ms


class EdgeState:
    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.retention: Any = cfg.load(streams.Retention)  # a dataclass made from the stream table
        self.hub = Hub()
        self.upstream = Upstream(self.hub, url=settings.nats_url, on_status=self._on_nats_status)
        self.events = EventFeeds(
            self.hub, cache_bytes=settings.replay_cache_mb << 20, replay_concurrency=settings.replay_concurrency
        )
        self.flagfeed = FlagFeed()
        self.flagfeed.on_change(self._flags_changed)
        self.subscriptions = Subscriptions(self.hub, self.upstream, self.events, self.flagfeed)
        self.watchlists = WatchlistGate(self.hub, self.upstream)
        self.upstream.intercept(WATCHLIST_PREFIX, self.watchlists.intercept)
        self.presence = EdgePresence(settings, self.hub, self.watchlists)
        self.subscriptions.gate = self.watchlists
        self.subscriptions.presence = self.presence
        self.commands = CommandRunner()
        self.flusher = Flusher(settings.flush_ms)
        self.audit = TradeAudit(
            edge=edge_name(),
            flush_s=settings.audit_flush_ms / 1000.0,
            max_records=settings.audit_max_records,
            enabled=settings.audit_trades,
        )
        self._audit_queries: list = []
        self.admission = Admission(
            max_conns_per_user=settings.max_conns_per_user,
            max_conns_per_ip=settings.max_conns_per_ip,
            cmd_rate=settings.cmd_rate,
            cmd_burst=settings.cmd_burst,
            http_rate=settings.http_rate,
            http_burst=settings.http_burst,
            http_ip_rate=settings.http_ip_rate,
            http_ip_burst=settings.http_ip_burst,
            revocation_ttl=self.retention.revocations_max_age,
        )
        self.revocations = RevocationFeed(self._on_revoke)
        self.verifier = Verifier(
            AuthConfig(
                algorithms=settings.jwt_algorithms,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                leeway=settings.jwt_leeway,
                secret=settings.jwt_secret or None,
                public_key_file=settings.jwt_public_key_file or None,
                jwks_url=settings.jwks_url or None,
                jwks_refetch_cooldown=settings.jwks_refetch_cooldown,
            )
        )
        self.session_limits = SessionLimits(
            auth_timeout=settings.auth_timeout,
            heartbeat_interval=settings.heartbeat,
            max_subscriptions=settings.max_subscriptions,
            max_frame_bytes=settings.max_frame_bytes,
            expiry_leeway=settings.jwt_leeway,
            commands_per_second=settings.cmd_rate,
            commands_burst=settings.cmd_burst,
            max_topics=settings.presence_max_topics,
        )
        self.tickets = Tickets(
            ticket_key(settings.jwt_secret, settings.ticket_secret),
            ttl=settings.ticket_ttl,
            resume=self.retention.tickets_ttl,
        )
        self.connections: set[Connection] = set()
        self.by_user: dict[str, set[Connection]] = {}
        self._known_symbols = frozenset(instruments())
        self.ready = False
        self._clock: asyncio.Task | None = None

    @property
    def draining(self) -> bool:
        return self.admission.draining

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to NATS (retrying until it answers), prepare streams, read the revocations
        in force, start the clock; then report ready."""
        self._clock = asyncio.ensure_future(self._tick_forever())
        self.flusher.start()
        await self.upstream.connect()
        nc = self.upstream.nc
        assert nc is not None
        js = nc.jetstream()
        await streams.ensure(js, self.retention)
        await self.revocations.start(js)
        await self.flagfeed.start(nc)
        await self.events.start(js)
        await self.commands.start(nc)
        self.tickets.kv = await js.key_value(streams.TICKETS_BUCKET)
        self.audit.start(js)
        from .auditquery import serve_queries

        self._audit_queries = await serve_queries(nc)
        await self.presence.start(js)
        metrics.nats_status(True)
        self.ready = True

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
        self.flusher.stop()
        await self.audit.stop()
        await self.flagfeed.stop()
        await self.presence.stop(draining=self.draining)
        await self.upstream.close()

    async def _tick_forever(self) -> None:
        """Every connection's deadlines once a second, in slices spread over the second, so
        that tens of thousands of connections never hold the loop for one long stretch."""
        slices = CLOCK_SLICES
        while True:
            conns = list(self.connections)
            for i in range(slices):
                await asyncio.sleep(1.0 / slices)
                now = time.time()
                for conn in conns[i::slices]:
                    conn.tick(now)
            self.flusher.stats.flush()
            self.admission.tick(now)
            self.presence.tick(now)

    # -- connections -----------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        self.connections.add(conn)

    def user_connected(self, conn: Connection) -> None:
        """``conn`` was admitted for its user (see ``Admission.open_user``)."""
        assert conn.user is not None
        self.by_user.setdefault(conn.user, set()).add(conn)

    def unregister(self, conn: Connection) -> None:
        """Release everything ``conn`` counted against (its address was counted by the
        transport before the connection existed)."""
        self.connections.discard(conn)
        self.presence.closed(conn)
        self.admission.close_peer(conn.peer)
        if conn.user is not None:
            self.admission.close_user(conn.user)
            peers = self.by_user.get(conn.user)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self.by_user[conn.user]

    def feature_enabled(self, feature: str, identity: Identity) -> bool:
        """Whether ``feature``'s flag (gates.py) is on for ``identity``; on when no such flag."""
        return self.flagfeed.enabled(FEATURES[feature], identity, default=True)

    def _flags_changed(self, names: frozenset[str]) -> None:
        if names & GATE_FLAGS:
            for conn in list(self.connections):
                conn.features_changed()

    async def verify(self, token: Any) -> Identity | AuthFailure:
        return await self.verifier.verify(token, time.time())

    def channel_exists(self, channel: Channel) -> bool:
        if channel.kind is Kind.PRICES:
            return channel.arg in self._known_symbols
        return True

    async def run_command(self, action: RunCommand) -> dict[str, Any]:
        return await self.commands.run(action, self.admission.command_limiter(action.user))

    # -- edge-wide events ------------------------------------------------------------------

    async def _on_nats_status(self, up: bool) -> None:
        metrics.nats_status(up)
        if up:
            self.hub.reset_seeds()
        if up and self.ready:
            self.presence.reconnected()
        frame = (
            {"op": "status", "state": "ok"}
            if up
            else {"op": "status", "state": "degraded", "reason": "nats unavailable"}
        )
        for conn in list(self.connections):
            if conn.session.state == conn.session.OPEN:
                conn.push_frame(frame)

    def _on_revoke(self, user: str, at: float) -> None:
        if not self.admission.revoke(user, at):
            return
        closed = 0
        for conn in list(self.by_user.get(user, ())):
            if conn.session.identity is not None and conn.session.identity.issued_at <= at:
                conn.close(int(CloseCode.FORBIDDEN), "user revoked")
                closed += 1
        log.info("user revoked", extra={"event": "auth.revoked", "user": user, "connections": closed})

    async def drain(self) -> None:
        """SIGTERM: stop being ready, ask clients to move (spread with jitter), then close the
        rest with 4000 at the deadline."""
        self.admission.draining = True
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
