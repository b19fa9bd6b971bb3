import asyncio
from decimal import Decimal

import orjson
import pytest

from tests.services.conftest import Inbox, account, command, publish_tick, seed, service
from tickmesh import streams
from tickmesh.contracts import messages
from tickmesh.contracts.channels import Kind, user_subject
from tickmesh.contracts.instruments import instruments
from tickmesh.services.broker import service as broker_service
from tickmesh.services.broker.book import RestingBook
from tickmesh.services.broker.orders import (
    FILLING,
    OPEN,
    OrderRejected,
    check_account,
    decode_order,
    encode_order,
    execution,
    new_order,
    validate,
)
from tickmesh.services.common.holdings import decode_account

D = Decimal
NOW = 1_795_000_000_000_000


def order(**kw):
    base = {"client_order_id": "c1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "10"}
    return messages.schema("order").validate({**base, **kw})


# --- the sans-I/O core ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, code",
    [
        (order(symbol="ZZZZ"), 600),
        (order(quantity="0.000000001"), 601),
        (order(limit_price="187.20"), 602),
        (order(type="limit"), 602),
        (order(type="limit", limit_price="187.205"), 602),
    ],
)
def test_invalid_orders_are_refused_with_their_codes(data, code):
    with pytest.raises(OrderRejected) as exc:
        validate(data, instruments().get(data["symbol"]))
    assert exc.value.code == code


def test_account_checks_refuse_what_cannot_be_paid_or_delivered():
    acct = account("100.00", {"AAPL": ("1", "150")})
    with pytest.raises(OrderRejected) as exc:
        check_account(order(quantity="1"), acct, D("100.01"))
    assert exc.value.code == 603
    with pytest.raises(OrderRejected) as exc:
        check_account(order(side="sell", quantity="2"), acct, D("1"))
    assert exc.value.code == 604
    check_account(order(side="sell", quantity="1"), acct, D("1"))


def test_order_states_market_limit_and_marketable_limit():
    with pytest.raises(OrderRejected) as exc:
        new_order("u", order(), market_price=None, now=NOW)
    assert exc.value.code == 605
    assert new_order("u", order(), market_price=D("187.21"), now=NOW).status == FILLING
    resting = new_order("u", order(type="limit", limit_price="180.00"), market_price=D("187.21"), now=NOW)
    assert resting.status == OPEN and resting.price is None
    crossing = new_order("u", order(type="limit", limit_price="190.00"), market_price=D("187.21"), now=NOW)
    assert (crossing.status, crossing.price) == (FILLING, "187.21")
    assert decode_order(encode_order(resting)) == resting
    assert new_order("u", order(), market_price=D("1"), now=NOW).order_id == resting.order_id  # same (user, client id)
    assert new_order("v", order(), market_price=D("1"), now=NOW).order_id != resting.order_id
    messages.schema("execution").validate(execution(resting, NOW))


def test_resting_book_returns_only_crossed_orders_once():
    book = RestingBook()
    buy = new_order("u", order(client_order_id="b", type="limit", limit_price="100.00"), market_price=None, now=NOW)
    sell = new_order(
        "u", order(client_order_id="s", side="sell", type="limit", limit_price="110.00"), market_price=None, now=NOW
    )
    book.add(buy)
    book.add(sell)
    assert book.crossing("AAPL", D("105")) == []
    assert book.crossing("AAPL", D("99.99")) == [buy]
    assert book.crossing("AAPL", D("99")) == []
    assert book.crossing("AAPL", D("111")) == [sell]
    assert len(book) == 0


# --- against a real NATS --------------------------------------------------------------------


async def holdings(nc, user):
    kv = await nc.jetstream().key_value(streams.HOLDINGS_BUCKET)
    return decode_account((await kv.get(user)).value)


async def test_market_order_fills_once_on_retry_and_updates_holdings(nc, nats_server):
    await seed(nc, {"dora": account("10000.00", {"AAPL": ("5", "150.00")})})
    trades = await Inbox.on(nc, user_subject(Kind.TRADES, "dora"))
    async with service(broker_service, nats_server.url):
        no_price = await command(nc, "order.submit", "dora", order(client_order_id="early"))
        assert (no_price.ok, no_price.code) == (False, 605)
        await publish_tick(nc, "AAPL", "187.20")
        await asyncio.sleep(0)  # the tick reaches the broker through its subscription
        data = order(client_order_id="m1")
        for _ in range(100):
            first = await command(nc, "order.submit", "dora", data)
            if first.ok or first.code != 605:
                break
            await asyncio.sleep(0.02)
        assert first.ok and first.data["status"] == "filled" and first.data["price"] == "187.20", first
        again = await command(nc, "order.submit", "dora", data)
        assert again.data == first.data
        acct = await holdings(nc, "dora")
        assert acct.cash == D("8128.00") and acct.positions["AAPL"].quantity == 15
        fill = await trades.wait_for(lambda m: orjson.loads(m.data)["status"] == "filled")
        msg = messages.decode("execution", fill.data)
        assert msg["order_id"] == first.data["order_id"] and msg["price"] == "187.20"
        sell = await command(nc, "order.submit", "dora", order(client_order_id="s1", side="sell", quantity="16"))
        assert (sell.ok, sell.code) == (False, 604)
        poor = await command(nc, "order.submit", "dora", order(client_order_id="b2", quantity="1000"))
        assert (poor.ok, poor.code) == (False, 603)
    fills = [m for m in trades.msgs if orjson.loads(m.data)["status"] == "filled"]
    assert len(fills) == 1
    # stored once in the stream too
    info = await nc.jetstream().stream_info(streams.USER_EVENTS)
    assert info.state.messages == 1


async def test_limit_order_rests_fills_when_crossed_and_cancel_refuses_then(nc, nats_server):
    await seed(nc, {"eve": account("10000.00")})
    trades = await Inbox.on(nc, user_subject(Kind.TRADES, "eve"))
    await publish_tick(nc, "MSFT", "415.30")
    async with service(broker_service, nats_server.url):
        rest = await command(
            nc,
            "order.submit",
            "eve",
            order(client_order_id="L1", symbol="MSFT", type="limit", quantity="2", limit_price="410.00"),
        )
        assert rest.ok and rest.data["status"] == "accepted", rest
        other = await command(
            nc,
            "order.submit",
            "eve",
            order(client_order_id="L2", symbol="MSFT", type="limit", quantity="1", limit_price="400.00"),
        )
        cancelled = await command(nc, "order.cancel", "eve", {"order_id": other.data["order_id"]})
        assert cancelled.data == {"order_id": other.data["order_id"], "status": "cancelled"}
        await publish_tick(nc, "MSFT", "409.99")
        fill = await trades.wait_for(lambda m: orjson.loads(m.data)["status"] == "filled")
        assert orjson.loads(fill.data)["price"] == "409.99"
        late = await command(nc, "order.cancel", "eve", {"order_id": rest.data["order_id"]})
        assert (late.ok, late.code) == (False, 606)
        unknown = await command(nc, "order.cancel", "eve", {"order_id": "nope"})
        assert unknown.code == 606
        # another user cannot cancel eve's order
        foreign = await command(nc, "order.cancel", "mallory", {"order_id": rest.data["order_id"]})
        assert foreign.code == 606
    acct = await holdings(nc, "eve")
    assert acct.cash == D("10000.00") - 2 * D("409.99") and acct.positions["MSFT"].avg_cost == D("409.99")
    statuses = [orjson.loads(m.data)["status"] for m in trades.msgs]
    assert sorted(statuses) == ["accepted", "accepted", "cancelled", "filled"]


async def test_resting_orders_survive_a_broker_restart(nc, nats_server):
    await seed(nc, {"finn": account("1000.00")})
    await publish_tick(nc, "KO", "68.40")
    async with service(broker_service, nats_server.url):
        rest = await command(
            nc,
            "order.submit",
            "finn",
            order(client_order_id="k", symbol="KO", type="limit", quantity="3", limit_price="68.00"),
        )
        assert rest.data["status"] == "accepted"
    trades = await Inbox.on(nc, user_subject(Kind.TRADES, "finn"))
    async with service(broker_service, nats_server.url):
        await command(nc, "order.cancel", "finn", {"order_id": "warm-up"})  # answered: the book is loaded
        await publish_tick(nc, "KO", "67.90")
        await trades.wait_for(lambda m: orjson.loads(m.data)["status"] == "filled")
    assert (await holdings(nc, "finn")).positions["KO"].quantity == 3


async def test_concurrent_retries_of_one_order_fill_it_once(nc, nats_server):
    await seed(nc, {"gus": account("100000.00")})
    await publish_tick(nc, "NVDA", "121.40")
    async with service(broker_service, nats_server.url), service(broker_service, nats_server.url):
        # Each instance reads the stored tick before it answers commands, so both know the price.
        await command(nc, "order.cancel", "gus", {"order_id": "warm-up"})
        data = order(client_order_id="same", symbol="NVDA", quantity="7")
        replies = await asyncio.gather(*(command(nc, "order.submit", "gus", data) for _ in range(8)))
    assert all(r.ok for r in replies), replies
    assert len({orjson.dumps(r.data) for r in replies}) == 1
    acct = await holdings(nc, "gus")
    assert acct.positions["NVDA"].quantity == 7


async def test_a_fill_interrupted_by_a_crash_is_finished_at_its_recorded_price(nc, nats_server):
    """A record left in ``filling`` (the broker died after choosing the price) is completed by
    the next broker at that price, once, with holdings and the event."""
    from tickmesh.services.broker.orders import order_key

    await seed(nc, {"hal": account("1000.00")})
    half_done = new_order(
        "hal", order(client_order_id="crash", symbol="KO", quantity="2"), market_price=D("68.40"), now=NOW
    )
    kv = await nc.jetstream().key_value(streams.ORDERS_BUCKET)
    await kv.create(order_key("hal", half_done.order_id), encode_order(half_done))
    trades = await Inbox.on(nc, user_subject(Kind.TRADES, "hal"))
    async with service(broker_service, nats_server.url):
        fill = await trades.wait_for(lambda m: orjson.loads(m.data)["status"] == "filled")
        assert orjson.loads(fill.data)["price"] == "68.40"
        retry = await command(nc, "order.submit", "hal", order(client_order_id="crash", symbol="KO", quantity="2"))
        assert retry.data == {"order_id": half_done.order_id, "status": "filled", "price": "68.40"}
    acct = await holdings(nc, "hal")
    assert acct.cash == D("1000.00") - 2 * D("68.40") and acct.positions["KO"].quantity == 2
