import { usePrice, usePriceHistory } from "@tickmesh/react";
import { useEffect, useRef } from "react";
import { makeChart, toPoints, type Point } from "./chart-kit.js";
import { money, priceDigits } from "./format.js";

export interface PriceChartProps {
  symbol: string;
  /** Height in CSS pixels (default 240); the width follows the container. */
  height?: number;
}

/**
 * The price of `symbol` over its retained history (the client's `priceHistory` ticks, asked of
 * the edge with `history` on the price channel), extended by every live tick: TradingView's
 * lightweight-charts, one point per second (the last tick of each). The heading states the last
 * price and the move since the first point in words, for those who do not see the chart.
 */
export function PriceChart({ symbol, height = 240 }: PriceChartProps) {
  const ticks = usePriceHistory(symbol);
  const price = usePrice(symbol);
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<ReturnType<typeof makeChart> | null>(null);
  const drawn = useRef<Point[]>([]);

  useEffect(() => {
    if (!box.current) return;
    chart.current = makeChart(box.current, height, "area");
    drawn.current = [];
    return () => {
      chart.current?.dispose();
      chart.current = null;
    };
  }, [symbol, height]);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const points = toPoints(ticks.map((m) => ({ us: m.data.ts, value: Number(m.data.last) })));
    const prev = drawn.current;
    const last = points[points.length - 1];
    const prevLast = prev[prev.length - 1];
    // Live ticks extend the line; anything else (history arriving, a reconnect) redraws it.
    if (last && prevLast && points.length >= prev.length && points.length - prev.length <= 1 && points[prev.length - 1]?.time === prevLast.time) {
      c.series.update(last);
    } else {
      c.series.setData(points);
      c.chart.timeScale().fitContent();
    }
    drawn.current = points;
  }, [ticks]);

  const first = ticks[0]?.data.last;
  const last = price.data?.last;
  const digits = priceDigits(last);
  const move = first && last ? ((Number(last) - Number(first)) / Number(first)) * 100 : undefined;
  return (
    <section className="panel tm-chart" data-testid="price-chart" data-symbol={symbol} data-points={ticks.length}>
      <header className="panel-head">
        <h2>{symbol}</h2>
        <span className="muted small" aria-live="off">
          {money(last, digits)}
          {move !== undefined && <span className={move > 0 ? "pos" : move < 0 ? "neg" : ""}> {move > 0 ? "▲ +" : move < 0 ? "▼ " : ""}{move.toFixed(2)}% over {ticks.length} ticks</span>}
        </span>
      </header>
      <div ref={box} className="tm-chart-box" style={{ height }} role="img" aria-label={`Price chart of ${symbol}`} />
    </section>
  );
}
