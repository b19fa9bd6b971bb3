import { usePortfolio } from "@tickmesh/react";
import { useEffect, useRef, useState } from "react";
import { makeChart, toPoints } from "./chart-kit.js";
import { money, signed } from "./format.js";

export interface PortfolioChartProps {
  /** Height in CSS pixels (default 140). */
  height?: number;
  /** Valuations kept for the line (default 3600). */
  limit?: number;
}

/**
 * The portfolio's total value over this session: every valuation the `portfolio` channel
 * delivers since the component mounted (a state channel keeps only the latest, so the line
 * starts with the page). The heading states the change since the session started.
 */
export function PortfolioChart({ height = 140, limit = 3600 }: PortfolioChartProps) {
  const { data } = usePortfolio();
  const [samples, setSamples] = useState<{ us: number; value: number; text: string }[]>([]);
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<ReturnType<typeof makeChart> | null>(null);

  useEffect(() => {
    if (!data) return;
    setSamples((s) => (s.length && s[s.length - 1]!.us >= data.ts ? s : [...s, { us: data.ts, value: Number(data.total_value), text: data.total_value }].slice(-limit)));
  }, [data, limit]);

  useEffect(() => {
    if (!box.current) return;
    chart.current = makeChart(box.current, height, "line");
    return () => {
      chart.current?.dispose();
      chart.current = null;
    };
  }, [height]);

  useEffect(() => {
    chart.current?.series.setData(toPoints(samples));
  }, [samples]);

  const first = samples[0];
  const last = samples[samples.length - 1];
  const change = first && last ? (last.value - first.value).toFixed(2) : undefined;
  return (
    <section className="panel tm-chart" data-testid="portfolio-chart" data-points={samples.length}>
      <header className="panel-head">
        <h2>Portfolio value this session</h2>
        <span className="muted small">{last ? `${money(last.text)} (${signed(change)} since ${new Date(first!.us / 1000).toLocaleTimeString("en-GB", { hour12: false })})` : "waiting for a valuation…"}</span>
      </header>
      <div ref={box} className="tm-chart-box" style={{ height }} role="img" aria-label="Portfolio value over this session" />
    </section>
  );
}
