from decimal import Decimal

import orjson
import pytest

from tickmesh.contracts import messages
from tickmesh.contracts.messages import ContractError

GOOD = {
    "symbol": "BRK.B",
    "last": "452.30",
    "bid": "452.29",
    "ask": "452.31",
    "size": "100",
    "ts": 1_795_000_000_000_000,
    "ingest_ts": 1_795_000_000_001_000,
    "provider": "synthetic",
}


def test_a_valid_tick_round_trips_exactly():
    data = messages.encode("tick", GOOD)
    assert messages.decode("tick", data) == GOOD
    # Prices are strings on the wire, never floats.
    assert b'"last":"452.30"' in data


def test_decimals_keep_every_digit():
    tick = dict(GOOD, last=Decimal("0.123456789012345678"))
    assert orjson.loads(messages.encode("tick", tick))["last"] == "0.123456789012345678"


@pytest.mark.parametrize(
    "field,value",
    [
        ("last", 452.3),
        ("last", "4.523e2"),
        ("last", "NaN"),
        ("last", "-1.00"),
        ("last", "0"),
        ("last", Decimal("Infinity")),
        ("bid", "1,5"),
        ("ts", 1.5),
        ("ts", 1_700_000_000),
        ("ts", True),
        ("symbol", "brk.b"),
        ("symbol", "A*"),
        ("provider", "x" * 33),
        ("provider", 3),
    ],
)
def test_bad_fields_are_named(field, value):
    with pytest.raises(ContractError) as info:
        messages.encode("tick", dict(GOOD, **{field: value}))
    assert info.value.field == field


@pytest.mark.parametrize("missing", ["symbol", "last", "ts", "ingest_ts", "provider"])
def test_required_fields(missing):
    tick = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(ContractError) as info:
        messages.encode("tick", tick)
    assert info.value.field == missing


def test_optional_fields_may_be_absent_and_unknown_fields_are_refused():
    minimal = {k: GOOD[k] for k in ("symbol", "last", "ts", "ingest_ts", "provider")}
    assert messages.decode("tick", messages.encode("tick", minimal)) == minimal
    with pytest.raises(ContractError):
        messages.encode("tick", dict(GOOD, extra=1))


def test_decode_rejects_non_json():
    with pytest.raises(ContractError):
        messages.decode("tick", b"{not json")
