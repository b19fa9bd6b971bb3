"""notifier service (see its service module)."""
