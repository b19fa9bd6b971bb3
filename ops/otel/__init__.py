"""OpenTelemetry collector configuration and the tracing-overhead measurement (overhead.py)."""
