"""Publishes one price tick whose `msg` frame on the edge is exactly LENGTH bytes (JSON codec).

Usage: tick.py NATS_URL SYMBOL SEQ LENGTH. The frame the edge sends is
`{"op":"msg","ch":"prices:<SYMBOL>","seq":<SEQ>,"data":<payload>}`; the payload is padded so
that the whole frame has the length asked for (a browser test checks every length encoding).
"""

import asyncio
import sys

import nats
import orjson

from tickmesh.contracts.channels import tick_subject


def payload(symbol: str, seq: int, length: int) -> bytes:
    prefix = b'{"op":"msg","ch":"prices:%s","seq":%d,"data":' % (symbol.encode(), seq)
    empty = orjson.dumps({"symbol": symbol, "last": "1.00", "pad": ""})
    pad = length - len(prefix) - 1 - len(empty)
    if pad < 0:
        raise SystemExit(f"{length} bytes is too short for a tick frame")
    return orjson.dumps({"symbol": symbol, "last": "1.00", "pad": "x" * pad})


async def main(url: str, symbol: str, seq: int, length: int) -> None:
    nc = await nats.connect(url)
    await nc.publish(tick_subject(symbol), payload(symbol, seq, length), headers={"Tm-Seq": str(seq)})
    await nc.flush()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
