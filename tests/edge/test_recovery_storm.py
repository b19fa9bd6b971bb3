"""Recovery when many clients resubscribe at once, against a real nats-server: every replay is
whole, from the edge's memory when it holds the range, from the stream otherwise, with never more
than EDGE_REPLAY_CONCURRENCY consumers at a time (a reconnect storm used to hit the server's
consumer limit and end replays short while claiming they were whole)."""

import asyncio
import json

from tickmesh.contracts import streams as table
from tickmesh.edge.events import EventFeeds
from tickmesh.edge.hub import Hub

NEWS = "tm.news"


async def publish(js, n: int) -> list[int]:
    acks = await asyncio.gather(
        *(js.publish(NEWS, json.dumps({"id": f"s{i}", "title": "t"}).encode()) for i in range(n))
    )
    return [a.seq for a in acks]


async def test_a_storm_of_replays_from_the_stream_is_whole_and_bounded(nc):
    js = nc.jetstream()
    stream = table.stream_for_subject(NEWS).name
    config = (await js.stream_info(stream)).config
    config.max_consumers = 5  # the server refuses a sixth consumer
    await js.update_stream(config)
    before = await publish(js, 300)  # stored before the edge's feed started: only the stream has them
    feeds = EventFeeds(Hub(), cache_bytes=1 << 20, replay_concurrency=3)
    await feeds.start(js)  # its live feed is one ordered consumer of the stream
    epoch = (await feeds.epoch_and_tail(stream))[0]
    results = await asyncio.gather(*(feeds.recover(NEWS, (epoch, before[i % 50])) for i in range(30)))
    for i, rec in enumerate(results):
        assert rec.recovered and [seq for seq, _ in rec.messages] == before[before.index(before[i % 50]) + 1 :]
    assert (await js.stream_info(stream)).state.consumer_count <= 5  # replays' consumers were deleted


async def test_recent_positions_are_answered_from_memory_exactly(nc):
    js = nc.jetstream()
    stream = table.stream_for_subject(NEWS).name
    feeds = EventFeeds(Hub(), cache_bytes=1 << 20, replay_concurrency=2)
    await feeds.start(js)
    seqs = await publish(js, 200)
    while feeds._fed.get(stream, 0) < seqs[-1]:  # the live feed has delivered them
        await asyncio.sleep(0.01)
    consumers = (await js.stream_info(stream)).state.consumer_count
    epoch = (await feeds.epoch_and_tail(stream))[0]
    results = await asyncio.gather(*(feeds.recover(NEWS, (epoch, seqs[i % 200])) for i in range(1000)))
    for i, rec in enumerate(results):
        assert rec.recovered and [seq for seq, _ in rec.messages] == seqs[i % 200 + 1 :]
    assert (await js.stream_info(stream)).state.consumer_count == consumers  # no replay consumer at all
    # A purge is the record: what the edge remembers of purged messages is not served.
    await js.purge_stream(stream, seq=seqs[100])
    rec = await feeds.recover(NEWS, (epoch, seqs[10]))
    assert not rec.recovered and rec.reason == "position_expired"
    assert [seq for seq, _ in rec.messages] == seqs[100:]
