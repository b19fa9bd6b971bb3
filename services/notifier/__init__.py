"""notifier: user notifications (trades, price alerts, news on held symbols) and market news."""
