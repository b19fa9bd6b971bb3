"""Per-message cost of tracing (sampled and unsampled) and of the metric helpers.

Run: ``.venv/bin/python ops/otel/overhead.py [--n 200000]``. Each case runs the exact calls the
integration API asks for (tickmesh/tracing.py, tickmesh/metrics.py) around an empty body, and
subtracts the cost of the same loop without them (the baseline builds the ``Tm-Seq`` headers
dict that publishing needs anyway). Sampled spans go through a BatchSpanProcessor into an
exporter that discards them, so the figures include the SDK's real span pipeline but no network.
Numbers are nanoseconds per message, best of ``--repeat`` runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tickmesh import metrics, tracing


class _Discard(SpanExporter):
    def export(self, spans: Sequence) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _bench(fn: Callable[[int], None], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def baseline(n: int) -> None:
    for i in range(n):
        {"Tm-Seq": str(i)}


def head(n: int) -> None:
    """market-feed: begin → normalise step → publish step with inject."""
    for i in range(n):
        with tracing.begin("feed.tick") as tr:
            with tr.step("feed.normalise"):
                pass
            with tr.step("feed.publish", kind=tracing.PRODUCER):
                tr.inject({"Tm-Seq": str(i)})


def head_fast(n: int) -> None:
    """market-feed with the fast check: the untraced path is the plain code."""
    for i in range(n):
        if tracing.should_sample():
            with tracing.begin("feed.tick", force=True) as tr:
                with tr.step("feed.normalise"):
                    pass
                with tr.step("feed.publish", kind=tracing.PRODUCER):
                    tr.inject({"Tm-Seq": str(i)})
        else:
            {"Tm-Seq": str(i)}


def hop_fast(headers: dict[str, str]) -> Callable[[int], None]:
    """edge with the fast check: ``carries_trace`` inlined as the dict lookup it is."""

    def run(n: int) -> None:
        for _ in range(n):
            if "traceparent" in headers:
                with tracing.receive("edge.fanout", headers):
                    pass

    return run


def hop(headers: dict[str, str]) -> Callable[[int], None]:
    """edge / valuer / notifier: receive (continue the publisher's trace or not)."""

    def run(n: int) -> None:
        for _ in range(n):
            with tracing.receive("edge.fanout", headers):
                pass

    return run


def metric_case(kind: str) -> Callable[[int], None]:
    def run(n: int) -> None:
        if kind == "messages_out":
            for _ in range(n):
                metrics.messages_out("state", 1, 180)
        elif kind == "observe_latency":
            ts = int(time.time() * 1e6)
            for _ in range(n):
                metrics.observe_latency("state", ts)
        else:
            for _ in range(n):
                metrics.provider_message("synthetic")

    return run


def _setup(ratio: float) -> None:
    tracing.setup(
        "overhead",
        exporter=None,
        set_global=False,
        environ={
            "TICKMESH_TRACE_SAMPLE_RATIO": str(ratio),
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        },
    )
    # Swap the OTLP exporter for one that discards, keeping the batch processor of a real setup.
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = tracing._provider
    assert provider is not None
    provider._active_span_processor._span_processors = (BatchSpanProcessor(_Discard(), max_queue_size=1 << 20),)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="messages per unsampled run")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    n, sampled_n = args.n, max(args.n // 20, 1000)
    base = _bench(baseline, n, args.repeat)
    rows: list[tuple[str, float]] = []

    tracing.shutdown()
    rows.append(("head, tracing off (no exporter)", _bench(head, n, args.repeat) - base))
    _setup(0.0)
    rows.append(("head, ratio 0, API used unconditionally", _bench(head, n, args.repeat) - base))
    rows.append(("head, ratio 0, should_sample() fast check", _bench(head_fast, n, args.repeat) - base))
    _setup(0.01)
    rows.append(("head, ratio 0.01, fast check (average)", _bench(head_fast, n, args.repeat) - base))
    _setup(1.0)
    rows.append(("head, sampled (3 spans + inject)", _bench(head, sampled_n, args.repeat) - base))
    traced = tracing.begin("x").inject({})
    untraced = {"Tm-Seq": "1"}
    rows.append(("hop, unsampled, receive() unconditionally", _bench(hop(untraced), n, args.repeat)))
    rows.append(("hop, unsampled, 'traceparent' in headers", _bench(hop_fast(untraced), n, args.repeat)))
    rows.append(("hop, sampled (extract + linked span)", _bench(hop(traced), sampled_n, args.repeat)))
    tracing.shutdown()
    for kind in ("messages_out", "observe_latency", "provider_message"):
        rows.append((f"metrics.{kind}", _bench(metric_case(kind), n, args.repeat)))

    print(f"baseline loop (build headers dict): {base:8.0f} ns/message")
    for name, ns in rows:
        print(f"{name:<44} {max(ns, 0.0):8.0f} ns/message")


if __name__ == "__main__":
    main()
