"""Fan-out: one upstream message to every local subscriber, encoded once.

The hub knows, per NATS subject, which outboxes want it and under which channel name (a user's
own ``portfolio`` and a support user's ``portfolio:alice`` are the same subject, framed with
different names). It reference-counts subjects so that the upstream adapter holds exactly one
NATS subscription per subject for the whole edge: :meth:`add` says when a subject gains its first
subscriber and :meth:`remove` when it loses its last one. It does no I/O.
"""

from __future__ import annotations

from .frames import msg_frame
from .outbox import Outbox


class _Topic:
    __slots__ = ("conflate", "by_name", "count")

    def __init__(self, conflate: bool) -> None:
        self.conflate = conflate
        self.by_name: dict[str, set[Outbox]] = {}
        self.count = 0


class Hub:
    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        self.delivered = 0

    def add(self, subject: str, channel: str, outbox: Outbox, *, conflate: bool) -> bool:
        """Register ``outbox`` for ``subject`` under ``channel``. True if the subject is new here."""
        topic = self._topics.get(subject)
        first = topic is None
        if topic is None:
            topic = self._topics[subject] = _Topic(conflate)
        members = topic.by_name.setdefault(channel, set())
        if outbox not in members:
            members.add(outbox)
            topic.count += 1
        return first

    def remove(self, subject: str, channel: str, outbox: Outbox) -> bool:
        """Unregister; True if that was the subject's last subscriber (unsubscribe upstream)."""
        topic = self._topics.get(subject)
        if topic is None:
            return False
        members = topic.by_name.get(channel)
        if not members or outbox not in members:
            return False
        members.discard(outbox)
        topic.count -= 1
        if not members:
            del topic.by_name[channel]
        if topic.count == 0:
            del self._topics[subject]
            return True
        return False

    def subjects(self) -> list[str]:
        return list(self._topics)

    def subscribers(self, subject: str) -> int:
        topic = self._topics.get(subject)
        return topic.count if topic else 0

    def publish(self, subject: str, seq: int, payload: bytes) -> int:
        """Frame ``payload`` once per channel name and queue it on every subscriber's outbox.

        Returns the number of outboxes reached. An outbox that overflows calls its own
        ``on_overflow`` (the connection is then closed: an event is never dropped silently).
        """
        topic = self._topics.get(subject)
        if topic is None:
            return 0
        n = 0
        for channel, members in topic.by_name.items():
            frame = msg_frame(channel, seq, payload)
            if topic.conflate:
                for outbox in members:
                    outbox.push_state(channel, frame)
            else:
                for outbox in members:
                    outbox.push(frame)
            n += len(members)
        self.delivered += n
        return n
