"""The replay provider: plays a recorded file of ticks as if it were happening now.

Files are NDJSON (one contract-shaped tick object per line) or CSV with a header row naming
the same fields (``symbol,last,bid,ask,size,ts``); the format follows the suffix (``.csv``,
anything else is NDJSON). ``ts`` is microseconds; a record without one comes a second after
the previous. Malformed lines are skipped and counted, never fatal.

Timing: the file's first ``ts`` is mapped to the moment playback starts, and each record is
emitted ``(ts - first_ts) / speed`` later, with that moment as its ``ts``, so the demo looks live
(``speed`` 1 is real time, 10 ten times faster; 0 emits as fast as possible, stamped with the
emission time). When looping, each pass follows the previous one by the file's span plus one
average gap, so time keeps moving forward and the pipeline never sees a tick go backwards.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tickmesh import metrics

from .normalise import decode_json, from_record
from .provider import Emit, ProviderStats

log = logging.getLogger(__name__)

_SECOND_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Record:
    ts: int  # the file's time, µs
    fields: dict[str, Any]


def read_records(path: Path, stats: ProviderStats | None = None) -> list[Record]:
    """Every usable record of ``path``, in file order."""
    stats = stats or ProviderStats()
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _ndjson_rows(path, stats)
    out: list[Record] = []
    prev: int | None = None
    for row in rows:
        stats.messages += 1
        ts = _ts(row.get("ts"))
        if ts is None:
            ts = (prev + _SECOND_US) if prev is not None else 0
        prev = ts
        out.append(Record(ts, row))
    return out


def _ndjson_rows(path: Path, stats: ProviderStats) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = decode_json(line)
            except ValueError:
                row = None
            if not isinstance(row, dict):
                stats.ignored += 1
                log.warning(
                    "replay: line %d of %s is not a JSON object",
                    n,
                    path.name,
                    extra={"event": "feed.replay_bad_line", "line": n},
                )
                continue
            yield row


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            yield {k.strip(): (v.strip() if isinstance(v, str) and v.strip() else None) for k, v in row.items() if k}


def _ts(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class ReplayClock:
    """Maps file time to playback time (sans-I/O). ``start`` is wall seconds at playback start."""

    def __init__(self, records: list[Record], *, speed: float, start: float) -> None:
        if speed < 0:
            raise ValueError("speed must not be negative")
        self.speed = speed
        self.start_us = int(start * _SECOND_US)
        self.first = records[0].ts
        span = max(records[-1].ts - self.first, 0)
        gap = span // (len(records) - 1) if len(records) > 1 else _SECOND_US
        self.pass_us = span + max(gap, 1)

    def stamp(self, record: Record, pass_no: int) -> int:
        """The re-based ``ts`` of ``record`` on pass ``pass_no`` (µs), i.e. when it is due."""
        file_offset = record.ts - self.first + pass_no * self.pass_us
        return self.start_us + int(file_offset / self.speed)


class ReplayProvider:
    name = "replay"

    def __init__(
        self,
        path: Path,
        *,
        speed: float = 1.0,
        loop: bool = True,
        symbols: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.path = Path(path)
        self.speed = speed
        self.loop = loop
        self.symbols = frozenset(symbols) if symbols else None
        self.clock = clock
        self.sleep = sleep
        self.stats = ProviderStats()
        self.passes = 0

    async def run(self, emit: Emit) -> None:
        """Play the file (forever when looping); returns after one pass otherwise. The provider
        counts as connected (``tickmesh_provider_connected``) while it plays; each record played
        is a provider message."""
        metrics.provider_status(self.name, True)
        try:
            await self._play(emit)
        finally:
            metrics.provider_status(self.name, False)

    async def _play(self, emit: Emit) -> None:
        records = [
            r
            for r in read_records(self.path, self.stats)
            if self.symbols is None or r.fields.get("symbol") in self.symbols
        ]
        if not records:
            log.warning("replay: %s has no usable records", self.path, extra={"event": "feed.replay_empty"})
            return
        timing = ReplayClock(records, speed=self.speed, start=self.clock()) if self.speed > 0 else None
        log.info(
            "replay: %d records from %s at speed %s%s",
            len(records),
            self.path.name,
            self.speed,
            ", looping" if self.loop else "",
            extra={"event": "feed.replay_started"},
        )
        while True:
            for record in records:
                await self._emit_one(record, timing, emit)
            self.passes += 1
            if not self.loop:
                return

    async def _emit_one(self, record: Record, timing: ReplayClock | None, emit: Emit) -> None:
        if timing is None:
            await self.sleep(0)  # as fast as possible, but let the rest of the service run
            ts = None
        else:
            ts = timing.stamp(record, self.passes)
            wait = ts / _SECOND_US - self.clock()
            if wait > 0:
                await self.sleep(wait)
        metrics.provider_message(self.name)
        now_us = int(self.clock() * _SECOND_US)
        tick = from_record(record.fields, provider=self.name, ingest_ts=now_us, ts=now_us if ts is None else ts)
        if tick is None:
            self.stats.ignored += 1
            return
        self.stats.ticks += 1
        await emit(tick)
