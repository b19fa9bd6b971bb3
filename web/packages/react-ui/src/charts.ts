// @tickmesh/react-ui/charts: the components that draw with TradingView's lightweight-charts,
// apart from the main entry so that an app can load them lazily (React.lazy) and keep the
// charting library out of its first download.
export { PortfolioChart, type PortfolioChartProps } from "./PortfolioChart.js";
export { PriceChart, type PriceChartProps } from "./PriceChart.js";
