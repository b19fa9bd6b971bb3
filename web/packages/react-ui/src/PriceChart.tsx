import { usePrice, usePriceHistory } from "@tickmesh/react";
import { useEffect, useRef } from "react";
import { makeChart, tickTime, toTickPoints } from "./chart-kit.js";
import { money, priceDigits } from "./format.js";

export interface PriceChartProps {
  symbol: string;
  /** Height in CSS pixels (default 240); the width follows the container. */
  height?: number;
}

/**
 * The price of `symbol` over its retained history (the client's `priceHistory` ticks, asked of
 * the edge with `history` on the price channel), extended by every live tick: TradingView's
 * lightweight-charts, a point per tick, evenly spaced, the axis labelled with the ticks' own
 * times. The heading states the last price and the move since the first point in words, for
 * those who do not see the chart.
 */
export function PriceChart({ symbol, height = 240 }: PriceChartProps) {
  const ticks = usePriceHistory(symbol);
  const price = usePrice(symbol);
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<ReturnType<typeof makeChart> | null>(null);
  // What the series holds: its last point's time and how many points (it keeps those that left
  // the history window until the next redraw).
  const drawn = useRef({ last: -1, count: 0 });

  useEffect(() => {
    if (!box.current) return;
    chart.current = makeChart(box.current, height, "area", tickTime);
    drawn.current = { last: -1, count: 0 };
    return () => {
      chart.current?.dispose();
      chart.current = null;
    };
  }, [symbol, height]);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const points = toTickPoints(ticks.map((m) => ({ us: m.data.ts, value: Number(m.data.last) })));
    const last = points[points.length - 1];
    const d = drawn.current;
    // One new tick after the last drawn one extends the line (keeping the user's zoom); anything
    // else (history arriving, a reconnect, a series grown to twice the window) redraws it.
    if (last && last.time > d.last && points[points.length - 2]?.time === d.last && d.count < 2 * points.length) {
      c.series.update(last);
      drawn.current = { last: last.time, count: d.count + 1 };
    } else {
      c.series.setData(points);
      c.chart.timeScale().fitContent();
      drawn.current = { last: last ? last.time : -1, count: points.length };
    }
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
