"""The domain services together, without the edge: an order flows from the broker to the trades
channel, a notification and a new valuation, on that user's subjects only."""

from decimal import Decimal

import orjson

from tests.services.conftest import Inbox, account, command, publish_tick, seed, service
from tickmesh.contracts import messages
from tickmesh.contracts.channels import SUBJECT_ROOT, Kind, channel_for_subject, user_subject
from tickmesh.services.announcer import service as announcer_service
from tickmesh.services.broker import service as broker_service
from tickmesh.services.notifier import service as notifier_service
from tickmesh.services.portfolio_valuer import service as valuer_service

D = Decimal


async def test_an_order_reaches_trades_notifications_and_portfolio_of_its_user_only(nc, nats_server):
    await seed(
        nc,
        {
            "olga": account("50000.00", {"BTC-USD": ("0.1", "60000.00")}),
            "pete": account("1000.00", {"AAPL": ("1", "180.00")}),
        },
    )
    everything = await Inbox.on(nc, f"{SUBJECT_ROOT}.user.>")
    await publish_tick(nc, "AAPL", "187.20")
    url = nats_server.url
    async with (
        service(valuer_service, url, VALUER_MAX_HZ="20"),
        service(broker_service, url),
        service(notifier_service, url, NOTIFIER_NEWS_PROVIDER="off"),
        service(announcer_service, url),
    ):
        olga_portfolio = user_subject(Kind.PORTFOLIO, "olga")
        await everything.wait_for(lambda m: m.subject == olga_portfolio)
        await command(nc, "alert.list", "olga", {})  # the notifier is serving: its consumer exists
        pete_before = [m.data for m in everything.msgs if channel_for_subject(m.subject).arg == "pete"]

        reply = await command(
            nc,
            "order.submit",
            "olga",
            {"client_order_id": "flow-1", "symbol": "AAPL", "side": "buy", "type": "market", "quantity": "10"},
        )
        assert reply.ok and reply.data["status"] == "filled" and reply.data["price"] == "187.20", reply

        trade = await everything.wait_for(lambda m: m.subject == user_subject(Kind.TRADES, "olga"))
        execution = messages.decode("execution", trade.data)
        assert execution["order_id"] == reply.data["order_id"]
        note = await everything.wait_for(lambda m: m.subject == user_subject(Kind.NOTIFICATIONS, "olga"))
        assert messages.decode("notification", note.data)["title"] == "Bought 10 AAPL at 187.20"
        valued = await everything.wait_for(
            lambda m: (
                m.subject == olga_portfolio and any(p["symbol"] == "AAPL" for p in orjson.loads(m.data)["positions"])
            )
        )
        portfolio = messages.decode("portfolio", valued.data)
        assert D(portfolio["cash"]) == D("50000.00") - 10 * D("187.20")
        aapl = next(p for p in portfolio["positions"] if p["symbol"] == "AAPL")
        assert (D(aapl["quantity"]), D(aapl["value"])) == (10, D("1872.00"))

        await publish_tick(nc, "BTC-USD", "70000.00")  # a symbol pete does not hold
        await everything.wait_for(
            lambda m: (
                m.subject == olga_portfolio
                and any(p["symbol"] == "BTC-USD" and D(p["price"]) == 70000 for p in orjson.loads(m.data)["positions"])
            )
        )
    pete_after = [m.data for m in everything.msgs if channel_for_subject(m.subject).arg == "pete"]
    assert pete_after == pete_before  # nothing of olga's order or olga's symbols reached pete
    assert {channel_for_subject(m.subject).arg for m in everything.msgs} == {"olga", "pete"}
    assert all(
        channel_for_subject(m.subject).kind is Kind.PORTFOLIO
        for m in everything.msgs
        if channel_for_subject(m.subject).arg == "pete"
    )
