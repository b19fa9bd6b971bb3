"""Presence: who is here, per topic, across every edge (PROTOCOL.md, "Presence").

Membership lives in NATS, in the ``tm_presence`` KV bucket: each edge writes one key per
(topic, user) it serves and holds a lease key with a per-key TTL that it renews every heartbeat.
Each edge that has subscribers for a topic watches that topic's keys and builds the member list
itself, so no process but NATS holds shared state and any edge serves any member.

* :mod:`.records` spells the keys and encodes the records (the contract between edges).
* :mod:`.local` is this edge's own memberships: connections, multi-tab counting, the grace
  period. Sans-I/O: it hands back the KV writes to make.
* :mod:`.roster` is one topic's member list as seen from every edge's records: listing order,
  limits, versioned and coalesced deltas. Sans-I/O.
* :mod:`.directory` holds the rosters of one edge and the liveness of every edge. Sans-I/O.
* :mod:`.store` is the thin asyncio adapter to NATS: leases, writes, watches, purges.
"""
