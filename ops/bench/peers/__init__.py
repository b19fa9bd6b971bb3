"""Peers measured beside tickmesh with the same workload in the same run.

* ``nats-ws``: nats-server's own WebSocket listener (the reference limit for this machine);
  :mod:`.nats_ws` writes its configuration.
* ``quart``: a naive broadcaster as a Quart app on Hypercorn (:mod:`.quart_naive`).
* ``starlette``: the same naive broadcaster as a Starlette app on uvicorn (:mod:`.starlette_naive`).
* ``socketio``: python-socketio rooms on uvicorn (:mod:`.socketio_peer`).

The naive broadcasters share :mod:`.naive`: one NATS subscription per subject, an
``asyncio.Queue`` per connection, one WebSocket send per message. Each peer module runs as
``python -m tickmesh.ops.bench.peers.<module>`` with ``NATS_URL`` and ``PEER_PORT`` set.
"""
