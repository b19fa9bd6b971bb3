// The price chart's data: one point per tick, evenly spaced, labelled with each tick's own time
// (lightweight-charts itself is drawn in the browser tests, web/e2e).
import { describe, expect, it } from "vitest";
import { clock, tickTime, toPoints, toTickPoints } from "../src/chart-kit.js";

const S = 1_000_000; // µs
const T0 = 1_796_171_501 * S; // a tick's `ts` as market-feed stamps it

describe("toTickPoints", () => {
  it("keeps every tick of a second, in order, each labelled with its own time", () => {
    const ticks = [
      { us: T0, value: 1 },
      { us: T0 + 200_000, value: 2 },
      { us: T0 + 900_123, value: 3 },
    ];
    const points = toTickPoints(ticks);
    expect(points.map((p) => p.value)).toEqual([1, 2, 3]);
    expect(points.map((p) => tickTime(p.time))).toEqual([T0, T0 + 200_000, T0 + 900_000]);
    // The per-second form keeps one of them.
    expect(toPoints(ticks)).toEqual([{ time: T0 / S, value: 3 }]);
  });

  it("moves a tick of the same millisecond on by one, and leaves out one that goes back", () => {
    const points = toTickPoints([
      { us: T0, value: 1 },
      { us: T0 + 300, value: 2 },
      { us: T0 - 5_000, value: 3 },
      { us: T0 + 2_000, value: 4 },
    ]);
    expect(points.map((p) => [tickTime(p.time) - T0, p.value])).toEqual([[0, 1], [1_000, 2], [2_000, 4]]);
  });

  it("gives lightweight-charts whole, increasing times within the range of a Date", () => {
    const points = toTickPoints(Array.from({ length: 50 }, (_, i) => ({ us: T0 + i * 7_000, value: i })));
    const times = points.map((p) => p.time as number);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(new Set(times).size).toBe(50);
    expect(points.every((p) => Number.isInteger(p.time) && !Number.isNaN(new Date(p.time * 1000).getTime()))).toBe(true);
  });
});

describe("clock", () => {
  it("shows local wall-clock time, to the millisecond when asked", () => {
    const d = new Date(2026, 11, 1, 9, 5, 7, 42);
    const us = d.getTime() * 1000;
    expect(clock(us)).toBe("09:05:07");
    expect(clock(us, true)).toBe("09:05:07.042");
  });
});
