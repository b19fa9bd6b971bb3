/**
 * Causal order between the user's own `trades` and `portfolio` (contracts/PROTOCOL.md, "Causal
 * order"), on the client's side.
 *
 * A portfolio value names, in `trade_seq`, the highest `trades` position among the fills it
 * includes. The edge already holds such a value until the fill went out on the same connection;
 * this covers what one connection cannot: trades and portfolio arriving over different
 * transports or connections (a shared hub, a reconnect, a fallback). A value naming position S
 * waits while the client subscribes to `trades` and has not yet reached S there, for at most
 * `holdMs` from the first value held; a newer value replaces the held one (the latest value of a
 * state channel is what counts) and waits for the higher position. Sans I/O: time is passed in.
 */

/** What the hold needs to know of the client's `trades` subscription. */
export interface TradesView {
  subscribed: boolean;
  /** The position reached on `trades` (undefined while it is being subscribed). */
  seq: number | undefined;
}

export class CausalHold<M> {
  private held: M | undefined;
  private need = 0;
  private passed = 0; // a position whose wait timed out: not waited for again
  /** When the held value goes regardless (ms), while one is held. */
  deadline: number | undefined;

  constructor(private readonly holdMs: number) {}

  private waiting(trades: TradesView): boolean {
    return this.holdMs > 0 && this.need > this.passed && trades.subscribed && (trades.seq === undefined || trades.seq < this.need);
  }

  /** A portfolio value naming `tradeSeq`: `true` when it must wait (it is held), `false` to show it now. */
  offer(message: M, tradeSeq: number | undefined, trades: TradesView, now: number): boolean {
    if (typeof tradeSeq === "number" && tradeSeq > this.need) this.need = tradeSeq;
    if (!this.waiting(trades)) {
      this.held = undefined;
      this.deadline = undefined;
      return false;
    }
    if (this.held === undefined) this.deadline = now + this.holdMs;
    this.held = message;
    return true;
  }

  /** The held value, once `trades` has caught up (or stopped being subscribed). */
  release(trades: TradesView): M | undefined {
    if (this.held === undefined || this.waiting(trades)) return undefined;
    return this.take();
  }

  /** The held value, if its time is up; its position then counts as reached. */
  expire(now: number): M | undefined {
    if (this.held === undefined || this.deadline === undefined || now < this.deadline) return undefined;
    this.passed = this.need;
    return this.take();
  }

  /** Drop a held value (the portfolio subscription ended). */
  clear(): void {
    this.held = undefined;
    this.deadline = undefined;
  }

  private take(): M | undefined {
    const held = this.held;
    this.held = undefined;
    this.deadline = undefined;
    return held;
  }
}
