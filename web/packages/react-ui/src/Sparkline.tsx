import { compareDecimal } from "@tickmesh/client";
import { usePriceHistory } from "@tickmesh/react";
import { memo, useMemo } from "react";

export interface SparklineProps {
  symbol: string;
  /** Size in CSS pixels (default 96 x 24). */
  width?: number;
  height?: number;
  /** At most this many most recent ticks are drawn (default 120). */
  points?: number;
}

/**
 * A small line of the symbol's recent prices (the client's `priceHistory` ticks, then live),
 * green when the last price is above the first drawn, red when below. Plain SVG (a chart library
 * per row would cost more than the row). Its label says the move in words and percent.
 */
export const Sparkline = memo(function Sparkline({ symbol, width = 96, height = 24, points = 120 }: SparklineProps) {
  const ticks = usePriceHistory(symbol);
  const shape = useMemo(() => {
    const recent = ticks.slice(-points);
    if (recent.length < 2) return null;
    const values = recent.map((m) => Number(m.data.last));
    const min = Math.min(...values);
    const max = Math.max(...values);
    const span = max - min || 1;
    const step = width / (values.length - 1);
    const path = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - ((v - min) / span) * (height - 4)).toFixed(1)}`).join(" ");
    const first = recent[0]!.data.last;
    const last = recent[recent.length - 1]!.data.last;
    const cmp = compareDecimal(last, first);
    const pct = ((Number(last) - Number(first)) / Number(first)) * 100;
    return { path, trend: cmp > 0 ? "up" : cmp < 0 ? "down" : "flat", pct };
  }, [ticks, points, width, height]);
  if (!shape) return <svg className="tm-sparkline empty" width={width} height={height} aria-label={`${symbol}: no recent prices`} role="img" />;
  const words = shape.trend === "flat" ? "unchanged" : `${shape.trend} ${Math.abs(shape.pct).toFixed(2)}%`;
  return (
    <svg className={`tm-sparkline ${shape.trend}`} width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img"
      aria-label={`${symbol} recent trend: ${words}`} data-testid={`spark-${symbol}`} data-trend={shape.trend}>
      <polyline points={shape.path} fill="none" strokeWidth="1.5" strokeLinejoin="round" />
    </svg>
  );
});
