import asyncio
from decimal import Decimal

import orjson
import pytest

from tests.services.conftest import Inbox, account, command, publish_tick, seed, service
from tickmesh import streams
from tickmesh.contracts import messages
from tickmesh.contracts.channels import Kind, public_subject, user_subject
from tickmesh.publish import MSG_ID_HEADER
from tickmesh.services.notifier import service as notifier_service
from tickmesh.services.notifier.news import HolderIndex, ReplayNews, SyntheticNews, load_stories
from tickmesh.services.notifier.notifications import trade_notification
from tickmesh.services.notifier.rules import RuleError, RuleIndex, make_rule, triggered
from tickmesh.services.notifier.settings import SAMPLE_NEWS

D = Decimal
NOW = 1_795_000_000_000_000


def execution(**kw):
    base = {
        "exec_id": "ord-1-F",
        "order_id": "ord-1",
        "client_order_id": "c1",
        "user": "gail",
        "symbol": "AAPL",
        "side": "buy",
        "order_type": "market",
        "status": "filled",
        "quantity": "10",
        "price": "187.20",
        "ts": NOW,
    }
    return messages.schema("execution").validate({**base, **kw})


# --- the sans-I/O core ----------------------------------------------------------------------


def test_executions_become_plain_notifications():
    note = trade_notification(execution(), NOW)
    messages.schema("notification").validate(note)
    assert note["title"] == "Bought 10 AAPL at 187.20" and note["kind"] == "trade" and note["ref"] == "ord-1-F"
    assert note["id"] == trade_notification(execution(), NOW + 5)["id"]  # same cause, same id
    sold = trade_notification(execution(side="sell", quantity="0.5", symbol="BTC-USD", price="67000.00"), NOW)
    assert sold["title"] == "Sold 0.5 BTC-USD at 67000.00"
    rejected = trade_notification(execution(status="rejected", price=None, code=603, reason="not enough cash"), NOW)
    messages.schema("notification").validate(rejected)
    assert rejected["severity"] == "warning"
    assert (
        trade_notification(execution(status="accepted", price=None, order_type="limit", limit_price="180.00"), NOW)
        is None
    )


def rule(condition, threshold, price="100.00", **kw):
    data = messages.schema("alert").validate({"symbol": "AAPL", "condition": condition, "threshold": threshold})
    return make_rule(
        data,
        rule_id=kw.get("rule_id", "r1"),
        price=D(price) if price else None,
        existing=kw.get("existing", []),
        max_rules=kw.get("max_rules", 5),
        now=NOW,
    )


def test_rule_conditions():
    assert triggered(rule("above", "110"), D("110")) and not triggered(rule("above", "110"), D("109.99"))
    assert triggered(rule("below", "90"), D("89")) and not triggered(rule("below", "90"), D("91"))
    move = rule("move_pct", "5")
    assert triggered(move, D("95.00")) and triggered(move, D("105")) and not triggered(move, D("104.99"))
    messages.schema("alert").validate(move)


@pytest.mark.parametrize(
    "kw, code",
    [
        ({"existing": [{}] * 5}, 608),
        ({"price": None}, 605),
    ],
)
def test_rule_creation_refusals(kw, code):
    with pytest.raises(RuleError) as exc:
        rule("move_pct", "5", **kw)
    assert exc.value.code == code


def test_rule_index_fires_each_rule_once_and_follows_replacements():
    idx = RuleIndex()
    a, b = rule("above", "110", rule_id="a"), rule("below", "90", rule_id="b")
    idx.set_user("u", [a, b])
    assert idx.on_price("AAPL", D("100")) == []
    assert idx.on_price("AAPL", D("120")) == [("u", a)]
    assert idx.on_price("AAPL", D("130")) == []
    idx.set_user("u", [])
    assert idx.on_price("AAPL", D("1")) == [] and len(idx) == 0


def test_news_providers_produce_contract_valid_stories():
    syn = SyntheticNews(rate_per_min=60, seed=3)
    for _ in range(50):
        assert syn.interval() >= 0
        messages.schema("news").validate(syn.next_story(NOW))
    stories = load_stories(SAMPLE_NEWS)
    assert len(stories) >= 5
    replay = ReplayNews(SAMPLE_NEWS, rate_per_min=60, loop=False)
    out = [replay.next_story(NOW) for _ in range(len(stories))]
    assert replay.next_story(NOW) is None
    assert len({s["id"] for s in out}) == len(out)
    for story in out:
        messages.schema("news").validate(story)


def test_a_bad_replay_line_is_named(tmp_path):
    path = tmp_path / "bad.ndjson"
    path.write_text('{"headline": "ok", "source": "x"}\n{"headline": 5}\n')
    with pytest.raises(ValueError, match="bad.ndjson:2"):
        load_stories(path)


def test_holder_index():
    idx = HolderIndex()
    idx.set_account("u", account("0", {"AAPL": ("1", "1"), "MSFT": ("1", "1")}))
    idx.set_account("v", account("0", {"MSFT": ("1", "1")}))
    assert idx.holders_of(["AAPL", "MSFT"]) == {"u": "AAPL", "v": "MSFT"}
    idx.set_account("u", None)
    assert idx.holders_of(["AAPL"]) == {}


# --- against a real NATS --------------------------------------------------------------------


async def test_alert_commands_persist_and_a_rule_fires_once(nc, nats_server):
    notes = await Inbox.on(nc, user_subject(Kind.NOTIFICATIONS, "hana"))
    fired = await Inbox.on(nc, user_subject(Kind.ALERTS, "hana"))
    await publish_tick(nc, "AAPL", "187.20")
    async with service(notifier_service, nats_server.url, NOTIFIER_NEWS_PROVIDER="off", NOTIFIER_MAX_ALERTS="2"):
        made = await command(
            nc, "alert.create", "hana", {"symbol": "AAPL", "condition": "above", "threshold": "190.00"}, cmd_id="x1"
        )
        assert made.ok and made.data["reference_price"] == "187.20", made
        again = await command(
            nc, "alert.create", "hana", {"symbol": "AAPL", "condition": "above", "threshold": "190.00"}, cmd_id="x1"
        )
        assert again.data == made.data  # a retried command does not add a rule
        other = await command(nc, "alert.create", "hana", {"symbol": "MSFT", "condition": "below", "threshold": "1.00"})
        full = await command(nc, "alert.create", "hana", {"symbol": "KO", "condition": "below", "threshold": "1.00"})
        assert full.code == 608
        bad = await command(nc, "alert.create", "hana", {"symbol": "ZZZ", "condition": "below", "threshold": "1.00"})
        assert bad.code == 600
        listed = await command(nc, "alert.list", "hana", {})
        assert [a["id"] for a in listed.data["alerts"]] == [made.data["id"], other.data["id"]]
        assert (await command(nc, "alert.list", "ivan", {})).data == {"alerts": []}
        assert (await command(nc, "alert.delete", "ivan", {"id": other.data["id"]})).code == 607
        assert (await command(nc, "alert.delete", "hana", {"id": other.data["id"]})).data == {"id": other.data["id"]}
        await publish_tick(nc, "AAPL", "190.01")
        event = await fired.wait_for(lambda m: True)
        alert = messages.decode("alert", event.data)
        assert alert["id"] == made.data["id"] and alert["fired_price"] == "190.01"
        note = await notes.wait_for(lambda m: orjson.loads(m.data)["kind"] == "alert")
        assert "AAPL rose to 190.01" in orjson.loads(note.data)["title"]
        await publish_tick(nc, "AAPL", "195.00")
        for _ in range(100):  # the rule is removed from the bucket once fired
            if (await command(nc, "alert.list", "hana", {})).data == {"alerts": []}:
                break
            await asyncio.sleep(0.02)
        assert (await command(nc, "alert.list", "hana", {})).data == {"alerts": []}
    assert len(fired.msgs) == 1
    info = await nc.jetstream().stream_info(streams.USER_EVENTS)
    assert info.state.messages == 2  # one alert event, one notification: persisted for offline users


async def test_executions_become_notifications_even_those_published_while_down(nc, nats_server):
    js = nc.jetstream()
    notes = await Inbox.on(nc, user_subject(Kind.NOTIFICATIONS, "gail"))
    async with service(notifier_service, nats_server.url, NOTIFIER_NEWS_PROVIDER="off"):
        await command(nc, "alert.list", "gail", {})  # answered: the consumer exists
        await js.publish(
            user_subject(Kind.TRADES, "gail"),
            messages.encode("execution", execution()),
            headers={MSG_ID_HEADER: "ord-1-F"},
        )
        first = await notes.wait_for(lambda m: True)
        assert orjson.loads(first.data)["title"] == "Bought 10 AAPL at 187.20"
    # published while no notifier runs: delivered when one is back (durable consumer)
    await js.publish(
        user_subject(Kind.TRADES, "gail"),
        messages.encode(
            "execution", execution(exec_id="ord-2-F", order_id="ord-2", client_order_id="c2", quantity="2")
        ),
        headers={MSG_ID_HEADER: "ord-2-F"},
    )
    async with service(notifier_service, nats_server.url, NOTIFIER_NEWS_PROVIDER="off"):
        second = await notes.wait_for(lambda m: orjson.loads(m.data)["ref"] == "ord-2-F")
        assert orjson.loads(second.data)["title"] == "Bought 2 AAPL at 187.20"


async def test_news_goes_to_the_news_channel_and_notifies_holders(nc, nats_server):
    await seed(nc, {"jack": account("0", {"NVDA": ("5", "100.00")}), "kate": account("0", {"KO": ("1", "60.00")})})
    news = await Inbox.on(nc, public_subject(Kind.NEWS))
    jack = await Inbox.on(nc, user_subject(Kind.NOTIFICATIONS, "jack"))
    kate = await Inbox.on(nc, user_subject(Kind.NOTIFICATIONS, "kate"))
    async with service(
        notifier_service,
        nats_server.url,
        NOTIFIER_NEWS_PROVIDER="replay",
        NOTIFIER_NEWS_RATE="3000",
        NOTIFIER_NEWS_LOOP="false",
    ):
        story = await news.wait_for(lambda m: "NVDA" in orjson.loads(m.data).get("symbols", []))
        note = await jack.wait_for(lambda m: True)
        body = messages.decode("notification", note.data)
        assert body["kind"] == "news" and body["ref"] == orjson.loads(story.data)["id"]
        await news.wait_for(lambda m: "BRK.B" in orjson.loads(m.data).get("symbols", []))  # the last story
    for m in news.msgs:
        messages.decode("news", m.data)
        assert m.headers[MSG_ID_HEADER] == orjson.loads(m.data)["id"]
    assert kate.msgs == []
