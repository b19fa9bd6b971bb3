"""broker service (see its service module)."""
