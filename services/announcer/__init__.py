"""announcer service (see its service module)."""
