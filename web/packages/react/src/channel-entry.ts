import { isEventChannel, isLive, type CachedMessage, type ChannelStatus, type TickmeshClient, type TickmeshError } from "@tickmesh/client";

/** What a channel hook returns. A new object only when something in it changed. */
export interface ChannelSnapshot<T> {
  /** The latest value (state channels) or the latest event. */
  data: T | undefined;
  /** Event channels: recent events, newest first (bounded). Empty for state channels. */
  items: readonly T[];
  /** The value before `data` (state channels), for up/down flashes. */
  previous: T | undefined;
  status: ChannelStatus;
  error: TickmeshError | undefined;
  /** True when the value may be out of date: not connected, or the source said `stale: true`. */
  stale: boolean;
  /** When `data` arrived (client clock, ms). */
  updatedAt: number | undefined;
  /** Whether an item arrived as the history a freshly loaded page starts with (the past:
   * show it, do not announce it) rather than live. Stable function. */
  replayed: (item: T) => boolean;
}

const MAX_ITEMS = 200;

/**
 * One channel as the hooks of one provider see it: a reference-counted client subscription
 * (the first hook subscribes, the last one unsubscribes) and an immutable snapshot for
 * useSyncExternalStore, replaced only when the data, status or staleness changes.
 */
export class ChannelEntry<T = unknown> {
  private refs = 0;
  private off: (() => void) | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly event: boolean;
  private readonly historic = new WeakSet<object>();
  snapshot: ChannelSnapshot<T>;

  constructor(
    private readonly client: TickmeshClient,
    readonly ch: string,
    private readonly maxHz?: number,
  ) {
    this.event = isEventChannel(ch);
    const replayed = (item: T) => typeof item === "object" && item !== null && this.historic.has(item);
    this.snapshot = { data: undefined, items: [], previous: undefined, status: "idle", error: undefined, stale: true, updatedAt: undefined, replayed };
  }

  /** For useSyncExternalStore: stable identity, returns its own disposer. */
  readonly subscribe = (onChange: () => void): (() => void) => {
    this.listeners.add(onChange);
    if (++this.refs === 1) this.start();
    return () => {
      this.listeners.delete(onChange);
      if (--this.refs === 0) this.stopListening();
    };
  };

  readonly getSnapshot = (): ChannelSnapshot<T> => this.snapshot;

  /** Connection state or subscription status changed: recompute what depends on them. */
  refresh(): void {
    const { status, error } = this.client.channelStatus(this.ch);
    this.update({ status, error, stale: this.isStale(this.snapshot.data) });
  }

  /** The channel's stream was reset (new epoch): what we hold belongs to the old one. */
  reset(): void {
    this.update({ items: [], data: undefined, previous: undefined, updatedAt: undefined });
  }

  private start(): void {
    // Serve what the client already holds at once (another provider or an earlier mount).
    const cached = this.client.history<string>(this.ch) as readonly CachedMessage<T>[];
    const last = this.client.last<string>(this.ch) as CachedMessage<T> | undefined;
    for (const m of cached) this.remember(m);
    if (this.event && cached.length && this.snapshot.items.length === 0) {
      this.update({ items: cached.map((m) => m.data).reverse().slice(0, MAX_ITEMS) });
    }
    if (last && this.snapshot.updatedAt === undefined) this.update({ data: last.data, updatedAt: last.receivedAt });
    this.off = this.client.subscribe(this.ch, (m) => this.onMessage(m as CachedMessage<T>), { maxHz: this.maxHz });
    this.refresh();
  }

  private stopListening(): void {
    this.off?.();
    this.off = undefined;
  }

  private remember(message: CachedMessage<T>): void {
    if (message.history && typeof message.data === "object" && message.data !== null) this.historic.add(message.data);
  }

  private onMessage(message: CachedMessage<T>): void {
    this.remember(message);
    if (!this.event && message.receivedAt === this.snapshot.updatedAt && message.data === this.snapshot.data) return;
    const items = this.event ? [message.data, ...this.snapshot.items].slice(0, MAX_ITEMS) : this.snapshot.items;
    this.update({
      data: message.data,
      previous: this.event ? this.snapshot.previous : this.snapshot.data,
      items,
      updatedAt: message.receivedAt,
      stale: this.isStale(message.data),
      status: "live",
      error: undefined,
    });
  }

  private isStale(data: T | undefined): boolean {
    if (!isLive(this.client.state)) return true;
    return typeof data === "object" && data !== null && (data as { stale?: unknown }).stale === true;
  }

  private update(patch: Partial<ChannelSnapshot<T>>): void {
    const next = { ...this.snapshot, ...patch };
    const keys = Object.keys(patch) as (keyof ChannelSnapshot<T>)[];
    if (keys.every((k) => next[k] === this.snapshot[k])) return; // unchanged: no re-render
    this.snapshot = next;
    for (const listener of [...this.listeners]) listener();
  }
}
