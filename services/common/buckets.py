"""Following a JetStream KV bucket: what every service that keeps state in one does.

:func:`follow` replays every stored entry, then every change, until cancelled. An entry that
cannot be decoded is logged and skipped (one bad value must not stop a service from following
the rest); errors in applying a decoded entry are the caller's and propagate.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


async def follow(
    kv: Any,
    decode: Callable[[str, bytes | None], T],
    apply: Callable[[T, bool], None],
    *,
    ready: Any = None,
    what: str = "entry",
    event: str = "kv.bad_entry",
) -> None:
    """Call ``apply(decode(key, value), initial)`` for each stored entry, then each change.

    ``value`` is None when the key was deleted or purged. ``initial`` is True while the stored
    entries are being replayed; ``ready`` (an ``asyncio.Event``), when given, is set once they
    have been. ``decode`` raising ValueError, KeyError or TypeError skips the entry with a log
    line naming ``what`` (structured ``event``).
    """
    watcher = await kv.watchall()
    initial = True
    try:
        async for entry in watcher:
            if entry is None:  # the end of the stored values
                initial = False
                if ready is not None:
                    ready.set()
                continue
            value = None if entry.operation in ("DEL", "PURGE") else entry.value
            try:
                item = decode(entry.key, value)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignored an unreadable %s: %s", what, exc, extra={"event": event})
                continue
            apply(item, initial)
    finally:
        with contextlib.suppress(Exception):  # the connection may already be gone
            await watcher.stop()
