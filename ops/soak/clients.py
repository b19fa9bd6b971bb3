"""The soak's clients (picows, one process) and the ledger they are checked against.

A :class:`SoakClient` is one logical client that stays alive for the whole soak: it connects to
either edge, authenticates, subscribes to its portfolio (1 Hz; one client in four also to a price,
every tick: state channels) and to
``trades``, ``notifications`` and ``announcements`` (event channels), and on every reconnect
resubscribes to the event channels with ``since`` = the last position it has, as a real client
does. It keeps, per event channel, every position it received.

The :class:`Ledger` reads the same streams directly from JetStream: every position published on
every subject. At the end, for each client and event channel, the positions it must have are
the ledger's positions on that channel's subject after the position of its first ``ok``; any
missing is a gap, any received twice a duplicate. An ``ok`` with ``recovered: false`` (the edge
saying it could not honour a position) counts as a gap too.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from typing import Any

import orjson
from picows import WSListener, WSMsgType, WSTransport, ws_connect

from tickmesh.contracts.channels import Kind, public_subject, user_subject
from tickmesh.contracts.codes import ERRORS

EVENT_KINDS = {"trades": Kind.TRADES, "notifications": Kind.NOTIFICATIONS, "announcements": Kind.ANNOUNCEMENTS}
BUSINESS = range(600, 700)
RETRYABLE = {info.code for info in ERRORS.values() if info.retry}
# One client in this many watches a price tick by tick (the rest see prices through their
# portfolio): the soak's one client process must not be what limits the latency it measures.
PRICE_WATCHERS = 4  # command rejections by a service (funds, prices): not errors of the mesh


class Stats:
    """What all clients share: counters and latency samples (microseconds)."""

    def __init__(self) -> None:
        self.count: dict[str, int] = defaultdict(int)
        self.price_latency_us: list[int] = []
        self.command_rtt_us: list[int] = []
        self.close_codes: dict[int, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)


class SoakClient(WSListener):
    def __init__(self, index: int, user: str, symbol: str, token: Any, edges: list[str], stats: Stats) -> None:
        super().__init__()
        self.index = index
        self.user = user
        self.symbol = symbol
        self.token = token
        self.edges = edges
        self.stats = stats
        self.transport: WSTransport | None = None
        self.live_since: float | None = None
        self.connected_s = 0.0
        self.paused_s = 0.0  # offline on purpose (a random disconnect's pause)
        self.wanted_offline_until = 0.0
        self.first: dict[str, int] = {}  # event channel -> position of its first ok
        self.last: dict[str, tuple[str, int]] = {}  # event channel -> (epoch, last position)
        self.received: dict[str, list[int]] = {ch: [] for ch in EVENT_KINDS}
        self.pending_subs: set[str] = set()
        self.snapshot_due: bool = True
        self.commands: dict[str, tuple[float, dict[str, Any]]] = {}  # unanswered: sent at, frame
        self.planned = False
        self.stopped = False
        self.attempts = 0

    # -- life cycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to a random edge; if it refuses, to the other one at once."""
        order = random.sample(self.edges, len(self.edges))
        self.attempts += 1
        self.stats.count["connect_attempts"] += 1
        for url in order:
            try:
                await ws_connect(
                    lambda: self, url, websocket_handshake_timeout=10, enable_auto_pong=True, read_buffer_init_size=4096
                )
                return
            except Exception as exc:
                self.stats.errors[f"connect {type(exc).__name__}"] += 1
        self.stats.count["connect_failures"] += 1  # every edge refused: the user would notice

    def on_ws_connected(self, transport: WSTransport) -> None:
        if self.stopped:
            transport.disconnect(graceful=False)
            return
        self.transport = transport
        self._send({"op": "auth", "id": "auth", "token": self.token()})

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        now = time.monotonic()
        if self.live_since is not None:
            self.connected_s += now - self.live_since
            self.live_since = None
        self.transport = None
        self.pending_subs.clear()

    def disconnect(self, pause: float) -> None:
        """A random disconnect: drop the connection, stay away ``pause`` seconds."""
        if self.transport is not None:
            self.planned = True
            self.wanted_offline_until = time.monotonic() + pause
            self.paused_s += pause
            self.transport.disconnect(graceful=False)

    @property
    def live(self) -> bool:
        return self.live_since is not None

    def _send(self, frame: dict[str, Any]) -> None:
        if self.transport is not None:
            self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))

    # -- frames ----------------------------------------------------------------------------

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            code = frame.get_close_code()
            self.stats.close_codes[int(code)] += 1
            transport.send_close(code)
            transport.disconnect()
            return
        if kind is not WSMsgType.TEXT:
            return
        obj = orjson.loads(frame.get_payload_as_bytes())
        for f in obj if isinstance(obj, list) else (obj,):
            self._frame(f)

    def _frame(self, f: dict[str, Any]) -> None:
        op = f.get("op")
        if op == "msg":
            ch = f["ch"]
            if ch in self.received:
                seq = f["seq"]
                self.received[ch].append(seq)
                epoch = self.last.get(ch, ("", 0))[0]
                self.last[ch] = (epoch, seq)
                self.stats.count["event_msgs"] += 1
            elif ch.startswith("prices:"):
                if self.snapshot_due:
                    self.snapshot_due = False  # the snapshot is not a live tick
                else:
                    ingest = f["data"].get("ingest_ts")
                    if ingest:
                        self.stats.price_latency_us.append(time.time_ns() // 1000 - int(ingest))
                self.stats.count["price_msgs"] += 1
        elif op == "welcome":
            self._subscribe()
            for _rid, (_sent, cmd) in list(self.commands.items()):
                # Unanswered when the connection dropped: sent again with the same key, as a client
                # does after a timeout; the edge answers with the first outcome, never runs it twice.
                self.stats.count["commands_retried"] += 1
                self._send(cmd)
        elif op == "ok" or op == "err":
            rid = f.get("id")
            if rid in self.commands:
                sent, _ = self.commands.pop(rid)
                self.stats.command_rtt_us.append(int((time.monotonic() - sent) * 1e6))
                if op == "ok":
                    self.stats.count["commands_ok"] += 1
                elif f.get("code") in BUSINESS:
                    self.stats.count["commands_rejected"] += 1
                else:
                    self.stats.errors[f"command err {f.get('code')}"] += 1
                return
            if op == "err":
                self.stats.errors[f"{rid} err {f.get('code')}"] += 1
                if rid in EVENT_KINDS and f.get("code") in RETRYABLE:
                    # As the web client does: the same subscription (same position) in 1-3 s.
                    transport = self.transport
                    asyncio.get_running_loop().call_later(
                        1 + 2 * random.random(), self._resubscribe, str(rid), transport
                    )
                return
            self._sub_ok(str(rid), f)
        elif op == "ping":
            self._send({"op": "pong"})

    def _subscribe(self) -> None:
        subs: list[dict[str, Any]] = [{"op": "sub", "id": "portfolio", "ch": "portfolio", "max_hz": 1}]
        if self.index % PRICE_WATCHERS == 0:  # every tick, unthrottled: what latency is measured on
            subs.append({"op": "sub", "id": f"prices:{self.symbol}", "ch": f"prices:{self.symbol}"})
        subs.extend(self._event_sub(ch) for ch in EVENT_KINDS)
        self.pending_subs = {s["id"] for s in subs}
        self.snapshot_due = True
        for sub in subs:
            self._send(sub)

    def _event_sub(self, ch: str) -> dict[str, Any]:
        """The ``sub`` frame of event channel ``ch``, resuming after the last position seen."""
        sub: dict[str, Any] = {"op": "sub", "id": ch, "ch": ch}
        if ch in self.last:
            epoch, seq = self.last[ch]
            sub["since"] = {"epoch": epoch, "seq": seq}
        return sub

    def _resubscribe(self, ch: str, transport: WSTransport | None) -> None:
        if transport is None or self.transport is not transport or ch not in self.pending_subs:
            return  # reconnected meanwhile (the welcome subscribed again), or answered since
        self.stats.count["subscriptions_retried"] += 1
        self._send(self._event_sub(ch))

    def _sub_ok(self, rid: str, f: dict[str, Any]) -> None:
        if rid in EVENT_KINDS:
            if f.get("recovered") is False:
                self.stats.errors[f"not recovered: {f.get('reason')}"] += 1
                self.stats.count["gaps_reported_by_edge"] += 1
            self.first.setdefault(rid, int(f["seq"]))
            self.last[rid] = (str(f["epoch"]), int(f["seq"]))
        self.pending_subs.discard(rid)
        if not self.pending_subs and self.live_since is None:
            self.live_since = time.monotonic()
            self.stats.count["went_live"] += 1

    def submit_order(self, n: int) -> None:
        rid = f"o{self.index}-{n}"
        cmd = {
            "op": "cmd",
            "id": rid,
            "name": "order.submit",
            "key": rid,
            "data": {
                "client_order_id": rid,
                "symbol": self.symbol,
                "side": random.choice(["buy", "sell"]),
                "quantity": "1",
                "type": "market",
            },
        }
        self.commands[rid] = (time.monotonic(), cmd)
        self._send(cmd)
        self.stats.count["commands_sent"] += 1

    # -- accounting --------------------------------------------------------------------------

    def subject(self, ch: str) -> str:
        kind = EVENT_KINDS[ch]
        return public_subject(kind) if ch == "announcements" else user_subject(kind, self.user)

    def check(self, ledger: Ledger, upto: dict[str, int]) -> tuple[int, int]:
        """(gaps, duplicates) over the event channels, against the ledger up to ``upto``."""
        gaps = dups = 0
        for ch, got in self.received.items():
            first = self.first.get(ch)
            if first is None:
                continue
            have = set(got)
            dups += len(got) - len(have)
            want = [s for s in ledger.positions.get(self.subject(ch), ()) if first < s <= upto[ch]]
            gaps += sum(1 for s in want if s not in have)
        return gaps, dups

    def caught_up(self, ledger: Ledger) -> bool:
        for ch in EVENT_KINDS:
            tail = ledger.positions.get(self.subject(ch))
            if tail and (ch not in self.last or self.last[ch][1] < tail[-1]) and tail[-1] > self.first.get(ch, 0):
                return False
        return True


class Ledger:
    """Every position published on the event streams the clients read, by subject."""

    def __init__(self) -> None:
        self.positions: dict[str, list[int]] = defaultdict(list)
        self.subs: list[Any] = []

    async def start(self, js: Any) -> None:
        from tickmesh.contracts import streams

        for kind in (Kind.TRADES, Kind.NOTIFICATIONS, Kind.ANNOUNCEMENTS):
            for subject in streams.stream_for_kind(kind).subjects:
                if any(subject == s.subject for s in self.subs):
                    continue
                self.subs.append(await js.subscribe(subject, ordered_consumer=True, cb=self._on))

    async def _on(self, msg: Any) -> None:
        self.positions[msg.subject].append(msg.metadata.sequence.stream)

    async def stop(self) -> None:
        for sub in self.subs:
            await sub.unsubscribe()
