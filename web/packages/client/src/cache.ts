/** One delivered message as the client keeps it. */
export interface CachedMessage<T = unknown> {
  ch: string;
  seq: number;
  data: T;
  /** Client clock, ms since the epoch, when it arrived. */
  receivedAt: number;
  /** True for messages a first subscription replayed as `history` (a page filling its lists):
   * the past, not news. Absent for live messages and for those a resume (`since`) caught up. */
  history?: boolean;
}

/**
 * The last value of every channel (served at once to a new subscriber, so a second component
 * showing AAPL does not wait for the next tick) and, for event channels, a bounded recent
 * history (so a late subscriber sees what arrived before it).
 */
export class MessageCache {
  private readonly last = new Map<string, CachedMessage>();
  private readonly recent = new Map<string, CachedMessage[]>();

  constructor(private readonly historyLimit = 100) {}

  /** Keep `message` as its channel's last value and, when `keepHistory`, in its recent list
   * (at most `limit` messages; default the cache's own limit). */
  put(message: CachedMessage, keepHistory: boolean, limit = this.historyLimit): void {
    this.last.set(message.ch, message);
    if (!keepHistory || limit <= 0) return;
    let list = this.recent.get(message.ch);
    if (!list) this.recent.set(message.ch, (list = []));
    list.push(message);
    if (list.length > limit) list.splice(0, list.length - limit);
  }

  get<T>(ch: string): CachedMessage<T> | undefined {
    return this.last.get(ch) as CachedMessage<T> | undefined;
  }

  history<T>(ch: string): readonly CachedMessage<T>[] {
    return (this.recent.get(ch) ?? []) as CachedMessage<T>[];
  }

  /** Forget a channel's messages (its stream was reset: what we hold describes another epoch). */
  clear(ch: string): void {
    this.last.delete(ch);
    this.recent.delete(ch);
  }
}
