"""tickmesh.publish against a real nats-server: what a service outside this repository relies on."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import nats
import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider

from tests.support.timing import t
from tickmesh import streams, tracing
from tickmesh.contracts.channels import Channel, Kind, public_subject, tick_subject, user_subject
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import SEQ_HEADER
from tickmesh.publish import (
    MSG_ID_HEADER,
    BufferFull,
    InvalidMessage,
    Publisher,
    PublisherClosed,
    PublishTimeout,
    UnknownChannel,
    now_us,
    traced,
)


@pytest.fixture
async def pub(nc, nats_server):
    p = await Publisher.connect(nats_server.url, None, connect_timeout=t(5))
    try:
        yield p
    finally:
        await p.close()


async def stored(nc, subject: str) -> list[nats.aio.msg.Msg]:
    """Every message of ``subject`` in its stream, oldest first: as many as the stream counts for
    the subject (not "until a quiet moment", which a loaded machine cuts short)."""
    js = nc.jetstream()
    info = await js.stream_info(await js.find_stream_name_by_subject(subject), subjects_filter=subject)
    want = (info.state.subjects or {}).get(subject, 0)
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=nats.js.api.DeliverPolicy.ALL)
    try:
        return [await sub.next_msg(timeout=t(10)) for _ in range(want)]
    finally:
        await sub.unsubscribe()


async def test_a_notification_is_validated_addressed_stored_once_and_acknowledged(pub, nc):
    ack = await pub.notify("alice", "Margin call", kind="risk", severity="critical", id="m-1")
    assert ack.stream == streams.USER_EVENTS and ack.seq >= 1 and not ack.duplicate
    again = await pub.notify("alice", "Margin call", kind="risk", severity="critical", id="m-1")
    assert again.duplicate and again.seq == ack.seq  # a retry is stored once

    (msg,) = await stored(nc, user_subject(Kind.NOTIFICATIONS, "alice"))
    body = orjson.loads(msg.data)
    assert body["id"] == "m-1" and body["user"] == "alice" and body["kind"] == "risk"
    assert isinstance(body["ts"], int) and msg.headers[MSG_ID_HEADER] == "m-1"


async def test_every_event_kind_goes_to_its_channel(pub, nc):
    a = await pub.alert("bob", id="r1", symbol="AAPL", condition="above", threshold="200", fired_price=Decimal("200.5"))
    x = await pub.execution(
        "bob",
        exec_id="x1",
        order_id="o1",
        client_order_id="c1",
        symbol="AAPL",
        side="buy",
        order_type="market",
        status="filled",
        quantity="1",
        price="200.50",
    )
    n = await pub.news("Apple up", source="wire", symbols=["AAPL"])
    an = await pub.announce("Maintenance at 22:00", severity="warning", ends_at=now_us() + 60_000_000)
    assert {a.stream, x.stream, n.stream, an.stream} == {streams.USER_EVENTS, streams.NEWS, streams.ANNOUNCEMENTS}
    assert orjson.loads((await stored(nc, user_subject(Kind.ALERTS, "bob")))[0].data)["fired_price"] == "200.5"
    assert orjson.loads((await stored(nc, user_subject(Kind.TRADES, "bob")))[0].data)["exec_id"] == "x1"
    story = orjson.loads((await stored(nc, public_subject(Kind.NEWS)))[0].data)
    assert story["id"].startswith("news-"), "an id is made when none is given, and stored in the message"
    assert orjson.loads((await stored(nc, public_subject(Kind.ANNOUNCEMENTS)))[0].data)["severity"] == "warning"


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda p: p.notify("alice", "x" * 121), "title"),
        (lambda p: p.notify("alice", "hi", severity="loud"), "severity"),
        (
            lambda p: p.execution(
                "al ice",
                exec_id="x",
                order_id="o",
                client_order_id="c",
                symbol="AAPL",
                side="buy",
                order_type="market",
                status="filled",
                quantity="1",
            ),
            None,
        ),
        (
            lambda p: p.alert("bob", id="r", symbol="AAPL", condition="above", threshold="1", fired_price=1.5),
            "fired_price",
        ),
        (
            lambda p: p.publish(
                "notifications:alice", {"title": "t", "severity": "info", "kind": "system", "colour": 1}
            ),
            "colour",
        ),
        (
            lambda p: p.publish(
                "notifications:alice", {"title": "t", "severity": "info", "kind": "system", "user": "bob"}
            ),
            "user",
        ),
        (lambda p: p.tick("AAPL", "-1", ts=now_us(), provider="x"), "last"),
    ],
)
async def test_a_message_that_breaks_its_schema_is_refused_naming_the_field(pub, nc, call, field):
    with pytest.raises((InvalidMessage, UnknownChannel)) as info:
        await call(pub)
    assert info.value.code in (ErrorCode.INVALID_FIELD, ErrorCode.BAD_CHANNEL)
    if field is not None:
        assert isinstance(info.value, InvalidMessage) and info.value.field == field and field in str(info.value)
    info_ = await nc.jetstream().stream_info(streams.USER_EVENTS)
    assert info_.state.messages == 0, "nothing was sent"


@pytest.mark.parametrize(
    "channel",
    ["trades", "bogus:x", "prices:aapl", "tm.user.alice.trades", "presence:desk", "watchlist:AbCdEfGhIjKlMnOpQrStU1"],
)
async def test_a_channel_a_publisher_cannot_name_is_refused(pub, channel):
    with pytest.raises(UnknownChannel):
        await pub.publish(channel, {})


async def test_a_hand_built_channel_is_checked_too(pub):
    with pytest.raises(UnknownChannel, match="user id"):
        await pub.alert("al ice", id="r", symbol="AAPL", condition="above", threshold="1", fired_price="1")


async def test_state_messages_carry_strictly_increasing_versions(pub, nc):
    got: list = []

    async def collect(msg):
        got.append(msg)

    sub = await nc.subscribe(tick_subject("BRK.B"), cb=collect)
    await nc.flush()  # the server has the subscription before the other connection publishes
    ts = now_us()
    for last in ("410.10", "410.20", "410.30"):
        await pub.tick("BRK.B", last, ts=ts, ingest_ts=ts, provider="test")  # the same clock reading
    await pub.nc.flush()
    await _until(lambda: len(got) == 3)
    seqs = [int(m.headers[SEQ_HEADER]) for m in got]
    assert seqs == sorted(set(seqs)) and seqs[0] >= ts
    assert [orjson.loads(m.data)["last"] for m in got] == ["410.10", "410.20", "410.30"]
    await sub.unsubscribe()
    with pytest.raises(InvalidMessage, match="symbol"):
        await pub.publish("prices:AAPL", {"symbol": "MSFT", "last": "1", "ts": ts, "provider": "x"})


async def test_portfolio_is_kept_as_the_users_snapshot(pub, nc):
    await pub.portfolio(
        "vera",
        {
            "cash": "10.00",
            "positions_value": "0",
            "total_value": "10.00",
            "day_change": "0",
            "day_change_pct": "0",
            "positions": [],
        },
    )
    await pub.nc.flush()
    msg = await _eventually(
        lambda: nc.jetstream().get_last_msg(streams.USER_STATE, user_subject(Kind.PORTFOLIO, "vera"))
    )
    assert orjson.loads(msg.data)["user"] == "vera" and int(msg.headers[SEQ_HEADER]) > 0


async def test_trace_context_is_injected_from_a_traced_block_or_the_callers_own_span(pub, nc, spans):
    spans(1.0)
    with traced(tracing.begin("risk.check", force=True)) as tr:
        await pub.notify("alice", "one", id="t-1")
        inside = tr.inject({})["traceparent"].split("-")[1]
    # A service with its own OpenTelemetry setup: its current span is continued.
    tracer = TracerProvider().get_tracer("external")
    with tracer.start_as_current_span("external.publish") as span:
        await pub.notify("alice", "two", id="t-2")
        external = format(span.get_span_context().trace_id, "032x")
    await pub.notify("alice", "three", id="t-3")
    one, two, three = await stored(nc, user_subject(Kind.NOTIFICATIONS, "alice"))
    assert one.headers["traceparent"].split("-")[1] == inside
    assert two.headers["traceparent"].split("-")[1] == external
    assert "traceparent" not in three.headers


async def test_an_event_waits_for_nats_to_come_back_then_is_stored(nats_server, nc):
    pub = await Publisher.connect(nats_server.url, connect_timeout=t(5), deliver_timeout=t(30))
    try:
        nats_server.stop()
        await _until(lambda: not pub.nc.is_connected)
        sending = asyncio.ensure_future(pub.notify("carol", "while down", id="down-1"))
        await _until(lambda: pub.delivery.pending == 1)
        assert not sending.done()
        nats_server.start()  # same port, same JetStream store
        ack = await asyncio.wait_for(sending, t(20))
        assert ack.stream == streams.USER_EVENTS and not ack.duplicate
    finally:
        await pub.close()


async def test_a_full_buffer_refuses_the_next_message_at_once_and_loses_none_it_took(nats_server, nc):
    pub = await Publisher.connect(nats_server.url, connect_timeout=t(5), max_pending=2, deliver_timeout=t(30))
    try:
        nats_server.stop()
        await _until(lambda: not pub.nc.is_connected)
        taken = [asyncio.ensure_future(pub.notify("dan", f"n{i}", id=f"buf-{i}")) for i in range(2)]
        await _until(lambda: pub.delivery.pending == 2)
        with pytest.raises(BufferFull) as info:
            await pub.notify("dan", "one too many", id="buf-2")
        assert info.value.limit == "max_pending" and info.value.code == ErrorCode.UNAVAILABLE
        assert "not sent" in str(info.value) and info.value.stored is False
        nats_server.start()
        acks = await asyncio.wait_for(asyncio.gather(*taken), t(20))
        assert len({a.seq for a in acks}) == 2
    finally:
        await pub.close()
    titles = [orjson.loads(m.data)["title"] for m in await stored(nc, user_subject(Kind.NOTIFICATIONS, "dan"))]
    assert sorted(titles) == ["n0", "n1"]


async def test_no_acknowledgement_in_time_is_a_timeout_that_may_be_retried(nats_server):
    pub = await Publisher.connect(nats_server.url, connect_timeout=t(5), deliver_timeout=0.5)
    try:
        nats_server.stop()
        await _until(lambda: not pub.nc.is_connected)
        with pytest.raises(PublishTimeout) as info:
            await pub.notify("erin", "lost?", id="to-1")
        assert info.value.stored is None and info.value.code == ErrorCode.TIMEOUT and "same id" in str(info.value)
        assert pub.delivery.pending == 0
    finally:
        nats_server.start()
        await pub.close()


async def test_a_closed_publisher_says_so(nats_server, nc):
    pub = await Publisher.connect(nats_server.url, connect_timeout=t(5))
    await pub.close()
    with pytest.raises(PublisherClosed):
        await pub.notify("finn", "late")
    with pytest.raises(PublisherClosed):
        await pub.tick("AAPL", "1.00", ts=now_us(), provider="x")


async def test_wrapping_an_existing_connection_leaves_it_open(nc):
    pub = Publisher(nc)
    await pub.publish(Channel(Kind.NOTIFICATIONS, "gus"), {"title": "t", "severity": "info", "kind": "system"})
    await pub.close()
    assert nc.is_connected


async def _until(cond, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + t(timeout)
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def _eventually(make, timeout: float = 5.0):
    deadline = asyncio.get_running_loop().time() + t(timeout)
    while True:
        try:
            return await make()
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
