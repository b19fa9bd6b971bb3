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
  private readonly offs: Array<() => void> = [];

  constructor(readonly client: TickmeshClient) {
    this.orders = new OrderBook(client);
    this.connection = this.readConnection();
    this.offs.push(
      client.events.on("state", () => this.onConnectionChange()),
      client.events.on("welcome", () => this.onConnectionChange()),
      client.events.on("subscription", ({ ch }) => this.entries.get(ch)?.refresh()),
    );
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

  dispose(): void {
    for (const off of this.offs) off();
  }

  private onConnectionChange(): void {
    this.connection = this.readConnection();
    for (const listener of [...this.connectionListeners]) listener();
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
