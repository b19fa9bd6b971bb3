import { isLive, type ConnectionState, type TickmeshClient, type TickmeshError, type TransportName } from "@tickmesh/client";
import { ChannelEntry } from "./channel-entry.js";
import { OrderBook } from "./orders.js";

export interface ConnectionSnapshot {
  state: ConnectionState;
  /** The transport in use while connected (`websocket`, `sse`, `polling`). */
  transport: TransportName | undefined;
  /** Whether frames flow (connected or degraded). */
  live: boolean;
  /** Why we are not connected, when it is final (a "do not reconnect" code). */
  error: TickmeshError | undefined;
  /** When the state last changed (ms). */
  since: number;
  /** When the next reconnect attempt is due (ms), while reconnecting. */
  nextRetryAt: number | undefined;
  user: string | undefined;
}

/**
 * Everything the hooks of one `<TickmeshProvider>` share: channel entries (one subscription per
 * channel, reference-counted), the connection snapshot and the optimistic order book. Owned by
 * the provider, never module-global, so two providers (or tests) never see each other's data.
 */
export class TickmeshStore {
  private readonly entries = new Map<string, ChannelEntry<unknown>>();
  private readonly connectionListeners = new Set<() => void>();
  readonly orders: OrderBook;
  connection: ConnectionSnapshot;

  constructor(readonly client: TickmeshClient) {
    this.orders = new OrderBook(client);
    this.connection = this.readConnection();
  }

  /**
   * Follow the client's events until the returned function is called. Called from an effect
   * (so React StrictMode's unmount-and-remount in development attaches again); catches up on
   * whatever changed while detached.
   */
  attach(): () => void {
    const offs = [
      this.client.events.on("state", () => this.onConnectionChange()),
      this.client.events.on("welcome", () => this.onConnectionChange()),
      this.client.events.on("recovery", ({ ch, reason }) => {
        if (reason !== "epoch_changed") return;
        for (const entry of this.entries.values()) if (entry.ch === ch) entry.reset();
      }),
      this.client.events.on("subscription", ({ ch }) => {
        for (const entry of this.entries.values()) if (entry.ch === ch) entry.refresh();
      }),
    ];
    this.onConnectionChange();
    return () => offs.forEach((off) => off());
  }

  channel<T>(ch: string, maxHz?: number): ChannelEntry<T> {
    const key = maxHz === undefined ? ch : `${ch}@${maxHz}`;
    let entry = this.entries.get(key);
    if (!entry) this.entries.set(key, (entry = new ChannelEntry<unknown>(this.client, ch, maxHz)));
    return entry as ChannelEntry<T>;
  }

  readonly subscribeConnection = (onChange: () => void) => {
    this.connectionListeners.add(onChange);
    return () => void this.connectionListeners.delete(onChange);
  };

  readonly getConnection = () => this.connection;

  private onConnectionChange(): void {
    const next = this.readConnection();
    const prev = this.connection;
    const same = next.state === prev.state && next.transport === prev.transport && next.error === prev.error
      && next.nextRetryAt === prev.nextRetryAt && next.user === prev.user;
    if (!same) {
      this.connection = next;
      for (const listener of [...this.connectionListeners]) listener();
    }
    for (const entry of this.entries.values()) entry.refresh();
  }

  private readConnection(): ConnectionSnapshot {
    const c = this.client;
    return {
      state: c.state,
      transport: c.transportName,
      live: isLive(c.state),
      error: c.error,
      since: Date.now(),
      nextRetryAt: c.nextRetryAt,
      user: c.session?.user,
    };
  }
}
