import { AreaSeries, ColorType, createChart, LineSeries, type IChartApi, type ISeriesApi, type UTCTimestamp } from "lightweight-charts";

/** One point a second at most (the chart's time unit): the last value of each second wins. */
export interface Point {
  time: UTCTimestamp;
  value: number;
}

export function toPoints(samples: Iterable<{ us: number; value: number }>): Point[] {
  const out: Point[] = [];
  for (const s of samples) {
    const time = Math.floor(s.us / 1_000_000) as UTCTimestamp;
    const last = out[out.length - 1];
    if (last && time < last.time) continue; // never back in time
    if (last && time === last.time) last.value = s.value;
    else out.push({ time, value: s.value });
  }
  return out;
}

/** A dark, dense chart as the rest of the screen; resizes with its container. */
export function makeChart(el: HTMLElement, height: number, kind: "area" | "line"): { chart: IChartApi; series: ISeriesApi<"Area"> | ISeriesApi<"Line">; dispose(): void } {
  const chart = createChart(el, {
    height,
    autoSize: true,
    layout: { background: { type: ColorType.Solid, color: "transparent" }, textColor: "#7a8699", fontSize: 11, attributionLogo: false },
    grid: { vertLines: { color: "#151c27" }, horzLines: { color: "#151c27" } },
    rightPriceScale: { borderColor: "#1e2633" },
    timeScale: { borderColor: "#1e2633", timeVisible: true, secondsVisible: true },
    crosshair: { mode: 1 },
  });
  const series = kind === "area"
    ? chart.addSeries(AreaSeries, { lineColor: "#3b82f6", topColor: "rgba(59,130,246,0.28)", bottomColor: "rgba(59,130,246,0.02)", lineWidth: 2 })
    : chart.addSeries(LineSeries, { color: "#1fbf75", lineWidth: 2 });
  return { chart, series, dispose: () => chart.remove() };
}
