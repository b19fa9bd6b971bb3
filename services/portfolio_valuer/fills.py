"""The causal position of each valuation: which ``trades`` position its holdings include. Sans I/O.

Whoever executes trades (the paper broker, or the platform's order system) applies a fill to the
user's account in ``HOLDINGS_BUCKET`` (``holdings.update_account``, which remembers the fill's
``exec_id`` in ``applied``) and publishes the execution on the user's ``trades`` channel; the
two reach the valuer separately and in either order (the broker changes holdings first). This
module matches them: an account revision whose ``applied`` list gained fills is **held** until
each new fill has been seen on the trades stream (:meth:`FillPositions.execution`), and the
valuation then names the highest position among the fills it includes (``trade_seq``). So a
portfolio message never includes a fill without naming it, and the edge and the client can hold
the value until that fill is shown (PROTOCOL.md, "Causal order").

A held revision is applied anyway after ``wait_s`` (the execution was never published, or very
late); its valuation then names the positions that were seen. Accounts read at start-up or when
a shard is taken over are not held (their fills are history): until a new fill, their
valuations name no position. Memory is bounded: at most ``max_unmatched`` executions wait for
their account change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class _Held:
    value: Any  # the newest account revision of the user (what the caller applies)
    missing: set[str]  # fills applied to it whose execution has not been seen yet
    seq: int  # the highest position among its new fills seen so far
    deadline: float


@dataclass
class FillPositions:
    wait_s: float
    max_unmatched: int = 100_000
    trade_seq: dict[str, int] = field(default_factory=dict)  # user -> the position its valuation includes
    _unmatched: dict[str, int] = field(default_factory=dict)  # exec_id -> position (seen before the account)
    _last: dict[str, str | None] = field(default_factory=dict)  # user -> the newest applied exec_id accounted for
    _held: dict[str, _Held] = field(default_factory=dict)

    def account(self, user: str, applied: tuple[str, ...], value: Any, now: float, *, history: bool) -> bool:
        """A revision of ``user``'s account (``value``), whose ``applied`` fills are listed oldest
        first. True: apply it now. False: it is held; it comes back from :meth:`execution` or
        :meth:`due`. ``history``: read at start-up or at a shard's take-over, never held."""
        previous = self._last.get(user)
        self._last[user] = applied[-1] if applied else None
        if history:
            self._held.pop(user, None)
            return True
        if previous is not None and previous in applied:
            new = applied[applied.index(previous) + 1 :]
        else:  # no fill known before (a new account, or its first fills), or trimmed away
            new = applied
        held = self._held.get(user)
        seq = held.seq if held is not None else 0
        missing = set(held.missing) if held is not None else set()
        for exec_id in new:
            pos = self._unmatched.pop(exec_id, None)
            if pos is None:
                missing.add(exec_id)
            elif pos > seq:
                seq = pos
        if not missing:
            self._held.pop(user, None)
            if seq > self.trade_seq.get(user, 0):
                self.trade_seq[user] = seq
            return True
        self._held[user] = _Held(value, missing, seq, held.deadline if held is not None else now + self.wait_s)
        return False

    def execution(self, user: str, exec_id: str, seq: int) -> Any:
        """A fill of ``user`` was seen on the trades stream at position ``seq``. Returns the held
        account revision it completes (apply it now), else None."""
        held = self._held.get(user)
        if held is not None and exec_id in held.missing:
            held.missing.discard(exec_id)
            if seq > held.seq:
                held.seq = seq
            if not held.missing:
                return self._release(user, held.value)
            return None
        if len(self._unmatched) >= self.max_unmatched:
            del self._unmatched[next(iter(self._unmatched))]
        self._unmatched[exec_id] = seq
        return None

    def _release(self, user: str, value: Any) -> Any:
        held = self._held.pop(user)
        if held.seq > self.trade_seq.get(user, 0):
            self.trade_seq[user] = held.seq
        return value

    def due(self, now: float) -> list[tuple[str, Any]]:
        """Held revisions whose wait is over: ``(user, value)`` to apply, naming what was seen."""
        out = [(user, held.value) for user, held in self._held.items() if held.deadline <= now]
        for user, value in out:
            self._release(user, value)
        return out

    def next_deadline(self) -> float | None:
        return min((h.deadline for h in self._held.values()), default=None)

    def forget(self, user: str) -> None:
        """``user`` is no longer valued here (deleted, or its shard given back)."""
        self._last.pop(user, None)
        self._held.pop(user, None)
        self.trade_seq.pop(user, None)
