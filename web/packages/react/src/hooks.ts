import { compareDecimal, type Announcement, type CachedMessage, type DataOf, type Execution, type Notification, type Portfolio, type Tick } from "@tickmesh/client";
import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import type { ChannelSnapshot } from "./channel-entry.js";
import type { OrderInput, OrdersSnapshot } from "./orders.js";
import { useTickmeshClient, useTickmeshStore } from "./provider.js";
import type { ConnectionSnapshot } from "./store.js";

/** `{state, transport, live, error, since, nextRetryAt, user}`; re-renders on state changes only. */
export function useConnectionStatus(): ConnectionSnapshot {
  const store = useTickmeshStore();
  return useSyncExternalStore(store.subscribeConnection, store.getConnection, store.getConnection);
}

/**
 * `{data, items, previous, status, error, stale, updatedAt}` for any channel. Hooks of the same
 * provider share one subscription per channel; a component re-renders only when its channel's
 * snapshot changes.
 */
export function useChannel<C extends string>(ch: C, options: { maxHz?: number } = {}): ChannelSnapshot<DataOf<C>> {
  const store = useTickmeshStore();
  const entry = useMemo(() => store.channel<DataOf<C>>(ch, options.maxHz), [store, ch, options.maxHz]);
  return useSyncExternalStore(entry.subscribe, entry.getSnapshot, entry.getSnapshot);
}

export interface PriceSnapshot extends ChannelSnapshot<Tick> {
  /** Direction of the last change of `last`: for up/down flashes. */
  direction: "up" | "down" | "flat";
}

/** The live price of one symbol: `{data: Tick, direction, status, error, stale, updatedAt, ...}`. */
export function usePrice(symbol: string, options: { maxHz?: number } = {}): PriceSnapshot {
  const snap = useChannel(`prices:${symbol}` as `prices:${string}`, options);
  return useMemo(() => {
    const cmp = snap.data && snap.previous ? compareDecimal(snap.data.last, snap.previous.last) : 0;
    return { ...snap, direction: cmp > 0 ? "up" : cmp < 0 ? "down" : "flat" };
  }, [snap]);
}

/**
 * The recent ticks of `symbol`, oldest first, then every live one (for charts and sparklines):
 * the client must be created with `priceHistory` (how many ticks it asks for and keeps). A new
 * array on each tick; shares the channel's subscription with `usePrice`.
 */
export function usePriceHistory(symbol: string): readonly CachedMessage<Tick>[] {
  const client = useTickmeshClient();
  const ch = `prices:${symbol}` as const;
  const [ticks, setTicks] = useState<readonly CachedMessage<Tick>[]>(() => client.history(ch).slice());
  useEffect(() => {
    setTicks(client.history(ch).slice());
    return client.subscribe(ch, () => setTicks(client.history(ch).slice()));
  }, [client, ch]);
  return ticks;
}

/** The user's live portfolio valuation: `{data: Portfolio, status, error, stale, updatedAt}`. */
export function usePortfolio(): ChannelSnapshot<Portfolio> {
  return useChannel("portfolio");
}

/** The user's executions, newest first in `items`. */
export function useTrades(): ChannelSnapshot<Execution> {
  return useChannel("trades");
}

/** The user's notifications, newest first in `items` (each once, also across reconnects). */
export function useNotifications(): ChannelSnapshot<Notification> {
  return useChannel("notifications");
}

/** Announcements in force (not expired; by id, the latest version), newest first in `items`. */
export function useAnnouncements(): ChannelSnapshot<Announcement> {
  const snap = useChannel("announcements");
  // Re-evaluate when the next announcement starts or ends, without waiting for new data.
  const [clock, setClock] = useState(0);
  useEffect(() => {
    const nowUs = Date.now() * 1000;
    const next = Math.min(...snap.items.flatMap((a) => [a.starts_at, a.ends_at]).filter((t): t is number => t !== undefined && t > nowUs));
    if (!Number.isFinite(next)) return;
    const timer = setTimeout(() => setClock((c) => c + 1), Math.min(2 ** 31 - 1, (next - nowUs) / 1000 + 5));
    return () => clearTimeout(timer);
  }, [snap, clock]);
  return useMemo(() => {
    const nowUs = Date.now() * 1000;
    const seen = new Set<string>();
    const items = snap.items.filter((a) => {
      const key = a.id ?? a.text;
      if (seen.has(key)) return false;
      seen.add(key);
      return (a.ends_at === undefined || a.ends_at > nowUs) && (a.starts_at === undefined || a.starts_at <= nowUs);
    });
    return items.length === snap.items.length ? snap : { ...snap, items };
  }, [snap, clock]);
}

export interface SubmitOrder extends OrdersSnapshot {
  /** Show the order at once as pending; resolves when the edge accepts it, rejects (and rolls it back) with a TickmeshError. */
  submit(order: OrderInput): Promise<unknown>;
}

/**
 * Optimistic order entry: `{submit, orders, rejections}`. Orders reconcile with executions on
 * the `trades` channel (this hook keeps it subscribed), matched by client_order_id.
 */
export function useSubmitOrder(): SubmitOrder {
  const store = useTickmeshStore();
  const book = store.orders;
  // Executions reconcile the book; shares the provider's `trades` subscription. The book is
  // idempotent, so several mounted hooks feeding it the same execution change nothing.
  useEffect(() => store.client.subscribe("trades", (m) => book.onExecution(m.data)), [store, book]);
  const snapshot = useSyncExternalStore(book.subscribe, book.getSnapshot, book.getSnapshot);
  const submit = useCallback((order: OrderInput) => book.submit(order), [book]);
  return useMemo(() => ({ ...snapshot, submit }), [snapshot, submit]);
}
