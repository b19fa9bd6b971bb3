/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
 * Jitter"): attempt n waits a uniformly random time in [0, min(maxMs, baseMs * 2^n)].
 * Full jitter spreads a crowd of clients that lost the same edge, so they do not all return in
 * the same instant. Defaults: 0.5 s base, 20 s cap.
 */
export interface BackoffOptions {
  /** First attempt's upper bound, ms (default 500). */
  baseMs?: number;
  /** Largest upper bound, ms (default 20000). */
  maxMs?: number;
  /** Source of randomness in [0, 1): injectable for tests. */
  random?: () => number;
}

export const BACKOFF_DEFAULTS = { baseMs: 500, maxMs: 20_000 } as const;

export class Backoff {
  private attempt = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? BACKOFF_DEFAULTS.baseMs;
    this.maxMs = options.maxMs ?? BACKOFF_DEFAULTS.maxMs;
    this.random = options.random ?? Math.random;
  }

  /** The upper bound of the next delay, without consuming an attempt. */
  ceiling(): number {
    // Cap the exponent so 2^n never overflows into Infinity after a long outage.
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
  }

  /** The delay before the next attempt, ms; each call counts one attempt. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceiling());
    this.attempt += 1;
    return delay;
  }

  /** Back to the first attempt: call once a connection has succeeded. */
  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
