export { TickmeshProvider, useTickmeshClient, useTickmeshStore, type TickmeshProviderProps } from "./provider.js";
export {
  useAnnouncements, useChannel, usePriceHistory, useConnectionStatus, useNotifications, usePortfolio, usePrice, useSubmitOrder, useTrades,
  type PriceSnapshot, type SubmitOrder,
} from "./hooks.js";
export type { ChannelSnapshot } from "./channel-entry.js";
export type { ConnectionSnapshot } from "./store.js";
export { TickmeshStore } from "./store.js";
export { OrderBook, type OptimisticOrder, type OrderInput, type OrderStatus, type Rejection, type OrdersSnapshot } from "./orders.js";
export { usePresence, type PresenceSnapshot } from "./presence.js";
export { applyOps, useWatchlist, WatchlistModel, type WatchlistView } from "./watchlists.js";
