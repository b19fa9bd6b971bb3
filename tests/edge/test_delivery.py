"""Delivery guarantees through real edges, real NATS (JetStream) and real clients:
snapshots, exact recovery on any edge, the seam, expired positions, epochs, SIGKILL,
and the same guarantees over SSE and long polling."""

import asyncio
import json
import signal
import time

import nats

from tests.edge.conftest import edge_subjects
from tests.support.httpclient import SSE, command, poll, ticket
from tests.support.timing import eventually
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh import streams
from tickmesh.contracts.channels import Kind, public_subject, tick_subject, user_subject
from tickmesh.contracts.codes import ErrorCode

NOTES = user_subject(Kind.NOTIFICATIONS, "alice")


async def js_ctx(url):
    nc = await nats.connect(url)
    js = nc.jetstream()
    await streams.ensure(js)
    return nc, js


async def publish_events(js, n, subject=NOTES, start=0):
    seqs = []
    for i in range(start, start + n):
        ack = await js.publish(subject, json.dumps({"i": i}).encode(), headers={"Nats-Msg-Id": f"{subject}-{i}"})
        seqs.append(ack.seq)
    return seqs


async def test_state_channels_send_the_current_value_first(edge, nats_mon):
    nc, js = await js_ctx(nats_mon.url)
    tick = {
        "symbol": "NVDA",
        "last": "121.40",
        "ts": 1_795_000_000_000_000,
        "ingest_ts": 1_795_000_000_000_000,
        "provider": "t",
    }
    # Acknowledged publishes: both are stored before the client subscribes.
    await js.publish(tick_subject("NVDA"), json.dumps(tick).encode(), headers={"Tm-Seq": "41"})
    await js.publish(user_subject(Kind.PORTFOLIO, "alice"), b'{"total_value":"1000.00"}', headers={"Tm-Seq": "9"})
    c = await Client.login(edge.ws_url, token("alice"))
    reply, _ = await c.request("sub", ch="prices:NVDA")
    [snap] = await c.messages(1)
    assert reply["op"] == "ok" and snap["seq"] == 41 and snap["data"]["last"] == "121.40"
    await c.request("sub", ch="portfolio")
    [value] = await c.messages(1)
    assert value["ch"] == "portfolio" and value["data"] == {"total_value": "1000.00"}
    # An older value published late is never shown after the newer one.
    await nc.publish(tick_subject("NVDA"), json.dumps(dict(tick, last="99.00")).encode(), headers={"Tm-Seq": "40"})
    await nc.publish(tick_subject("NVDA"), json.dumps(dict(tick, last="122.00")).encode(), headers={"Tm-Seq": "42"})
    await nc.flush()
    [m] = await c.messages(1)
    assert m["seq"] == 42
    await c.close()
    await nc.close()


async def test_missed_events_are_replayed_exactly_on_another_edge(edge_factory, nats_mon):
    a, b = edge_factory(), edge_factory()
    nc, js = await js_ctx(nats_mon.url)
    c = await Client.login(a.ws_url, token("alice"))
    ok, _ = await c.request("sub", ch="notifications")
    assert ok["recovered"] is True and "epoch" in ok
    first = await publish_events(js, 2)
    got = await c.messages(2)
    assert [m["seq"] for m in got] == first
    await c.close()

    missed = await publish_events(js, 25, start=2)
    await publish_events(js, 5, subject=user_subject(Kind.NOTIFICATIONS, "bob"))  # someone else's
    c = await Client.login(b.ws_url, token("alice"))
    ok, _ = await c.request("sub", ch="notifications", since={"epoch": ok["epoch"], "seq": got[-1]["seq"]})
    assert ok["recovered"] is True and ok["replayed"] == 25
    replayed = await c.messages(25)
    assert [m["seq"] for m in replayed] == missed
    assert [m["data"]["i"] for m in replayed] == list(range(2, 27))
    live = await publish_events(js, 3, start=27)
    assert [m["seq"] for m in await c.messages(3)] == live
    _, seen = await c.request("ping")
    assert not [f for f in seen if f["op"] == "msg"]  # nothing twice
    await c.close()
    await nc.close()


async def test_the_seam_loses_and_duplicates_nothing_while_publishing_continues(edge_factory, nats_mon):
    edge = edge_factory()
    nc, js = await js_ctx(nats_mon.url)
    published: list[int] = []
    stop = asyncio.Event()

    async def publisher():
        i = 0
        while not stop.is_set():
            published.extend(await publish_events(js, 1, start=i))
            i += 1
            await asyncio.sleep(0.002)

    task = asyncio.ensure_future(publisher())
    received: list[int] = []
    position = None
    for _ in range(6):  # resubscribe repeatedly while the publisher runs
        c = await Client.login(edge.ws_url, token("alice"))
        ok, early = await c.request("sub", ch="notifications", since=position)
        received += [m["seq"] for m in early if m["op"] == "msg"]
        if position is None:
            received.clear()
            start_after = ok["seq"]
        epoch = ok["epoch"]
        for m in await c.messages(15):
            received.append(m["seq"])
        position = {"epoch": epoch, "seq": received[-1]}
        await c.close()
    stop.set()
    await task
    expected = [s for s in published if s > start_after][: len(received)]
    assert received == expected
    await nc.close()


async def test_positions_older_than_retention_and_from_another_epoch_are_said_explicitly(edge, nats_mon):
    nc, js = await js_ctx(nats_mon.url)
    c = await Client.login(edge.ws_url, token("alice"))
    ok, _ = await c.request("sub", ch="notifications")
    seqs = await publish_events(js, 10)
    await c.messages(10)
    await c.close()
    await js.purge_stream(streams.USER_EVENTS, seq=seqs[5])  # the first five are gone
    c = await Client.login(edge.ws_url, token("alice"))
    reply, _ = await c.request("sub", ch="notifications", since={"epoch": ok["epoch"], "seq": seqs[1]})
    assert reply["recovered"] is False and reply["reason"] == "position_expired" and reply["first_seq"] == seqs[5]
    assert [m["seq"] for m in await c.messages(5)] == seqs[5:]
    await c.close()

    await js.delete_stream(streams.USER_EVENTS)
    await streams.ensure(js)  # a new stream has a new creation time: its epoch
    c = await Client.login(edge.ws_url, token("alice"))
    reply, _ = await c.request("sub", ch="notifications", since={"epoch": ok["epoch"], "seq": seqs[-1]})
    assert reply["recovered"] is False and reply["reason"] == "epoch_changed" and reply["epoch"] != ok["epoch"]
    await c.close()
    await nc.close()


async def test_an_edge_killed_mid_stream_loses_nothing(edge_factory, nats_mon):
    a, b = edge_factory(), edge_factory()
    nc, js = await js_ctx(nats_mon.url)
    c = await Client.login(a.ws_url, token("alice"))
    ok, _ = await c.request("sub", ch="trades")
    trades = user_subject(Kind.TRADES, "alice")
    before = await publish_events(js, 5, subject=trades)
    got = [m["seq"] for m in await c.messages(5)]
    a.proc.send_signal(signal.SIGKILL)
    during = await publish_events(js, 7, subject=trades, start=5)
    c2 = await Client.login(b.ws_url, token("alice"))
    reply, _ = await c2.request("sub", ch="trades", since={"epoch": ok["epoch"], "seq": got[-1]})
    got += [m["seq"] for m in await c2.messages(7)]
    assert got == before + during and reply["recovered"] is True
    await c2.close()
    await nc.close()


async def test_announcements_in_force_reach_new_connections(edge, nats_mon):
    nc, js = await js_ctx(nats_mon.url)
    now = int(time.time() * 1e6)
    for text, ends in (("old", now - 1_000_000), ("current", now + 600_000_000), ("open-ended", None)):
        body = {"id": text, "severity": "info", "text": text, "ts": now}
        if ends:
            body["ends_at"] = ends
        await js.publish(public_subject(Kind.ANNOUNCEMENTS), json.dumps(body).encode())
    c = await Client.login(edge.ws_url, token("alice"))
    ok, _ = await c.request("sub", ch="announcements")
    assert ok["replayed"] == 2
    assert [m["data"]["text"] for m in await c.messages(2)] == ["current", "open-ended"]
    await c.close()
    await nc.close()


# -- SSE -------------------------------------------------------------------------------------


async def test_sse_recovers_exactly_with_last_event_id_on_another_edge(edge_factory, nats_mon):
    a, b = edge_factory(), edge_factory()
    nc, js = await js_ctx(nats_mon.url)
    t = await ticket(a.http, token("alice"))
    sse = await SSE.open(a.http, t, ["notifications", "prices:AAPL"])
    assert sse.resp.status == 200 and sse.resp.headers["Content-Type"].startswith("text/event-stream")
    assert sse.resp.headers["X-Accel-Buffering"] == "no"
    oks = [await sse.event(), await sse.event(), await sse.event()]
    assert {e["event"] for e in oks} >= {"ok"}
    first = await publish_events(js, 3)
    got = [m["seq"] for m in await sse.messages(3)]
    assert got == first
    resume_from = sse.last_id
    await sse.close()

    missed = await publish_events(js, 10, start=3)
    # The browser reconnects with Last-Event-ID, possibly through another edge.
    sse = await SSE.open(b.http, t, ["notifications", "prices:AAPL"], last_event_id=resume_from)
    events = []
    while len([e for e in events if e.get("event") == "msg"]) < 10:
        events.append(await sse.event())
    ok = next(e for e in events if e["event"] == "ok" and e["data"]["id"] == "notifications")
    assert ok["data"]["recovered"] is True and ok["data"]["replayed"] == 10
    assert [e["data"]["seq"] for e in events if e.get("event") == "msg"] == missed
    await sse.close()
    await nc.close()


async def test_tickets_start_one_stream_and_tokens_never_go_in_urls(edge):
    t = await ticket(edge.http, token("alice"))
    first = await SSE.open(edge.http, t, ["news"])
    assert first.resp.status == 200
    second = await SSE.open(edge.http, t, ["news"])
    assert second.resp.status == 401 and (await second.resp.json())["code"] == ErrorCode.UNAUTHORIZED
    forged = await SSE.open(edge.http, token("alice"), ["news"])  # a token is not a ticket
    assert forged.resp.status == 401
    for s in (first, second, forged):
        await s.close()


async def test_sse_applies_the_same_permissions(edge):
    t = await ticket(edge.http, token("alice", ent=("equities",)))
    sse = await SSE.open(edge.http, t, ["prices:BTC-USD", "portfolio:bob"])
    welcome = await sse.event()
    assert welcome["event"] == "welcome" and welcome["data"]["user"] == "alice"
    errs = [await sse.event(), await sse.event()]
    codes = sorted(e["data"]["code"] for e in errs if e["event"] == "err")
    assert codes == [ErrorCode.FORBIDDEN, ErrorCode.NOT_ENTITLED]
    await sse.close()


# -- long polling ------------------------------------------------------------------------------


async def test_polling_delivers_every_event_once_across_edges_and_keeps_no_state(edge_factory, nats_mon):
    a, b = edge_factory(EDGE_POLL_WAIT_S="2"), edge_factory(EDGE_POLL_WAIT_S="2")
    nc, js = await js_ctx(nats_mon.url)
    t = await ticket(a.http, token("alice"))
    status, first = await poll(a.http, t, ["notifications"])
    # A first poll on a quiet channel answers its subscription at once, and no poll is a close.
    assert status == 200 and first["cursor"]
    assert [f["op"] for f in first["frames"]] == ["ok"] and first["frames"][0]["recovered"] is True
    sent = await publish_events(js, 30)
    received, cursor = [], first["cursor"]
    for i in range(20):
        status, body = await poll((a, b)[i % 2].http, t, ["notifications"], cursor)
        assert status == 200
        received += [f["seq"] for f in body["frames"] if f["op"] == "msg"]
        assert not [f for f in body["frames"] if f["op"] == "close"]
        cursor = body["cursor"]
        if len(received) >= 30:
            break
    assert received == sent
    status, body = await poll(b.http, t, ["notifications"], cursor)  # nothing new: waits, returns empty
    assert [f for f in body["frames"] if f["op"] == "msg"] == []
    await nc.close()


async def test_polling_returns_state_snapshots_once(edge, nats_mon):
    nc, js = await js_ctx(nats_mon.url)
    await js.publish(tick_subject("MSFT"), b'{"symbol":"MSFT","last":"415.30"}', headers={"Tm-Seq": "5"})
    t = await ticket(edge.http, token("alice"))
    _, body = await poll(edge.http, t, ["prices:MSFT"])
    assert [f["seq"] for f in body["frames"] if f["op"] == "msg"] == [5]
    waiter = asyncio.ensure_future(poll(edge.http, t, ["prices:MSFT"], body["cursor"]))
    # The long poll is waiting once the edge holds the subscription upstream again.
    await eventually(lambda: edge_subjects(nats_mon) == ["tm.tick.MSFT"])
    await nc.publish(tick_subject("MSFT"), b'{"symbol":"MSFT","last":"416.00"}', headers={"Tm-Seq": "6"})
    await nc.flush()
    _, body = await waiter
    assert [f["seq"] for f in body["frames"] if f["op"] == "msg"] == [6]
    await nc.close()


# -- commands over HTTP ----------------------------------------------------------------------


async def test_http_commands_share_roles_validation_and_idempotency(edge, nats_mon):
    nc = await nats.connect(nats_mon.url)
    runs = []

    async def answer(msg):
        runs.append(msg.data)
        await msg.respond(b'{"ok":true,"data":{"order_id":"o1","status":"filled"}}')

    await nc.subscribe("tm.cmd.order.submit", cb=answer)
    await nc.flush()
    order = {"client_order_id": "c1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"}
    status, body = await command(edge.http, {"name": "order.submit", "key": "h1", "data": order}, token=token("alice"))
    assert status == 200 and body["data"]["order_id"] == "o1"
    status, again = await command(edge.http, {"name": "order.submit", "key": "h1", "data": order}, token=token("alice"))
    assert again["data"] == body["data"] and len(runs) == 1
    status, body = await command(
        edge.http, {"name": "announcement.publish", "data": {"severity": "info", "text": "x"}}, token=token("alice")
    )
    assert status == 403 and body["code"] == ErrorCode.FORBIDDEN
    status, body = await command(
        edge.http, {"name": "order.submit", "data": dict(order, quantity=-1)}, token=token("alice")
    )
    assert status == 400 and body["code"] == ErrorCode.INVALID_FIELD
    status, body = await command(edge.http, {}, raw=b"{nope", token=token("alice"))
    assert status == 400 and body["code"] == ErrorCode.MALFORMED_FRAME
    status, body = await command(edge.http, {"name": "alert.list"})
    assert status == 401
    await nc.close()


async def test_a_fresh_page_can_ask_for_the_last_events_then_live(edge, nats_mon):
    nc, js = await js_ctx(nats_mon.url)
    sent = await publish_events(js, 12)
    await publish_events(js, 4, subject=user_subject(Kind.NOTIFICATIONS, "bob"))
    c = await Client.login(edge.ws_url, token("alice"))
    ok, _ = await c.request("sub", ch="notifications", history=5)
    assert ok["replayed"] == 5 and ok["seq"] == sent[-1]
    assert [m["seq"] for m in await c.messages(5)] == sent[-5:]
    live = await publish_events(js, 2, start=12)
    assert [m["seq"] for m in await c.messages(2)] == live
    bad, _ = await c.request("sub", ch="portfolio", history=5)  # prices take history too (charts)
    assert bad["code"] == ErrorCode.INVALID_FIELD
    await c.close()
    await nc.close()


async def test_sse_and_polling_honour_history_like_a_websocket_sub(edge_factory, nats_mon):
    edge = edge_factory(EDGE_POLL_WAIT_S="1")
    nc, js = await js_ctx(nats_mon.url)
    sent = await publish_events(js, 8)
    t = await ticket(edge.http, token("alice"))
    status, body = await poll(edge.http, t, ["notifications"], history=["notifications:3"])
    assert status == 200 and [f["seq"] for f in body["frames"] if f["op"] == "msg"] == sent[-3:]
    # A resumed poll has a position: history is not replayed again.
    status, again = await poll(edge.http, t, ["notifications"], body["cursor"], history=["notifications:3"])
    assert [f for f in again["frames"] if f["op"] == "msg"] == []
    status, bad = await poll(edge.http, t, ["notifications"], history=["trades:3"])
    assert status == 400 and bad["code"] == 102
    await nc.close()
