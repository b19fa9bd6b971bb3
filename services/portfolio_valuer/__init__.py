"""portfolio_valuer service (see its service module)."""
