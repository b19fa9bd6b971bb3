"""Fan-out: one upstream message to every local subscriber, encoded once per codec.

The hub knows, per NATS subject, which outboxes want it, under which channel name (a user's own
``portfolio`` and a support user's ``portfolio:alice`` are the same subject framed with different
names) and with which codec. It reference-counts subjects so that the upstream adapter holds
exactly one NATS subscription per subject for the whole edge (:meth:`add` says when a subject
gains its first subscriber, :meth:`remove` when it loses its last one).

For state subjects it also keeps the newest message (the edge's snapshot cache) and drops any
message older than one already delivered, so no client ever sees an older value after a newer
one. It does no I/O.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from .frames import CODECS


class Sink(Protocol):
    codec: int

    def push_event(self, frame: bytes, seq: int, ts: int | None = None) -> bool: ...

    def push_state(self, key: str, frame: bytes, now: float = 0.0, ts: int | None = None) -> bool: ...


class _Topic:
    __slots__ = ("conflate", "by_name", "count", "last_seq", "last_payload", "seeded")

    def __init__(self, conflate: bool) -> None:
        self.conflate = conflate
        self.by_name: dict[str, list[set[Sink]]] = {}
        self.count = 0
        self.last_seq = 0
        self.last_payload: bytes | None = None
        self.seeded = False  # the stream was asked for its last message while this topic lived


class Hub:
    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        self.stale_dropped = 0

    def add(self, subject: str, channel: str, sink: Sink, *, conflate: bool) -> bool:
        """Register ``sink`` for ``subject`` under ``channel``. True if the subject is new here."""
        topic = self._topics.get(subject)
        first = topic is None
        if topic is None:
            topic = self._topics[subject] = _Topic(conflate)
        groups = topic.by_name.get(channel)
        if groups is None:
            groups = topic.by_name[channel] = [set() for _ in CODECS]
        members = groups[sink.codec]
        if sink not in members:
            members.add(sink)
            topic.count += 1
        return first

    def replace(self, subject: str, channel: str, old: Sink, new: Sink) -> None:
        """Swap ``old`` for ``new`` in place (a recorder for the real outbox after recovery)."""
        members = self._topics[subject].by_name[channel][old.codec]
        members.discard(old)
        members.add(new)

    def remove(self, subject: str, channel: str, sink: Sink) -> bool:
        """Unregister; True if that was the subject's last subscriber (unsubscribe upstream)."""
        topic = self._topics.get(subject)
        if topic is None:
            return False
        groups = topic.by_name.get(channel)
        if not groups or sink not in groups[sink.codec]:
            return False
        groups[sink.codec].discard(sink)
        topic.count -= 1
        if not any(groups):
            del topic.by_name[channel]
        if topic.count == 0:
            del self._topics[subject]
            return True
        return False

    def subjects(self) -> list[str]:
        return list(self._topics)

    def subscribers(self, subject: str) -> int:
        """Local subscribers of ``subject`` (presence and watch-lists release what nobody here
        uses any more: a topic's watch, a list's upstream subscription)."""
        topic = self._topics.get(subject)
        return topic.count if topic else 0

    def snapshot(self, subject: str) -> tuple[int, bytes] | None:
        """The newest message of a state subject this edge holds, as ``(seq, payload)``."""
        topic = self._topics.get(subject)
        if topic is None or topic.last_payload is None:
            return None
        return topic.last_seq, topic.last_payload

    def needs_snapshot(self, subject: str) -> bool:
        """Whether a new subscriber of state ``subject`` must ask the stream for its last message:
        not when this edge holds one, nor when it already asked while the upstream subscription
        was live (every later message then reached the hub, so the stream has nothing newer)."""
        topic = self._topics.get(subject)
        return topic is None or (topic.last_payload is None and not topic.seeded)

    def reset_seeds(self) -> None:
        """After NATS comes back, the streams may hold messages the hub missed meanwhile: the
        next subscriber of each subject asks again."""
        for topic in self._topics.values():
            topic.seeded = False

    def seed(self, subject: str, fetched: tuple[int, bytes] | None) -> None:
        """The stream's answer for ``subject``: its last message, or None when it has none.
        Kept only if newer than what is cached."""
        topic = self._topics.get(subject)
        if topic is None:
            return
        topic.seeded = True
        if fetched is not None and fetched[0] > topic.last_seq:
            topic.last_seq, topic.last_payload = fetched

    def publish(self, subject: str, seq: int, payload: bytes, now: float = 0.0, ts: int | None = None) -> int:
        """Frame ``payload`` once per channel name and codec and queue it on every subscriber.

        ``ts`` is the message's provider timestamp (µs), carried to the outboxes so that the
        writer can measure end-to-end latency. Returns the number of subscribers reached. A state
        message not newer than the last one is dropped. An outbox that overflows calls its own
        ``on_overflow`` (the connection is then closed: an event is never dropped silently).
        """
        topic = self._topics.get(subject)
        if topic is None:
            return 0
        if topic.conflate:
            if seq <= topic.last_seq:
                self.stale_dropped += 1
                return 0
            topic.last_seq = seq
            topic.last_payload = payload
        parsed: list[Any] = []

        def parse() -> Any:
            if not parsed:
                parsed.append(orjson.loads(payload))
            return parsed[0]

        n = 0
        for channel, groups in topic.by_name.items():
            for index, members in enumerate(groups):
                if not members:
                    continue
                frame = CODECS[index].msg(channel, seq, payload, parse)
                if topic.conflate:
                    for sink in members:
                        sink.push_state(channel, frame, now, ts)
                else:
                    for sink in members:
                        sink.push_event(frame, seq, ts)
                n += len(members)
        return n
