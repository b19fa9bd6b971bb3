"""Results: one :class:`Row` per measurement, printed as a table, saved as JSON and Markdown.

How to read a row: ``deliv/s`` is messages received by clients per second of the window
(including the drain until the last one arrived); ``frac`` is received / expected, where expected
is what was published times the clients subscribed to it; latencies are publish -> client
receive (ms); ``server CPU`` is per process in % of one core; ``gen`` is the load clients' CPU
(% of one core) and ``µs/msg`` their CPU per received message; ``busy`` is the whole machine.
A row with ``busy`` above ~95 % measured the machine, not the server.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from .latency import Histogram

SATURATED = 95.0


@dataclass
class Row:
    scenario: str
    target: str
    step: str = ""
    clients: int = 0
    ready: int = 0
    connect_per_s: float | None = None
    offered_msgs_per_s: float | None = None  # published on NATS
    expected: int = 0  # deliveries expected in the window
    delivered: int = 0
    delivered_per_s: float | None = None
    fraction: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    servers: dict[str, dict[str, float | None]] = field(default_factory=dict)  # name -> cpu %, rss MiB
    loadgen_cpu: float | None = None
    client_us_per_msg: float | None = None
    busy: float | None = None
    closed_by_server: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def set_latency(self, hist: Histogram) -> None:
        for attr, p in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p999_ms", 99.9)):
            v = hist.percentile(p)
            setattr(self, attr, None if v is None else v / 1000.0)
        self.max_ms = hist.max / 1000.0 if hist.total else None


def _n(v: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _servers(row: Row) -> str:
    return " ".join(f"{name}:{_n(s.get('cpu'))}%/{_n(s.get('rss_mib'))}M" for name, s in row.servers.items())


COLUMNS = (
    "scenario",
    "target",
    "step",
    "clients",
    "ready",
    "conn/s",
    "offered/s",
    "deliv/s",
    "frac",
    "p50",
    "p90",
    "p99",
    "p99.9",
    "max",
    "server CPU%/RSS",
    "gen%",
    "µs/msg",
    "busy%",
    "closed",
    "note",
)


def cells(row: Row) -> list[str]:
    ms = "{:,.1f}"
    note = row.note
    if row.busy is not None and row.busy > SATURATED:
        note = ("MACHINE SATURATED " + note).strip()
    return [
        row.scenario,
        row.target,
        row.step,
        _n(row.clients),
        _n(row.ready),
        _n(row.connect_per_s),
        _n(row.offered_msgs_per_s),
        _n(row.delivered_per_s),
        _n(row.fraction, "{:.3f}"),
        _n(row.p50_ms, ms),
        _n(row.p90_ms, ms),
        _n(row.p99_ms, ms),
        _n(row.p999_ms, ms),
        _n(row.max_ms, ms),
        _servers(row),
        _n(row.loadgen_cpu),
        _n(row.client_us_per_msg, "{:.1f}"),
        _n(row.busy),
        _n(row.closed_by_server),
        note,
    ]


def ratios(rows: list[Row]) -> list[dict[str, Any]]:
    """tickmesh / peer for each scenario step measured on both: delivered rate and p99."""
    out = []
    mine = {(r.scenario, r.step): r for r in rows if r.target == "tickmesh"}
    for r in rows:
        if r.target == "tickmesh" or (r.scenario, r.step) not in mine:
            continue
        t = mine[(r.scenario, r.step)]
        out.append(
            {
                "scenario": r.scenario,
                "step": r.step,
                "peer": r.target,
                "delivered_ratio": (
                    t.delivered_per_s / r.delivered_per_s if t.delivered_per_s and r.delivered_per_s else None
                ),
                "p99_ratio": t.p99_ms / r.p99_ms if t.p99_ms and r.p99_ms else None,
                "rss_per_conn_ratio": (
                    t.extra["rss_per_conn_kib"] / r.extra["rss_per_conn_kib"]
                    if t.extra.get("rss_per_conn_kib") and r.extra.get("rss_per_conn_kib")
                    else None
                ),
            }
        )
    return out


def _grid(header: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*row) for row in body)])


def table(rows: list[Row], markdown: bool = False) -> str:
    return _grid(list(COLUMNS), [cells(r) for r in rows], markdown)


def ratio_table(rows: list[Row], markdown: bool = False) -> str:
    body = [
        [
            q["scenario"],
            q["step"],
            q["peer"],
            _n(q["delivered_ratio"], "{:.2f}x"),
            _n(q["p99_ratio"], "{:.2f}x"),
            _n(q["rss_per_conn_ratio"], "{:.2f}x"),
        ]
        for q in ratios(rows)
    ]
    return _grid(["scenario", "step", "tickmesh / peer", "delivered/s", "p99", "RSS/conn"], body, markdown)


def record(rows: list[Row], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON record of a run: metadata, every row, the ratios."""
    return {"meta": meta, "rows": [asdict(r) for r in rows], "ratios": ratios(rows)}


def write_json(path, rows: list[Row], meta: dict[str, Any]) -> None:
    with open(path, "w") as fh:
        json.dump(record(rows, meta), fh, indent=1, default=str)


def results_markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    return "\n".join(
        [
            "# tickmesh bench: latest results",
            "",
            f"- When: {meta['started']} (total {meta['seconds']:.0f} s)",
            f"- Machine: {m['nproc']} cores, {m['memory_gib']} GiB, {m['cpu_model']}"
            f"{' (shared with other work)' if meta.get('shared') else ''}",
            f"- Command: `{meta['command']}`",
            f"- Commit: {meta.get('commit', '?')}",
            "",
            "## Ratios (tickmesh / peer, same run)",
            "",
            ratio_table(rows, markdown=True),
            "",
            "## All rows",
            "",
            table(rows, markdown=True),
            "",
            'Columns are explained in ops/bench/README.md ("Reading the table").',
            "",
        ]
    )


class Progress:
    """One self-overwriting status line on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def show(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def line(self, text: str) -> None:
        """A permanent line (a finished row's summary)."""
        sys.stderr.write(("\r\x1b[2K" if self.tty else "") + text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
