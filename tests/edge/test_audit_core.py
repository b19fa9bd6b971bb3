"""The audit trail's sans-I/O parts: the session core's ``ack`` op, and how recorded deliveries
become ``trade_audit`` messages (no NATS, no event loop)."""

import asyncio

import orjson
import pytest

from tickmesh.contracts.channels import trade_audit_subject
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import schema
from tickmesh.edge.audit import MAX_PER_MESSAGE, TradeAudit
from tickmesh.edge.frames import JSON, MSGPACK
from tickmesh.edge.identity import Identity
from tickmesh.edge.session import Ack, Session, Subscribe

T0 = 1_795_000_000_000_000  # µs
ALICE = Identity("alice", frozenset({"user"}), frozenset({"equities"}), expires_at=10_000.0, issued_at=0.0)


def session() -> Session:
    s = Session(conn_id="c1", now=0.0, identity=ALICE)
    s.take()
    return s


def send(s: Session, frame: dict) -> list:
    s.receive_frame(orjson.dumps(frame), 1.0)
    return s.take()


def errors(out: list) -> list[int]:
    return [orjson.loads(o)["code"] for o in out if isinstance(o, bytes) and orjson.loads(o)["op"] == "err"]


def test_an_ack_names_positions_of_a_subscribed_trades_channel():
    s = session()
    [sub] = send(s, {"op": "sub", "id": 1, "ch": "trades"})
    assert isinstance(sub, Subscribe)
    assert send(s, {"op": "ack", "ch": "trades", "seqs": [7, 9]}) == [Ack("trades", (7, 9))]
    out = send(s, {"op": "ack", "id": "a1", "ch": "trades", "seqs": [10]})
    assert out[0] == Ack("trades", (10,)) and orjson.loads(out[1]) == {"op": "ok", "id": "a1"}


@pytest.mark.parametrize(
    "frame, code",
    [
        ({"op": "ack", "ch": "trades", "seqs": [1]}, ErrorCode.NOT_SUBSCRIBED),
        ({"op": "ack", "ch": "notifications", "seqs": [1]}, ErrorCode.INVALID_FIELD),
        ({"op": "ack", "seqs": [1]}, ErrorCode.INVALID_FIELD),
        ({"op": "ack", "ch": "trades:", "seqs": [1]}, ErrorCode.BAD_CHANNEL),
    ],
)
def test_an_ack_for_something_else_is_refused(frame, code):
    s = session()
    assert errors(send(s, frame)) == [code]


@pytest.mark.parametrize("seqs", [[], [0], [-1], ["7"], [1.5], [True], list(range(1, 258)), {"a": 1}, None, [2**63]])
def test_bad_positions_are_refused_and_nothing_is_recorded(seqs):
    s = session()
    send(s, {"op": "sub", "id": 1, "ch": "trades"})
    out = send(s, {"op": "ack", "ch": "trades", "seqs": seqs})
    assert errors(out) == [ErrorCode.INVALID_FIELD]
    assert not any(isinstance(o, Ack) for o in out)


def _trade(seq: int, codec=JSON) -> bytes:
    data = {"exec_id": f"x{seq}", "order_id": "o-1", "client_order_id": "c-1", "status": "filled", "user": "alice"}
    return codec.msg("trades", seq, orjson.dumps(data), lambda: data)


def test_records_become_one_valid_message_per_user_with_the_executions_ids():
    audit = TradeAudit(edge="e1", flush_s=1.0, max_records=100)
    audit.delivered("alice", "c1", "ws", "ep", 41, T0 + 1_000, _trade(41), JSON.index)
    audit.delivered("bob", "c2", "sse", "ep", 42, T0 + 1_001, _trade(42, MSGPACK), MSGPACK.index)
    audit.acked("alice", "c1", "ws", "ep", 41, T0 + 1_002)
    batches = audit.batches(audit._buf, now_us=T0 + 2_000)
    assert [b[0] for b in batches] == [trade_audit_subject("alice"), trade_audit_subject("bob")]
    alice = schema("trade_audit").validate(orjson.loads(batches[0][1]))
    assert alice["edge"] == "e1" and alice["user"] == "alice"
    assert [(r["event"], r["seq"], r["at"]) for r in alice["records"]] == [
        ("delivered", 41, T0 + 1_000),
        ("acked", 41, T0 + 1_002),
    ]
    # The ack carries the ids read from the delivered frame; MessagePack frames are read too.
    assert {r["exec_id"] for r in alice["records"]} == {"x41"}
    bob = orjson.loads(batches[1][1])["records"][0]
    assert (bob["transport"], bob["order_id"], bob["client_order_id"]) == ("sse", "o-1", "c-1")
    assert len({b[2] for b in batches}) == 2  # distinct message ids: JetStream dedupes retries only


def test_a_busy_user_is_split_into_messages_of_at_most_the_schema_limit():
    audit = TradeAudit(edge="e1", flush_s=1.0, max_records=10_000)
    for seq in range(1, MAX_PER_MESSAGE * 2 + 2):
        audit.delivered("alice", "c1", "ws", None, seq, T0 + seq, _trade(seq), 0)
    batches = audit.batches(audit._buf, now_us=T0)
    assert [b[3] for b in batches] == [MAX_PER_MESSAGE, MAX_PER_MESSAGE, 1]
    for b in batches:
        schema("trade_audit").validate(orjson.loads(b[1]))


def test_memory_is_bounded_and_what_is_dropped_is_counted():
    audit = TradeAudit(edge="e1", flush_s=1.0, max_records=3)
    for seq in range(5):
        audit.delivered("alice", "c1", "ws", None, seq + 1, 0, _trade(seq + 1), 0)
    assert len(audit._buf) == 3 and audit.dropped == 2
    audit._queue(audit.batches(audit._buf, 0))
    audit._queue(audit.batches([("acked", "bob", "c", "ws", None, 1, 0, None, 0)] * 2, 0))
    assert audit._unsent_records <= 3 and audit.dropped == 2 + 3  # the oldest batch made room


def test_the_audit_stream_stores_exactly_the_subjects_the_contract_builds():
    from tickmesh.contracts import streams as table
    from tickmesh.contracts.channels import TRADE_AUDIT_WILDCARD

    assert table.stream("trade_audit").subjects == (TRADE_AUDIT_WILDCARD,)
    assert table.stream_for_subject(trade_audit_subject("a.b@c")).name == "TM_TRADE_AUDIT"


async def test_overlapping_flushes_write_every_batch_once_and_lose_none(nats_mon):
    """The writer's flush and stop()'s may overlap (a swallowed cancellation): each batch is
    still published once and taken off the queue once, against a real JetStream."""
    import nats

    from tickmesh import streams

    nc = await nats.connect(nats_mon.url)
    try:
        js = nc.jetstream()
        await streams.ensure(js)
        audit = TradeAudit(edge="e1", flush_s=60.0, max_records=1000)
        audit.start(js)
        users = [f"u{i}" for i in range(6)]
        for i, user in enumerate(users):
            audit.delivered(user, "c1", "ws", None, i + 1, T0 + i, _trade(i + 1), 0)
        await asyncio.gather(audit.flush(), audit.flush(), audit.flush())
        assert audit._unsent == [] and audit._unsent_records == 0
        info = await js.stream_info("TM_TRADE_AUDIT")
        assert info.state.messages == len(users)  # one message per user, none twice, none lost
        await audit.stop()
    finally:
        await nc.close()
