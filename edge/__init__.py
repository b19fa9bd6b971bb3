"""The edge: bridges NATS subjects to browsers over WebSocket (then SSE and polling).

Layout: ``session`` is the sans-I/O protocol core; ``frames`` encodes and decodes frames;
``outbox`` is each connection's bounded, conflating send queue; ``hub`` fans one upstream message
out to every local subscriber; ``upstream`` owns the NATS connection; ``ws`` adapts the core to a
WebSocket; ``app`` wires them into a Quart application; ``settings`` reads the environment.
"""
