"""The recent ticks of one symbol, for ``sub prices:<SYMBOL>`` with ``history`` (charts).

``TM_TICKS`` keeps at most ``TM_RETAIN_TICKS_PER_SYMBOL`` (default 1,000) ticks per subject,
so reading all of one subject's retained ticks is bounded; the newest ``n`` are returned,
oldest first, each with its ``Tm-Seq`` version (the ``seq`` the client compares). A message
without a valid version is skipped (it could not be ordered against live ticks).
"""

from __future__ import annotations

import contextlib
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tickmesh.contracts import streams as stream_table
from tickmesh.contracts.messages import SEQ_HEADER

BATCH = 256
MAX_TICKS = 1000  # the protocol's bound on history (session.MAX_HISTORY)


async def recent_ticks(js: Any, subject: str, n: int) -> list[tuple[int, bytes]]:
    n = max(0, min(n, MAX_TICKS))
    if n == 0:
        return []
    stream = stream_table.stream_for_subject(subject).name
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
        max_ack_pending=-1,
    )
    psub = await js.pull_subscribe(subject, stream=stream, config=config)
    out: list[tuple[int, bytes]] = []
    try:
        while True:
            try:
                msgs = await psub.fetch(BATCH, timeout=1.0)
            except TimeoutError:
                break
            for m in msgs:
                seq = m.headers.get(SEQ_HEADER) if m.headers else None
                if seq is not None and seq.isdigit() and m.data and (not out or int(seq) > out[-1][0]):
                    out.append((int(seq), m.data))
            if not msgs or msgs[-1].metadata.num_pending == 0:
                break
            if len(out) > 4 * MAX_TICKS:  # retention raised far beyond the default: keep the tail only
                out = out[-n:]
    finally:
        with contextlib.suppress(Exception):  # the consumer expires by itself (inactive_threshold)
            await psub.unsubscribe()
    return out[-n:]
