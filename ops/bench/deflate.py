"""What permessage-deflate would cost the edge: CPU per delivered message, with and without.

Compression is per connection (each WebSocket keeps its own deflate context), so an edge that
encodes a frame once for all subscribers would compress it again for every subscriber. This
measures, in one run, the wsproto framing of a typical batch for N connections without
compression (the peer) and with permessage-deflate (wsproto's own extension, as Hypercorn uses
it), and prints µs per message and the bytes on the wire.

    python -m tickmesh.ops.bench.deflate [--connections 1000] [--messages 200]
"""

from __future__ import annotations

import argparse
import time

import orjson
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate


def _server(deflate: bool) -> WSConnection:
    """A server-side wsproto connection after a real handshake (with or without the extension)."""
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    exts = [PerMessageDeflate()] if deflate else []
    server.receive_data(client.send(Request(host="edge", target="/ws", extensions=exts)))
    for event in server.events():
        if isinstance(event, Request):
            client.receive_data(server.send(AcceptConnection(extensions=[PerMessageDeflate()] if deflate else [])))
    return server


def frames(n: int) -> list[str]:
    out = []
    for i in range(n):
        tick = {
            "symbol": "AAPL",
            "last": f"187.{i % 100:02d}",
            "bid": "187.19",
            "ask": "187.21",
            "size": "100",
            "ts": 1795630850562443 + i,
            "ingest_ts": 1795630850562443 + i,
            "provider": "synthetic",
        }
        out.append(orjson.dumps({"op": "msg", "ch": "prices:AAPL", "seq": 1795630850562443 + i, "data": tick}).decode())
    return out


def run(connections: int, messages: int, deflate: bool) -> tuple[float, float]:
    conns = [_server(deflate) for _ in range(connections)]
    payloads = frames(messages)
    wire = 0
    start = time.process_time()
    for text in payloads:
        for conn in conns:
            wire += len(conn.send(TextMessage(data=text)))
    cpu = time.process_time() - start
    return cpu / (connections * messages) * 1e6, wire / (connections * messages)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args(argv)
    plain_us, plain_b = run(args.connections, args.messages, deflate=False)
    deflate_us, deflate_b = run(args.connections, args.messages, deflate=True)
    print(f"{'':28}{'µs CPU/message':>16}{'bytes/message':>15}")
    print(f"{'no compression (peer)':28}{plain_us:>16.2f}{plain_b:>15.0f}")
    print(f"{'permessage-deflate':28}{deflate_us:>16.2f}{deflate_b:>15.0f}")
    print(f"deflate / plain: {deflate_us / plain_us:.1f}x CPU, {deflate_b / plain_b:.2f}x bytes")


if __name__ == "__main__":
    main()
