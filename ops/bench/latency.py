"""A mergeable latency histogram (log-linear buckets, about 3 % resolution).

Recording is a few integer operations, so a load client can record every message it receives.
Histograms from several worker processes merge exactly (bucket counts add up); percentiles are
the upper edge of the bucket holding the requested rank, so they never under-report.
"""

from __future__ import annotations

_SUB_BITS = 5  # 32 sub-buckets per power of two: relative error below 1/32
_SUB = 1 << _SUB_BITS


def bucket_of(value: int) -> int:
    """Bucket index of a non-negative integer (values below 32 have their own bucket)."""
    if value < _SUB:
        return value if value > 0 else 0
    shift = value.bit_length() - _SUB_BITS - 1
    return ((shift + 1) << _SUB_BITS) + ((value >> shift) & (_SUB - 1))


def bucket_upper(index: int) -> int:
    """The largest value that falls in bucket ``index``."""
    if index < _SUB:
        return index
    shift = (index >> _SUB_BITS) - 1
    mantissa = (index & (_SUB - 1)) | _SUB
    return ((mantissa + 1) << shift) - 1


class Histogram:
    """Counts of values (microseconds, by convention) per bucket, plus the exact maximum."""

    __slots__ = ("counts", "total", "max")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max = 0

    def record(self, value: int) -> None:
        if value < 0:
            value = 0  # clocks of one host; a negative value is rounding, not time travel
        idx = bucket_of(value)
        counts = self.counts
        counts[idx] = counts.get(idx, 0) + 1
        self.total += 1
        if value > self.max:
            self.max = value

    def merge(self, other: Histogram) -> None:
        for idx, n in other.counts.items():
            self.counts[idx] = self.counts.get(idx, 0) + n
        self.total += other.total
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> int | None:
        """The value at or below which ``p`` percent of the recorded values lie; None if empty."""
        if not self.total:
            return None
        rank = max(1, int(round(self.total * p / 100.0)))
        seen = 0
        for idx in sorted(self.counts):
            seen += self.counts[idx]
            if seen >= rank:
                return min(bucket_upper(idx), self.max)
        return self.max

    def to_dict(self) -> dict:
        return {"counts": self.counts, "total": self.total, "max": self.max}

    @classmethod
    def from_dict(cls, d: dict) -> Histogram:
        h = cls()
        h.counts = {int(k): v for k, v in d["counts"].items()}
        h.total = d["total"]
        h.max = d["max"]
        return h
