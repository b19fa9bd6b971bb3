import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickmesh.contracts.channels import (
    Channel,
    ChannelError,
    Kind,
    channel_for_subject,
    decode_token,
    encode_token,
    parse_channel,
    subject_for,
    tick_subject,
    user_subject,
)

NATS_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


@pytest.mark.parametrize("symbol", ["AAPL", "BRK.B", "BTC-USD", "EUR/USD", "ES=F", "^GSPC", "7203", "BF_B"])
def test_real_symbols_map_to_one_safe_subject_and_back(symbol):
    ch = parse_channel(f"prices:{symbol}")
    assert ch == Channel(Kind.PRICES, symbol)
    subject = subject_for(ch)
    assert subject.startswith("tm.tick.")
    token = subject.split(".", 2)[2]
    assert NATS_TOKEN.fullmatch(token)
    assert channel_for_subject(subject) == ch


def test_distinct_symbols_never_share_a_subject():
    symbols = ["BRK.B", "BRK-B", "BRK/B", "BRK_B", "BRKB", "BRK_2EB"]
    subjects = {tick_subject(s) for s in symbols if re.fullmatch(r"[A-Z0-9^][A-Z0-9./_=^-]*", s)}
    assert len(subjects) == len(symbols)


@pytest.mark.parametrize(
    "name",
    [
        "prices:*",
        "prices:>",
        "prices:AAPL.*",
        "prices:AAPL >",
        "prices: AAPL",
        "prices:AAPL\n",
        "prices:aapl",
        "prices:",
        "prices",
        "prices:AAPL\x00",
        "prices:" + "A" * 33,
        "prices:.AAPL",
        "tm.tick.AAPL",
        "Prices:AAPL",
        "prices::AAPL",
        "portfolio:*",
        "portfolio:bob smith",
        "portfolio:bob\tx",
        "news:AAPL",
        "announcements:x",
        "",
        "x" * 200,
        "prices:ÄAPL",
    ],
)
def test_hostile_or_malformed_names_are_rejected_with_a_reason(name):
    with pytest.raises(ChannelError) as info:
        parse_channel(name)
    assert info.value.reason


@pytest.mark.parametrize("value", [None, 1, ["prices:AAPL"], {"ch": "x"}, b"prices:AAPL"])
def test_non_string_channels_are_rejected(value):
    with pytest.raises(ChannelError):
        parse_channel(value)


def test_user_channels_default_to_the_authenticated_user():
    ch = parse_channel("portfolio")
    assert ch.arg is None
    assert subject_for(ch, user_id="alice@example.com") == user_subject(Kind.PORTFOLIO, "alice@example.com")
    assert subject_for(parse_channel("portfolio:bob"), user_id="alice") == "tm.user.bob.portfolio"
    assert subject_for(parse_channel("announcements")) == "tm.announcements"


@given(st.text(min_size=1, max_size=40))
def test_token_encoding_is_reversible_and_subject_safe(text):
    token = encode_token(text)
    assert NATS_TOKEN.fullmatch(token)
    assert decode_token(token) == text


@given(st.text(max_size=100))
def test_any_string_either_parses_to_a_safe_subject_or_is_rejected(name):
    try:
        ch = parse_channel(name)
    except ChannelError:
        return
    subject = subject_for(ch, user_id="u1")
    for token in subject.split("."):
        assert NATS_TOKEN.fullmatch(token), subject


@pytest.mark.parametrize("token", ["", "A_2", "A_ZZ", "A_41", "A.B", "A*", "a_2e"])
def test_decode_rejects_tokens_the_encoder_never_produces(token):
    with pytest.raises(ValueError):
        decode_token(token)


WL = "AbCdEfGhIjKlMnOpQrStU1"


@pytest.mark.parametrize(
    "name,subject",
    [
        ("presence:symbol.AAPL", "tm.presence.symbol_2EAAPL"),
        ("presence:symbol.BRK.B", "tm.presence.symbol_2EBRK_2EB"),
        (f"presence:watchlist.{WL}", f"tm.presence.watchlist_2E{WL}"),
        ("presence:desk.support", "tm.presence.desk_2Esupport"),
        (f"watchlist:{WL}", f"tm.wl.{WL}"),
    ],
)
def test_presence_and_watchlist_channels_map_to_one_subject_and_back(name, subject):
    ch = parse_channel(name)
    assert ch.name == name
    assert subject_for(ch) == subject
    assert channel_for_subject(subject) == ch


@pytest.mark.parametrize(
    "name",
    [
        "presence:",
        "presence",
        "presence:symbol.",
        "presence:symbol.aapl",
        "presence:desk.sales",
        "presence:desk",
        "presence:watchlist.short",
        f"presence:watchlist.{WL}x",
        "presence:user.bob",
        "presence:symbol.*",
        "presence:symbol.AAPL>",
        "watchlist:",
        "watchlist",
        f"watchlist:{WL[:-1]}_",
        "watchlist:../etc",
        f"watchlist:{WL}.x",
    ],
)
def test_malformed_presence_topics_and_watchlist_ids_are_rejected(name):
    with pytest.raises(ChannelError) as info:
        parse_channel(name)
    assert info.value.reason


def test_channel_classes():
    assert Kind.WATCHLIST.channel_class == "state" and Kind.PRESENCE.channel_class == "presence"
    assert Kind.TRADES.channel_class == "event" and Kind.PRICES.channel_class == "state"
