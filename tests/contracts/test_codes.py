from pathlib import Path

from tickmesh.contracts.codes import CLOSES, ERRORS, CloseCode, ErrorCode, should_reconnect

PROTOCOL = Path(__file__).resolve().parents[2] / "contracts" / "PROTOCOL.md"


def test_codes_are_unique_and_in_their_documented_ranges():
    err = [i.code for i in ERRORS.values()]
    close = [i.code for i in CLOSES.values()]
    assert len(set(err)) == len(err) and len(set(close)) == len(close)
    assert all(100 <= c < 700 for c in err)
    for info in CLOSES.values():
        if 4000 <= info.code < 4100:
            assert info.retry, info
        elif 4100 <= info.code < 4200:
            assert not info.retry, info


def test_reconnect_decision_follows_the_ranges():
    assert should_reconnect(CloseCode.SHUTDOWN)
    assert should_reconnect(CloseCode.TOKEN_EXPIRED)
    assert not should_reconnect(CloseCode.AUTH_FAILED)
    assert not should_reconnect(4199)
    assert should_reconnect(1006)


def test_protocol_document_lists_every_code():
    text = PROTOCOL.read_text()
    for info in list(ERRORS.values()) + list(CLOSES.values()):
        assert f"| {info.code} |" in text, f"PROTOCOL.md does not document code {info.code} ({info.name})"
    assert ErrorCode.MALFORMED_FRAME == 100


def test_generated_sections_are_fresh():
    """Run `python -m tickmesh.ops.codegen` after editing a contract file."""
    from tickmesh.ops.codegen import gen

    stale = gen.stale()
    assert not stale, f"stale generated files: {stale}; run python -m tickmesh.ops.codegen"
