"""Causal order between a user's ``trades`` and ``portfolio`` on one connection, sans I/O.

A fill changes the user's holdings; the portfolio-valuer then publishes a valuation that
includes it and names, in ``trade_seq``, the highest ``trades`` position among the fills it
includes. The two travel on different subjects and streams, so a valuation can reach the edge
before the fill it includes. :class:`CausalGate` holds such a portfolio frame back until the
fill it names has been handed to the transport on the same connection, so the client never
sees a value that includes a fill before the fill itself (nor, therefore, the fill after it).

What it guarantees, per connection that subscribes to its user's own ``trades`` and
``portfolio`` (PROTOCOL.md, "Causal order"):

* A portfolio frame naming position ``S`` leaves after the ``trades`` frame at ``S`` has been
  written (it goes out in a later batch), unless ``S`` is at or below the position the trades
  subscription started from (the client has that fill, or chose not to get it), or the hold
  timed out (``hold_s`` after the first frame was held; then ``S`` counts as passed).
* A held frame is replaced by a newer one, which then waits for the higher of the two
  positions: a value never overtakes a fill, and never an older value a newer one.
* While the trades subscription is being made (recovery in progress), frames that name a
  position wait for it to go live, within the same timeout.

Time is passed in (monotonic seconds); nothing here reads a clock, sleeps or does I/O.
"""

from __future__ import annotations

NONE, PENDING, LIVE = 0, 1, 2


class CausalGate:
    __slots__ = ("hold_s", "trades", "floor", "delivered", "need", "held", "deadline", "timeouts")

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.trades = NONE  # the connection's own trades subscription: none, being made, live
        self.floor = 0  # positions at or below it are never sent on this trades subscription
        self.delivered = 0  # the highest trades position handed to the transport
        self.need = 0  # the highest position any portfolio frame named so far
        self.held: bytes | None = None
        self.deadline: float | None = None  # when the held frame goes regardless
        self.timeouts = 0

    def _waiting(self) -> bool:
        need = self.need
        if need <= self.delivered or self.trades == NONE:
            return False
        return self.trades == PENDING or need > self.floor

    def _release(self) -> bytes | None:
        frame = self.held
        if frame is None or self._waiting():
            return None
        self.held = self.deadline = None
        return frame

    def portfolio(self, frame: bytes, trade_seq: int | None, now: float) -> bytes | None:
        """A portfolio frame naming ``trade_seq`` (or None). Returns the frame when it may go
        now; None when it is held (send what a later call returns; call :meth:`expire` at
        :attr:`deadline`)."""
        if trade_seq is not None and trade_seq > self.need:
            self.need = trade_seq
        if not self._waiting():
            self.held = self.deadline = None
            return frame
        if self.held is None:
            self.deadline = now + self.hold_s
        self.held = frame
        return None

    def trades_requested(self) -> None:
        """The connection asked for its trades: until they are live, named positions wait."""
        if self.trades == NONE:
            self.trades = PENDING

    def trades_live(self, floor: int) -> bytes | None:
        """The trades subscription is live; it sends positions above ``floor`` only."""
        self.trades = LIVE
        self.floor = floor
        return self._release()

    def trades_ended(self) -> bytes | None:
        """The trades subscription failed or ended: nothing is waited for any more."""
        self.trades = NONE
        self.floor = 0
        return self._release()

    def delivered_upto(self, seq: int) -> bytes | None:
        """Trades up to position ``seq`` were handed to the transport."""
        if seq > self.delivered:
            self.delivered = seq
        return self._release()

    def expire(self, now: float) -> bytes | None:
        """The held frame, if its time is up (its position then counts as passed)."""
        if self.held is None or self.deadline is None or now < self.deadline:
            return None
        self.timeouts += 1
        if self.need > self.delivered:
            self.delivered = self.need
        frame, self.held, self.deadline = self.held, None, None
        return frame

    def portfolio_ended(self) -> None:
        """The portfolio subscription ended: a held frame is dropped (it would go to nobody)."""
        self.held = self.deadline = None
