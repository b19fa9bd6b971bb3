"""Socket-level fuzz of both WebSocket engines (direct, and Quart on Hypercorn): random and mutated frames, in JSON and
MessagePack, from several clients at once, against a real edge on a real NATS.

While alice's connections throw input at the edge (tests/fuzz/wire.py), bob stays connected and
his notifications keep flowing. Checked throughout and at the end:

* nothing crashes the edge: bob's connection answers every ping, ``/readyz`` stays 200, the
  process is alive and logged no error or traceback;
* no frame is answered with another user's data: no byte sent to alice's connections carries
  bob's notifications, and every ``msg`` is on a channel alice may read;
* every server frame is one the protocol documents, every ``err`` code and close code is in
  contracts/codes.toml (or the client's own close code, echoed as RFC 6455 requires);
* bob loses nothing meanwhile: his notifications arrive in order, without gaps or duplicates.

Budget: ``TICKMESH_FUZZ_SCALE`` (tests/fuzz/budget.py); ``TICKMESH_FUZZ_SEED`` replays a run.
Inputs from ``corpus/ws/*.bin`` (byte strings sent after the handshake, one per file) are
replayed first: every input that once found a defect stays a regression test.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import struct
import time
import urllib.request
from pathlib import Path

import msgpack
import nats
import orjson
import pytest

from tests.support.natsserver import NatsServer
from tests.support.procs import EdgeProcess
from tests.support.rawws import RawWebSocket
from tests.support.timing import t
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh import streams
from tickmesh.contracts.channels import Kind, user_subject
from tickmesh.contracts.codes import CLOSES, ERRORS
from tickmesh.contracts.frames import server_frames

from . import wire
from .budget import SCALE, seconds

# The budget scales with TICKMESH_FUZZ_SCALE, and so does the time a test may take.
pytestmark = pytest.mark.timeout(int(150 * SCALE) + 60)

CORPUS = Path(__file__).parent / "corpus" / "ws"
ERROR_CODES = {i.code for i in ERRORS.values()}
CLOSE_CODES = {i.code for i in CLOSES.values()}
SERVER_OPS = set(server_frames())
SECRET = b"SECRET-bob"
WORKERS = 6


class Findings:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.problems: list[str] = []
        self.stats: collections.Counter = collections.Counter()

    def problem(self, what: str, sent: list[bytes]) -> None:
        self.problems.append(f"{what} (seed {self.seed})")
        CORPUS.mkdir(parents=True, exist_ok=True)
        blob = b"".join(sent)
        (CORPUS / f"found-{abs(hash(blob)) % 10**10}.bin").write_bytes(blob)


def _sent_close_codes(sent: list[bytes]) -> set[int]:
    """Close codes a client may have sent (any two bytes in its input): the edge echoes them."""
    blob = b"".join(sent)
    return {struct.unpack("!H", blob[i : i + 2])[0] for i in range(len(blob) - 1)}


def check_frame(opcode: int, payload: bytes, msgpack_codec: bool, sent: list[bytes], found: Findings) -> int | None:
    """Validate one server frame; return its close code if it is a close."""
    if SECRET in payload:
        found.problem(f"bob's data reached alice: {payload[:200]!r}", sent)
    if opcode == wire.OP_CLOSE:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        found.stats[f"close {code}"] += 1
        client_code = (
            code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999
        ) and code in _sent_close_codes(sent)
        if code not in CLOSE_CODES and not client_code:
            found.problem(f"undocumented close code {code}: {payload[2:]!r}", sent)
        return code
    if opcode in (wire.OP_PING, wire.OP_PONG):
        return None
    if opcode != (wire.OP_BINARY if msgpack_codec else wire.OP_TEXT):
        found.problem(f"a data frame with opcode {opcode} on this subprotocol", sent)
        return None
    try:
        obj = msgpack.unpackb(payload) if msgpack_codec else orjson.loads(payload)
    except Exception:
        found.problem(f"an undecodable server frame {payload[:100]!r}", sent)
        return None
    for frame in obj if isinstance(obj, list) else [obj]:
        op = frame.get("op") if isinstance(frame, dict) else None
        found.stats[f"op {op}"] += 1
        if op not in SERVER_OPS:
            found.problem(f"undocumented server frame {frame}", sent)
        elif op == "err":
            found.stats[f"err {frame.get('code')}"] += 1
            if frame.get("code") not in ERROR_CODES:
                found.problem(f"undocumented error code {frame}", sent)
        elif op == "msg" and "bob" in str(frame.get("ch")):
            found.problem(f"alice got a message of {frame.get('ch')}", sent)
    return None


def _hypercorn_buffer_bug(line: str) -> bool:
    """A known Hypercorn defect, found by this fuzz on the Quart engine: after a message over the
    size limit (answered with close 1009), a message of the other type (text after binary, or the
    reverse) meets the unfinished buffer and raises TypeError in Hypercorn's ws_stream. Only that
    connection ends (it is closing already); the edge and everyone else carry on, which the rest
    of this test checks. The direct engine (the default) has its own reader and no such path."""
    return "hypercorn/protocol/ws_stream.py" in line and (
        "string argument expected" in line or "a bytes-like object is required" in line
    )


async def fuzz_one(url: str, rng: random.Random, found: Findings, replay: bytes | None = None) -> None:
    msgpack_codec = rng.random() < 0.5
    header_auth = rng.random() < 0.4
    extra = f"Authorization: Bearer {token('alice')}\r\n" if header_auth else ""
    ws = await RawWebSocket.connect(
        url, subprotocol="tickmesh.v1.msgpack" if msgpack_codec else "tickmesh.v1.json", extra=extra
    )
    sent: list[bytes] = []
    if not ws.response.startswith("HTTP/1.1 101"):
        found.problem(f"handshake refused: {ws.response[:100]}", sent)
        ws.close()
        return
    try:
        inputs: list[bytes] = []
        if not header_auth and rng.random() < 0.9:
            auth = {"op": "auth", "id": 0, "token": token("alice")}
            inputs.append(
                wire.client_frame(
                    wire.OP_BINARY if msgpack_codec else wire.OP_TEXT,
                    msgpack.packb(auth) if msgpack_codec else orjson.dumps(auth),
                )
            )
        inputs += (
            [replay] if replay is not None else [wire.message(rng, msgpack_codec) for _ in range(rng.randrange(1, 25))]
        )
        for data in inputs:
            sent.append(data)
            found.stats["inputs"] += 1
            try:
                await ws.send(data)
            except ConnectionError:
                break
        until = time.monotonic() + 2.0
        while time.monotonic() < until:  # what the edge answers, until it closes or goes quiet
            try:
                opcode, payload = await ws.frame(timeout=0.4)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                break
            except AssertionError as exc:  # rawws checks server frames are final, unmasked, no RSV
                found.problem(f"a malformed server frame: {exc}", sent)
                break
            if check_frame(opcode, payload, msgpack_codec, sent, found) is not None:
                break
    finally:
        ws.close()


class Bob:
    """bob's healthy connection: reads all the time, answers whether the edge still serves it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seqs: list[int] = []  # stream positions (the stream holds every user's notifications)
        self.texts: list[str] = []
        self.pongs: dict[int, asyncio.Event] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            frame = await self.client.recv(timeout=3600)
            if frame.get("op") == "msg":
                self.seqs.append(frame["seq"])
                self.texts.append(frame["data"]["text"])
            elif frame.get("op") == "pong" and frame.get("id") in self.pongs:
                self.pongs[frame["id"]].set()

    async def ping(self, n: int) -> None:
        self.pongs[n] = asyncio.Event()
        await self.client.send({"op": "ping", "id": n})
        await asyncio.wait_for(self.pongs[n].wait(), t(5))


@pytest.mark.parametrize("engine", ["direct", "quart"])
async def test_random_and_mutated_frames_never_hurt_the_edge_or_leak(engine, tmp_path):
    seed = int(os.environ.get("TICKMESH_FUZZ_SEED") or random.randrange(2**32))
    found = Findings(seed)
    server = NatsServer(tmp_path / "nats").start()
    edge = EdgeProcess(
        server.url,
        tmp_path,
        EDGE_WS_ENGINE=engine,
        EDGE_MAX_FRAME_BYTES="2000",
        EDGE_HARD_FRAME_BYTES="20000",
        EDGE_AUTH_TIMEOUT_S="2",
        EDGE_CMD_RATE="1000",
        EDGE_CMD_BURST="1000",
        EDGE_MAX_CONNS_PER_USER="100",
    )
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await streams.ensure(js)
    published = 0
    stop = asyncio.Event()

    async def publish() -> None:
        nonlocal published
        while not stop.is_set():
            for user in ("bob", "alice"):
                body = json.dumps({"text": f"SECRET-{user}-{published}" if user == "bob" else f"hello {published}"})
                await js.publish(
                    user_subject(Kind.NOTIFICATIONS, user),
                    body.encode(),
                    headers={"Nats-Msg-Id": f"{user}-{published}"},
                )
            published += 1
            await asyncio.sleep(0.05)

    try:
        client = await Client.login(edge.ws_url, token("bob"))
        ok, _ = await client.request("sub", ch="notifications")  # live before the first notification
        assert ok["op"] == "ok", ok
        bob = Bob(client)
        publisher = asyncio.ensure_future(publish())

        corpus = sorted(CORPUS.glob("*.bin")) if CORPUS.exists() else []
        for i, path in enumerate(corpus):
            await fuzz_one(edge.ws_url, random.Random(seed + i), found, replay=path.read_bytes())
        found.stats["corpus inputs"] = len(corpus)

        deadline = time.monotonic() + seconds(15)

        async def worker(k: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                await fuzz_one(edge.ws_url, random.Random(f"{seed}-{k}-{n}"), found)
                n += 1
                found.stats["connections"] += 1

        async def health() -> None:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                await bob.ping(n)
                with urllib.request.urlopen(f"{edge.http}/readyz", timeout=t(5)) as resp:
                    assert resp.status == 200
                assert edge.proc.poll() is None, "the edge died"
                await asyncio.sleep(1)

        await asyncio.gather(health(), *(worker(k) for k in range(WORKERS)))
        stop.set()
        await publisher
        await bob.ping(10**6)
        # bob's notifications: every one published, in order, once each.
        want = published
        end = time.monotonic() + t(10)
        while len(bob.seqs) < want and time.monotonic() < end:
            await asyncio.sleep(0.1)
        assert bob.seqs == sorted(set(bob.seqs)), "bob's positions go back or repeat"
        assert bob.texts == [f"SECRET-bob-{i}" for i in range(want)], "bob lost, repeated or reordered notifications"
        bob.reader.cancel()
        await bob.client.close()
    finally:
        stop.set()
        await nc.close()
        edge.stop()
        server.stop()
    print(f"ws fuzz ({engine}) seed {seed}: {dict(found.stats)}")
    logged = [line for line in edge.output().splitlines() if '"level":"error"' in line or "Traceback" in line]
    errors = [line for line in logged if not (engine == "quart" and _hypercorn_buffer_bug(line))]
    assert not errors, "the edge logged errors:\n" + "\n".join(errors[:10])
    assert not found.problems, "\n".join(found.problems[:20])
    assert found.stats["connections"] >= WORKERS and found.stats["op err"] > 0 and found.stats["op msg"] > 0
