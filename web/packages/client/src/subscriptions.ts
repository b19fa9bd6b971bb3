import type { CachedMessage } from "./cache.js";
import type { TickmeshError } from "./errors.js";

/**
 * A channel's subscription as the application sees it:
 * `idle` (nobody listens), `pending` (wanted, not connected), `subscribing` (sent, no reply
 * yet), `live` (the edge confirmed), `error` (refused: see the error's code).
 */
export type ChannelStatus = "idle" | "pending" | "subscribing" | "live" | "error";

export type Listener<T = unknown> = (message: CachedMessage<T>) => void;

export interface SubscriptionRecord {
  ch: string;
  listeners: Set<Listener>;
  maxHz?: number;
  status: ChannelStatus;
  error?: TickmeshError;
}

/** Local listeners per channel, counted: one edge subscription however many listen. */
export class Subscriptions {
  private readonly records = new Map<string, SubscriptionRecord>();

  add(ch: string, listener: Listener, maxHz?: number): { record: SubscriptionRecord; created: boolean } {
    let record = this.records.get(ch);
    const created = !record;
    if (!record) {
      record = { ch, listeners: new Set(), maxHz, status: "pending" };
      this.records.set(ch, record);
    }
    record.listeners.add(listener);
    return { record, created };
  }

  /** Remove a listener; true when it was the last one. */
  remove(ch: string, listener: Listener): boolean {
    const record = this.records.get(ch);
    if (!record || !record.listeners.delete(listener)) return false;
    return record.listeners.size === 0;
  }

  get(ch: string): SubscriptionRecord | undefined {
    return this.records.get(ch);
  }

  delete(ch: string): void {
    this.records.delete(ch);
  }

  all(): SubscriptionRecord[] {
    return [...this.records.values()];
  }

  channels(): string[] {
    return [...this.records.keys()];
  }
}
