"""A connection's own ``trades`` and ``portfolio``: the delivery audit and the causal gate.

When a connection subscribes to its user's own ``trades`` or ``portfolio``, the hub (and the
recovery in ``subscribe.py``) hands that channel's frames to a tap instead of the outbox:

* :class:`TradesTap` passes each frame to the outbox and remembers its position. When the outbox
  is drained into the transport (``Outbox.on_drain``), those positions count as delivered: the
  audit records them (``audit.py``) and the causal gate learns how far trades have gone.
* :class:`PortfolioTap` passes portfolio frames through :class:`causal.CausalGate`, which holds
  one back until the fill it names was delivered (or a short timeout).

Connections that subscribe to neither (and every channel of another user, such as a support
user's ``trades:alice``) never see any of this: their frames go straight to the outbox.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from tickmesh import metrics
from tickmesh.contracts.channels import Kind, user_subject

from .causal import NONE, CausalGate
from .frames import CODECS
from .outbox import Outbox
from .session import Subscribe

if TYPE_CHECKING:
    from .audit import TradeAudit
    from .connection import Connection

_UNACKED_KEPT = 1024  # delivered positions remembered per connection until the client acks them


class TradesTap:
    """The outbox of a connection's own trades subscription, remembering positions it took."""

    __slots__ = ("outbox", "codec", "pending", "own", "name")

    def __init__(self, own: OwnChannels, outbox: Outbox, name: str) -> None:
        self.own = own
        self.name = name
        self.outbox = outbox
        self.codec = outbox.codec
        self.pending = own.pending

    def push_event(self, frame: bytes, seq: int, ts: int | None = None) -> bool:
        if self.outbox.push_event(frame, seq, ts):
            self.pending.append((seq, frame))
            return True
        return False

    def push(self, frame: bytes) -> bool:
        return self.outbox.push(frame)

    def push_state(self, key: str, frame: bytes, now: float = 0.0, ts: int | None = None) -> bool:
        return self.outbox.push_state(key, frame, now, ts)

    def live(self, epoch: str, floor: int) -> None:
        """Recovery is done: positions above ``floor`` follow, in ``epoch``."""
        self.own.trades_live(self, epoch, floor)


class PortfolioTap:
    """The outbox of a connection's own portfolio subscription, behind the causal gate."""

    __slots__ = ("own", "outbox", "codec")

    def __init__(self, own: OwnChannels, outbox: Outbox) -> None:
        self.own = own
        self.outbox = outbox
        self.codec = outbox.codec

    def push_state(self, key: str, frame: bytes, now: float = 0.0, ts: int | None = None) -> bool:
        return self.own.push_portfolio(key, frame, now, ts)

    def push_event(self, frame: bytes, seq: int, ts: int | None = None) -> bool:
        return self.outbox.push_event(frame, seq, ts)

    def push(self, frame: bytes) -> bool:
        return self.outbox.push(frame)


def trade_seq_of(frame: bytes, codec: int) -> int | None:
    """The ``trade_seq`` a portfolio ``msg`` frame names, or None (read only when present)."""
    if b"trade_seq" not in frame:
        return None
    try:
        value = CODECS[codec].decode(frame)["data"].get("trade_seq")
    except Exception:  # not the edge's frame shape: nothing to wait for
        return None
    return value if type(value) is int and value > 0 else None


class OwnChannels:
    __slots__ = (
        "conn",
        "outbox",
        "audit",
        "gate",
        "pending",
        "trades",
        "portfolio",
        "portfolio_name",
        "epoch",
        "_trades_subject",
        "_portfolio_subject",
        "_unacked",
        "_timer",
    )

    def __init__(self, conn: Connection, *, audit: TradeAudit | None, hold_s: float) -> None:
        assert conn.user is not None
        self.conn = conn
        self.outbox = conn.outbox
        self.audit = audit if audit is not None and audit.enabled else None
        self.gate = CausalGate(hold_s) if hold_s > 0 else None
        self.pending: list[tuple[int, bytes]] = []
        self.trades: TradesTap | None = None
        self.portfolio: PortfolioTap | None = None
        self.portfolio_name: str | None = None
        self.epoch: str | None = None
        self._trades_subject = user_subject(Kind.TRADES, conn.user)
        self._portfolio_subject = user_subject(Kind.PORTFOLIO, conn.user)
        self._unacked: dict[int, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        return self.audit is not None or self.gate is not None

    # -- subscriptions ---------------------------------------------------------------------

    def sink(self, sub: Subscribe) -> Any:
        """What the hub should deliver subscription ``sub`` to (called when it is attached)."""
        if sub.subject == self._trades_subject and self.trades is None:
            self.trades = TradesTap(self, self.outbox, sub.name)
            self.outbox.on_drain = self.drained
            if self.gate is not None:
                self.gate.trades_requested()
            return self.trades
        if sub.subject == self._portfolio_subject and self.portfolio_name is None and self.gate is not None:
            self.portfolio_name = sub.name
            self.portfolio = PortfolioTap(self, self.outbox)
            return self.portfolio
        return self.outbox

    def ended(self, subject: str, name: str) -> Any:
        """Subscription ``name`` of ``subject`` ends (or failed): the sink it was delivered to
        (None: the outbox itself)."""
        if subject == self._trades_subject and self.trades is not None and name == self.trades.name:
            tap, self.trades = self.trades, None
            if self.gate is not None:
                self._send(self.gate.trades_ended())
            return tap
        if subject == self._portfolio_subject and name == self.portfolio_name:
            ptap, self.portfolio, self.portfolio_name = self.portfolio, None, None
            if self.gate is not None:
                self.gate.portfolio_ended()
            self._cancel()
            return ptap
        return None

    def trades_live(self, tap: TradesTap, epoch: str, floor: int) -> None:
        if tap is not self.trades:
            return
        self.epoch = epoch
        if self.gate is not None:
            self._send(self.gate.trades_live(floor))

    # -- delivery --------------------------------------------------------------------------

    def drained(self) -> None:
        """The outbox was drained into the transport: pending trades are delivered. (On the
        flush path: the audit record is one append to its buffer, built here inline.)"""
        pending = self.pending
        if not pending:
            return
        items = pending.copy()
        pending.clear()
        audit = self.audit
        if audit is not None:
            buf = audit._buf
            room = audit.max_records - len(buf)
            if room < len(items):
                audit.dropped += len(items) - max(room, 0)
            if room > 0:
                conn = self.conn
                at = time.time_ns() // 1000
                user, conn_id, transport, epoch, codec = (
                    conn.user,
                    conn.conn_id,
                    conn.transport,
                    self.epoch,
                    self.outbox.codec,
                )
                for seq, frame in items[:room]:
                    buf.append(("delivered", user, conn_id, transport, epoch, seq, at, frame, codec))
            unacked = self._unacked
            for seq, _ in items:
                unacked[seq] = None
            if len(unacked) > _UNACKED_KEPT:
                for seq in list(unacked)[: len(unacked) - _UNACKED_KEPT]:
                    del unacked[seq]
        gate = self.gate
        if gate is not None:
            last = items[-1][0]
            if last > gate.delivered:
                gate.delivered = last
            if gate.held is not None:
                released = gate.delivered_upto(last)
                if released is not None:
                    metrics.causal_hold("released")
                    self._send(released)

    def acked(self, seqs: tuple[int, ...]) -> None:
        """The client acknowledged ``seqs``: record those that were delivered here, once."""
        audit = self.audit
        if audit is None:
            return
        conn = self.conn
        at = time.time_ns() // 1000
        unacked = self._unacked
        for seq in seqs:
            if seq in unacked:
                del unacked[seq]
                audit.acked(conn.user, conn.conn_id, conn.transport, self.epoch, seq, at)  # type: ignore[arg-type]

    def push_portfolio(self, key: str, frame: bytes, now: float, ts: int | None) -> bool:
        gate = self.gate
        if gate is None or gate.trades == NONE:
            return self.outbox.push_state(key, frame, now, ts)
        out = gate.portfolio(frame, trade_seq_of(frame, self.outbox.codec), time.monotonic())
        if out is None:
            self._arm()
            return True
        return self.outbox.push_state(key, out, now, ts)

    def _send(self, frame: bytes | None) -> None:
        if frame is not None and self.portfolio_name is not None and self.conn.closing is None:
            self.outbox.push_state(self.portfolio_name, frame, time.monotonic())
        if self.gate is not None and self.gate.held is None:
            self._cancel()

    # -- the hold timer --------------------------------------------------------------------

    def _arm(self) -> None:
        gate = self.gate
        if self._timer is None and gate is not None and gate.deadline is not None:
            delay = max(0.0, gate.deadline - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        gate = self.gate
        if gate is None:
            return
        frame = gate.expire(time.monotonic())
        if frame is not None:
            metrics.causal_hold("timeout")
            self._send(frame)
        elif gate.held is not None:
            self._arm()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self._cancel()
