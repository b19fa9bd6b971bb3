// @tickmesh/react-ui: components for trading screens on tickmesh. Each reads live data through
// the hooks of @tickmesh/react, so it must sit inside a <TickmeshProvider>. Styles:
// `import "@tickmesh/react-ui/styles.css"`. Charts: `@tickmesh/react-ui/charts` (lazy-loadable).
// Props are documented on each component (README.md).
export { AnnouncementBanner, type AnnouncementBannerProps } from "./AnnouncementBanner.js";
export { Blotter, type BlotterProps } from "./Blotter.js";
export { ConnectionIndicator, type ConnectionIndicatorProps } from "./ConnectionIndicator.js";
export { NotificationCentre, NotificationFeed, NotificationList, type NotificationCentreProps, type NotificationListProps } from "./Notifications.js";
export { OrderTicket, type OrderTicketProps } from "./OrderTicket.js";
export { PriceCell, type PriceCellProps } from "./PriceCell.js";
export { Sparkline, type SparklineProps } from "./Sparkline.js";
export { clock, money, priceDigits, signed, tone } from "./format.js";
