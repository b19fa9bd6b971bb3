"""Evaluating flags: pure functions and one plain class, no I/O, no clock (``now_us`` is passed).

Every process (edges, services, the CLI's ``eval``) evaluates through here, so the same
definition gives the same user the same value everywhere. Order, first that applies wins:

1. a killed flag gives its default (reason ``disabled``);
2. outside its schedule, the default (``default``);
3. the first rule that matches the subject (``targeting_match``);
4. a user whose bucket is below the rollout's basis points gets the rollout value (``split``);
5. the default (``default``).

Bucketing is ``sha256(flag ":" user)``, first 8 bytes big-endian, modulo 10000: it depends on
nothing but the two names, so a user keeps the same bucket across reconnects, edges, restarts
and Python processes (unlike ``hash()``), and the rollout is monotone: raising the percentage
only adds users.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .model import Flag, Subject

BUCKETS = 10_000
_VERSION_STEP = 1_000_000  # schedule boundaries passed within one revision, at most this many


def bucket(flag: str, user: str) -> int:
    """The user's stable bucket for ``flag``, 0 to 9999."""
    digest = hashlib.sha256(f"{flag}:{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A flag's value for one subject. ``variant`` is bounded (metrics label): ``on``/``off`` for
    boolean flags, else ``default``, ``rule`` or ``rollout``."""

    value: Any
    variant: str
    reason: str  # default, targeting_match, split, disabled (contracts: flag_value.reason)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "variant": self.variant, "reason": self.reason}


def _variant(flag: Flag, value: Any, outcome: str) -> str:
    if flag.type == "boolean":
        return "on" if value else "off"
    return outcome


def evaluate(flag: Flag, subject: Subject, now_us: int) -> Evaluation:
    if flag.killed:
        return Evaluation(flag.default, _variant(flag, flag.default, "default"), "disabled")
    if flag.schedule is None or flag.schedule.active(now_us):
        for rule in flag.rules:
            if rule.matches(subject):
                return Evaluation(rule.value, _variant(flag, rule.value, "rule"), "targeting_match")
        ro = flag.rollout
        if ro is not None and subject.user is not None and ro.basis_points > 0:
            if bucket(flag.name, subject.user) < ro.basis_points:
                return Evaluation(ro.value, _variant(flag, ro.value, "rollout"), "split")
    return Evaluation(flag.default, _variant(flag, flag.default, "default"), "default")


class FlagSet:
    """The flags a process knows, as of bucket revision :attr:`revision`.

    :meth:`apply` takes each KV entry (or its deletion) in revision order; :meth:`version` is a
    number that grows with every change and every schedule boundary passed and is the same on
    every process that has seen the same revision: the ``seq`` of ``flags`` messages.
    """

    def __init__(self) -> None:
        self.flags: dict[str, Flag] = {}
        self.revision = 0

    def apply(self, name: str, flag: Flag | None, revision: int) -> bool:
        """Store ``flag`` (``None``: deleted). Returns whether anything changed."""
        self.revision = max(self.revision, revision)
        if flag is None:
            return self.flags.pop(name, None) is not None
        if self.flags.get(name) == flag:
            return False
        self.flags[name] = flag
        return True

    def get(self, name: str) -> Flag | None:
        return self.flags.get(name)

    def evaluate_all(self, subject: Subject, now_us: int, names: Iterable[str] | None = None) -> dict[str, Evaluation]:
        flags = self.flags
        chosen = flags if names is None else [n for n in names if n in flags]
        return {name: evaluate(flags[name], subject, now_us) for name in sorted(chosen)}

    def _boundaries(self) -> list[tuple[int, str]]:
        return [(t, f.name) for f in self.flags.values() if f.schedule is not None for t in f.schedule.boundaries()]

    def version(self, now_us: int) -> int:
        passed = sum(1 for t, _ in self._boundaries() if t <= now_us)
        return self.revision * _VERSION_STEP + min(passed, _VERSION_STEP - 1)

    def next_boundary(self, now_us: int) -> tuple[int, frozenset[str]] | None:
        """The next schedule boundary after ``now_us`` and the flags it changes, if any."""
        upcoming = [(t, n) for t, n in self._boundaries() if t > now_us]
        if not upcoming:
            return None
        at = min(t for t, _ in upcoming)
        return at, frozenset(n for t, n in upcoming if t == at)
