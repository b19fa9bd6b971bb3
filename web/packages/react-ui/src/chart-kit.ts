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

/**
 * Ticks as points one slot apart, for a tick chart: lightweight-charts spaces points by their
 * order, not by their time, but wants whole, increasing "seconds". A tick's time in milliseconds
 * stands in for them, so ten ticks in one second are ten points (the per-second form would keep
 * one); a tick in the same millisecond as the one before moves one millisecond on, and one that
 * goes back is left out. `tickTime` turns a stand-in back into µs for the labels.
 */
export function toTickPoints(ticks: Iterable<{ us: number; value: number }>): Point[] {
  const out: Point[] = [];
  for (const t of ticks) {
    const last = out[out.length - 1];
    let time = Math.floor(t.us / 1000);
    if (last && time <= last.time) {
      if (time < last.time) continue;
      time = last.time + 1;
    }
    out.push({ time: time as UTCTimestamp, value: t.value });
  }
  return out;
}

/** The µs since the epoch that a `toTickPoints` stand-in time names. */
export const tickTime = (time: number): number => time * 1000;

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** Local wall-clock time of `us` (µs since the epoch): `HH:MM:SS`, with `.mmm` when `ms`. */
export function clock(us: number, ms = false): string {
  const d = new Date(us / 1000);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return ms ? `${hms}.${pad(d.getMilliseconds(), 3)}` : hms;
}

/**
 * A dark, dense chart as the rest of the screen; resizes with its container. With `timeOf`, the
 * points' times are stand-ins (see `toTickPoints`) and the axis and crosshair show `timeOf(time)`
 * (µs, to the millisecond) instead.
 */
export function makeChart(el: HTMLElement, height: number, kind: "area" | "line", timeOf?: (time: number) => number): { chart: IChartApi; series: ISeriesApi<"Area"> | ISeriesApi<"Line">; dispose(): void } {
  const label = (time: unknown, ms: boolean) => (timeOf ? clock(timeOf(time as number), ms) : "");
  const chart = createChart(el, {
    height,
    autoSize: true,
    layout: { background: { type: ColorType.Solid, color: "transparent" }, textColor: "#7a8699", fontSize: 11, attributionLogo: false },
    grid: { vertLines: { color: "#151c27" }, horzLines: { color: "#151c27" } },
    rightPriceScale: { borderColor: "#1e2633" },
    timeScale: {
      borderColor: "#1e2633",
      timeVisible: true,
      secondsVisible: true,
      // Ticks come several a second: the axis shows milliseconds, or its labels would repeat.
      ...(timeOf ? { tickMarkFormatter: (time: unknown) => label(time, true) } : {}),
    },
    ...(timeOf ? { localization: { timeFormatter: (time: unknown) => label(time, true) } } : {}),
    crosshair: { mode: 1 },
  });
  const series = kind === "area"
    ? chart.addSeries(AreaSeries, { lineColor: "#3b82f6", topColor: "rgba(59,130,246,0.28)", bottomColor: "rgba(59,130,246,0.02)", lineWidth: 2 })
    : chart.addSeries(LineSeries, { color: "#1fbf75", lineWidth: 2 });
  return { chart, series, dispose: () => chart.remove() };
}
