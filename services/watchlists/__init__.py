"""Shared watch-lists: created, shared and edited together, stored in JetStream KV."""
