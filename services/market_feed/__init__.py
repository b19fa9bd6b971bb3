"""market-feed: provider adapters turned into normalised ``Tick`` messages on NATS."""
