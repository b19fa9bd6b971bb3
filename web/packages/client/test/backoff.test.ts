import { describe, expect, it } from "vitest";
import { Backoff, BACKOFF_DEFAULTS } from "../src/backoff.js";

describe("Backoff (full jitter)", () => {
  it("documents 0.5 s to 20 s", () => {
    expect(BACKOFF_DEFAULTS).toEqual({ baseMs: 500, maxMs: 20000 });
  });

  it("doubles the ceiling each attempt up to the cap", () => {
    const b = new Backoff({ random: () => 0.999999 });
    const delays = Array.from({ length: 10 }, () => b.next());
    expect(delays.slice(0, 7)).toEqual([499, 999, 1999, 3999, 7999, 15999, 19999]);
    expect(Math.max(...delays)).toBeLessThan(20000);
  });

  it("draws uniformly from zero to the ceiling (full jitter)", () => {
    let r = 0;
    const b = new Backoff({ random: () => r });
    expect(b.next()).toBe(0);
    r = 0.5;
    expect(b.next()).toBe(500); // second attempt: ceiling 1000
    for (let i = 0; i < 100; i++) b.next();
    expect(b.ceiling()).toBe(20000); // no overflow after a long outage
  });

  it("starts over after reset", () => {
    const b = new Backoff({ random: () => 0.999999 });
    b.next();
    b.next();
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(499);
  });
});
