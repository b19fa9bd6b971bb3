import { EVENT_KINDS, type ChannelData, type ChannelKind } from "./generated/contracts.js";

/** The kind of a channel name: the part before `:` (`prices:AAPL` -> `prices`). */
export function kindOf(channel: string): ChannelKind | undefined {
  const prefix = channel.split(":", 1)[0] as ChannelKind;
  return prefix in KINDS ? prefix : undefined;
}

const KINDS: Record<ChannelKind, true> = {
  prices: true, portfolio: true, trades: true, notifications: true, alerts: true, announcements: true, news: true,
  presence: true, watchlist: true, flags: true,
};

/** Event channels deliver every message and resume with `since`; state channels conflate. */
export const isEventChannel = (channel: string): boolean => {
  const kind = kindOf(channel);
  return kind !== undefined && EVENT_KINDS.includes(kind);
};

/** The data type of a channel name, at the type level: `DataOf<"prices:AAPL">` is `Tick`. */
export type DataOf<C extends string> = C extends `${infer K}:${string}`
  ? K extends ChannelKind ? ChannelData[K] : unknown
  : C extends ChannelKind ? ChannelData[C] : unknown;

export const priceChannel = (symbol: string): `prices:${string}` => `prices:${symbol}`;
