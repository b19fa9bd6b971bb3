import asyncio
import random
import sys
from decimal import Decimal

import orjson
import pytest

from tests.services.conftest import Inbox, account, publish_tick, seed, service
from tests.support.procs import Proc, base_env
from tickmesh import streams
from tickmesh.contracts import messages
from tickmesh.contracts.channels import Kind, user_subject
from tickmesh.contracts.instruments import instruments
from tickmesh.services.common.holdings import (
    Account,
    HoldingsError,
    Position,
    apply_fill,
    decode_account,
    encode_account,
)
from tickmesh.services.portfolio_valuer import service as valuer_service
from tickmesh.services.portfolio_valuer.demo import DEMO_ACCOUNTS, seed_demo_accounts
from tickmesh.services.portfolio_valuer.shards import shard_of
from tickmesh.services.portfolio_valuer.throttle import Throttle
from tickmesh.services.portfolio_valuer.valuation import DAY_US, Valuer

D = Decimal
REF = {s: i.reference_price for s, i in instruments().items()}
T0 = 1_795_000_000_000_000  # some UTC day, in microseconds
SYMBOLS = list(REF)


def full_value(acct: Account, prices: dict[str, Decimal], opens: dict[str, Decimal]) -> tuple[Decimal, Decimal]:
    """What a from-scratch recomputation gives: (total_value, day_change)."""
    value = sum((p.quantity * prices[s] for s, p in acct.positions.items()), D(0))
    change = sum((p.quantity * (prices[s] - opens[s]) for s, p in acct.positions.items()), D(0))
    return acct.cash + value, change


# --- holdings -------------------------------------------------------------------------------


def test_fills_move_cash_positions_and_average_cost_exactly_and_once():
    acct = Account(D("1000.00"))
    acct = apply_fill(acct, exec_id="e1", side="buy", symbol="AAPL", quantity=D("3"), price=D("100.10"))
    acct = apply_fill(acct, exec_id="e2", side="buy", symbol="AAPL", quantity=D("1"), price=D("100.50"))
    assert acct.cash == D("599.20")
    assert acct.positions["AAPL"] == Position(D("4"), D("100.2"))
    assert apply_fill(acct, exec_id="e2", side="buy", symbol="AAPL", quantity=D("1"), price=D("100.50")) is acct
    acct = apply_fill(acct, exec_id="e3", side="sell", symbol="AAPL", quantity=D("4"), price=D("101"))
    assert acct.cash == D("1003.20") and "AAPL" not in acct.positions
    assert decode_account(encode_account(acct)) == acct


def test_fills_the_account_cannot_take_are_refused_with_their_codes():
    acct = Account(D("10"), {"AAPL": Position(D("1"), D("5"))})
    for side, qty, code in (("buy", "3", 603), ("sell", "2", 604)):
        try:
            apply_fill(acct, exec_id="x", side=side, symbol="AAPL", quantity=D(qty), price=D("5"))
        except HoldingsError as exc:
            assert exc.code == code
        else:
            raise AssertionError("accepted")


# --- valuation ------------------------------------------------------------------------------


def test_a_tick_revalues_only_holders_and_keeps_totals_exact():
    v = Valuer(reference_prices=REF, start_ts=T0)
    v.set_account("alice", account("100.00", {"AAPL": ("10", "180"), "BTC-USD": ("0.5", "60000")}))
    v.set_account("bob", account("5.00", {"MSFT": ("2", "400")}))
    assert set(v.on_price("AAPL", D("190.01"), T0 + 1)) == {"alice"}
    assert list(v.on_price("AAPL", D("190.01"), T0 + 2)) == []  # no change, nobody to publish
    msg = v.portfolio("alice", T0 + 3)
    messages.schema("portfolio").validate(msg)
    assert msg["total_value"] == "35625.100" and msg["cash"] == "100.00"
    aapl = next(p for p in msg["positions"] if p["symbol"] == "AAPL")
    assert (aapl["value"], aapl["day_change"], aapl["unrealized_pnl"]) == ("1900.10", "28.10", "100.10")
    assert D(msg["day_change"]) == D("28.10")
    assert D(msg["day_change_pct"]) == (D("28.10") / (D("35625.100") - D("28.10")) * 100).quantize(D("0.01"))
    assert v.portfolio("bob", T0)["total_value"] == format(D("5.00") + 2 * REF["MSFT"], "f")


def test_the_first_tick_of_a_new_utc_day_resets_the_opening_price():
    v = Valuer(reference_prices=REF, start_ts=T0)
    v.set_account("alice", account("0", {"AAPL": ("10", "180")}))
    v.on_price("AAPL", REF["AAPL"] + 1, T0 + 5)
    assert v.totals("alice")[2] == D("10")
    next_day = (T0 // DAY_US + 1) * DAY_US
    v.on_price("AAPL", D("200.00"), next_day + 1)
    assert v.totals("alice")[2] == 0
    v.on_price("AAPL", D("201.00"), next_day + 2)
    assert v.totals("alice")[2] == D("10.00")


def test_ten_thousand_users_with_twenty_symbols_each_stay_exact_under_ticks():
    """The scale the valuer is built for: 200,000 holdings, incremental ticks, exact sums."""
    rng = random.Random(11)
    v = Valuer(reference_prices=REF, start_ts=T0)
    accounts: dict[str, Account] = {}
    for i in range(10_000):
        held = rng.sample(SYMBOLS, 20)
        accounts[f"u{i}"] = acct = Account(
            D(rng.randint(0, 10**6)) / 100, {s: Position(D(rng.randint(1, 10**6)) / 1000, REF[s]) for s in held}
        )
        v.set_account(f"u{i}", acct)
    assert sum(len(list(v.holders(s))) for s in SYMBOLS) == 200_000
    prices = dict(REF)
    for n in range(300):
        sym = rng.choice(SYMBOLS)
        tick = instruments()[sym].tick_size
        price = max(prices[sym] + tick * rng.randint(-50, 50), tick)
        changed = set(v.on_price(sym, price, T0 + n))
        if price != prices[sym]:
            assert changed == {u for u, a in accounts.items() if sym in a.positions}
        prices[sym] = price
    for user in rng.sample(sorted(accounts), 200):
        total, _, change = v.totals(user)
        assert (total, change) == full_value(accounts[user], prices, REF)
    messages.schema("portfolio").validate(v.portfolio("u0", T0))


# --- throttle and versions ------------------------------------------------------------------


def test_throttle_limits_rate_per_user_and_keeps_the_trailing_change():
    th = Throttle(max_hz=4)
    th.mark("a", 0.0)
    assert th.pop_due(0.0) == ["a"]
    th.mark("a", 0.01)
    th.mark("a", 0.02)  # coalesced with the pending one
    th.mark("b", 0.02)
    assert th.pop_due(0.05) == ["b"]
    assert th.next_due() == 0.25
    assert th.pop_due(0.2) == []
    assert th.pop_due(0.25) == ["a"]  # the trailing edge
    assert th.next_due() is None


def test_marking_many_keys_coalesces_with_pending_ones():
    th = Throttle(max_hz=2)
    th.mark_many({"a": 1, "b": 2}.keys(), 0.0)
    assert sorted(th.pop_due(0.0)) == ["a", "b"]
    th.mark_many(["a"], 0.1)
    th.mark_many({"a", "c"}, 0.2)
    assert th.pop_due(0.2) == ["c"]
    assert th.pop_due(0.5) == ["a"] and th.next_due() is None


def test_shards_split_users_stably():
    users = [f"user{i}" for i in range(1000)]
    shards = [shard_of(u, 4) for u in users]
    assert shards == [shard_of(u, 4) for u in users]
    assert all(150 < shards.count(k) < 350 for k in range(4))
    assert {shard_of(u, 1) for u in users} == {0}


# --- the service against a real NATS --------------------------------------------------------


async def test_demo_seeding_is_idempotent(nats_server):
    assert sorted(await seed_demo_accounts(nats_server.url)) == sorted(DEMO_ACCOUNTS)
    assert await seed_demo_accounts(nats_server.url) == []


async def test_service_publishes_valuations_on_ticks_for_holders_only(nc, nats_server):
    await seed(
        nc,
        {"vera": account("1000.00", {"AAPL": ("10", "180.00")}), "walt": account("50.00", {"MSFT": ("1", "400.00")})},
    )
    vera = await Inbox.on(nc, user_subject(Kind.PORTFOLIO, "vera"))
    walt = await Inbox.on(nc, user_subject(Kind.PORTFOLIO, "walt"))
    async with service(valuer_service, nats_server.url, VALUER_MAX_HZ="50"):
        first = await vera.wait_for(lambda m: True)
        assert messages.decode("portfolio", first.data)["total_value"] == format(D("1000.00") + 10 * REF["AAPL"], "f")
        await walt.wait_for(lambda m: True)
        walt_before = len(walt.msgs)
        await publish_tick(nc, "AAPL", "200.00")
        moved = await vera.wait_for(lambda m: orjson.loads(m.data)["total_value"] == "3000.00")
        assert int(moved.headers["Tm-Seq"]) > int(first.headers["Tm-Seq"])
        # a change to holdings (what the broker writes) is picked up from the KV watch
        kv = await nc.jetstream().key_value(streams.HOLDINGS_BUCKET)
        entry = await kv.get("vera")
        acct = apply_fill(
            decode_account(entry.value), exec_id="t1", side="sell", symbol="AAPL", quantity=D("5"), price=D("200.00")
        )
        await kv.update("vera", encode_account(acct), last=entry.revision)
        await vera.wait_for(lambda m: orjson.loads(m.data)["cash"] == "2000.00")
    assert len(walt.msgs) == walt_before
    # the stream keeps the latest valuation per user as the snapshot
    last = await nc.jetstream().get_last_msg(streams.USER_STATE, user_subject(Kind.PORTFOLIO, "vera"))
    assert messages.decode("portfolio", last.data)["cash"] == "2000.00"


async def test_service_stops_cleanly_on_sigterm(nats_server, tmp_path):
    import signal

    proc = Proc(
        [sys.executable, "-m", "tickmesh", "service", "portfolio-valuer"],
        base_env(NATS_URL=nats_server.url),
        tmp_path / "valuer.log",
    )
    for _ in range(200):
        if "valuer.started" in proc.output():
            break
        await asyncio.sleep(0.05)
    assert proc.stop(signal.SIGTERM) == 0, proc.output()
    assert "valuer.stopped" in proc.output()


def test_the_shard_can_come_from_the_statefulset_ordinal(monkeypatch):
    from tickmesh.config import ConfigError, load
    from tickmesh.services.portfolio_valuer.settings import ValuerSettings, ordinal_of

    assert ordinal_of("tm-tickmesh-portfolio-valuer-12") == 12 and ordinal_of("laptop") is None
    monkeypatch.setattr("socket.gethostname", lambda: "tm-tickmesh-portfolio-valuer-1")
    assert load(ValuerSettings, {"VALUER_SHARDS": "2", "VALUER_SHARD": "ordinal"}).home_shard == 1
    with pytest.raises(ConfigError, match="VALUER_SHARD"):
        load(ValuerSettings, {"VALUER_SHARDS": "1", "VALUER_SHARD": "ordinal"})
    monkeypatch.setattr("socket.gethostname", lambda: "laptop")
    with pytest.raises(ConfigError, match="does not end in -N"):
        load(ValuerSettings, {"VALUER_SHARDS": "2", "VALUER_SHARD": "ordinal"})
    with pytest.raises(ConfigError, match="whole number"):
        load(ValuerSettings, {"VALUER_SHARDS": "2", "VALUER_SHARD": "one"})
