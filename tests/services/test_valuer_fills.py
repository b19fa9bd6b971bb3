"""portfolio-valuer's causal positions (services/portfolio_valuer/fills.py), sans I/O: a valuation
that includes a fill is held until the fill's execution was seen, then names its position."""

from tickmesh.services.portfolio_valuer.fills import FillPositions


def test_a_fill_applied_before_its_execution_is_seen_waits_for_it():
    f = FillPositions(wait_s=1.0)
    assert f.account("alice", ("x1",), "rev1", 0.0, history=True)  # start-up: history, applied at once
    assert f.trade_seq.get("alice") is None
    assert not f.account("alice", ("x1", "x2"), "rev2", 1.0, history=False)  # the broker changed holdings first
    assert f.execution("bob", "y1", 40) is None
    assert f.execution("alice", "x2", 41) == "rev2"
    assert f.trade_seq["alice"] == 41


def test_an_execution_seen_first_lets_the_account_change_through_at_once():
    f = FillPositions(wait_s=1.0)
    f.account("alice", (), "rev0", 0.0, history=True)
    assert f.execution("alice", "x1", 7) is None
    assert f.account("alice", ("x1",), "rev1", 0.5, history=False)
    assert f.trade_seq["alice"] == 7


def test_a_newer_revision_replaces_the_held_one_and_waits_for_every_new_fill():
    f = FillPositions(wait_s=1.0)
    f.account("alice", (), "rev0", 0.0, history=True)
    assert not f.account("alice", ("x1",), "rev1", 0.0, history=False)
    assert not f.account("alice", ("x1", "x2"), "rev2", 0.1, history=False)
    assert f.execution("alice", "x2", 12) is None  # x1 is still missing
    assert f.execution("alice", "x1", 11) == "rev2"  # published out of order: the higher position is named
    assert f.trade_seq["alice"] == 12


def test_the_wait_ends_after_wait_s_and_names_what_was_seen():
    f = FillPositions(wait_s=1.0)
    f.account("alice", ("x0",), "rev0", 0.0, history=True)
    assert not f.account("alice", ("x0", "x1", "x2"), "rev1", 5.0, history=False)
    f.execution("alice", "x1", 30)
    assert f.next_deadline() == 6.0 and f.due(5.9) == []
    assert f.due(6.0) == [("alice", "rev1")]
    assert f.trade_seq["alice"] == 30 and f.next_deadline() is None


def test_a_change_without_new_fills_and_a_first_account_without_fills_are_not_held():
    f = FillPositions(wait_s=1.0)
    assert f.account("carol", (), "new", 0.0, history=False)  # a seeded account
    assert f.account("carol", (), "deposit", 0.0, history=False)
    f.account("dave", ("x1",), "rev", 0.0, history=True)
    assert f.account("dave", ("x1",), "same fills", 0.0, history=False)


def test_forget_and_bounded_unmatched_executions():
    f = FillPositions(wait_s=1.0, max_unmatched=2)
    for i in range(5):
        f.execution("alice", f"x{i}", i + 1)
    assert len(f._unmatched) == 2
    assert not f.account("alice", ("x0",), "rev", 0.0, history=False)  # x0 was evicted: waits
    f.forget("alice")
    assert f.due(10.0) == [] and "alice" not in f.trade_seq


# -- with the real broker and valuer (and NATS) -----------------------------------------------


async def test_every_valuation_that_includes_a_fill_names_its_trades_position(nc, nats_server):
    import orjson

    from tests.services.conftest import Inbox, account, command, publish_tick, seed, service
    from tickmesh import streams
    from tickmesh.contracts.channels import Kind, user_subject
    from tickmesh.services.broker import service as broker_service
    from tickmesh.services.portfolio_valuer import service as valuer_service

    await seed(nc, {"olga": account("50000.00")})
    portfolio = user_subject(Kind.PORTFOLIO, "olga")
    values = await Inbox.on(nc, portfolio)
    await publish_tick(nc, "AAPL", "187.20")
    url = nats_server.url
    async with service(valuer_service, url, VALUER_MAX_HZ="50"), service(broker_service, url):
        await values.wait_for(lambda m: True)  # valued: the valuer is following holdings and trades
        positions = []
        for n in range(3):
            reply = await command(
                nc,
                "order.submit",
                "olga",
                {"client_order_id": f"causal-{n}", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"},
            )
            assert reply.ok and reply.data["status"] == "filled", reply
            stored = await nc.jetstream().get_last_msg(streams.USER_EVENTS, user_subject(Kind.TRADES, "olga"))
            positions.append(stored.seq)
            await values.wait_for(lambda m: orjson.loads(m.data).get("trade_seq") == positions[-1])
            await publish_tick(nc, "AAPL", f"18{n}.00")  # a price move keeps naming the fills it includes
            await values.wait_for(
                lambda m, n=n: (
                    orjson.loads(m.data).get("trade_seq") == positions[-1]
                    and orjson.loads(m.data)["positions"][0]["price"] == f"18{n}.00"
                )
            )
    held = [orjson.loads(m.data) for m in values.msgs]
    for value in held:  # no valuation ever includes a fill without naming it
        units = sum(int(float(p["quantity"])) for p in value["positions"] if p["symbol"] == "AAPL")
        assert value.get("trade_seq", 0) >= (positions[units - 1] if units else 0), value
