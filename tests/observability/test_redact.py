"""Logs never carry a token, even when a record carries one by mistake (tickmesh.redact)."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from tickmesh import logs
from tickmesh.redact import REDACTED, RedactFilter

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvbGVzIjpbInVzZXIiXX0.c2lnbmF0dXJlLWJ5dGVz"
OPAQUE = "s3cr3t-opaque-value-123"


def _logger(formatter: logging.Formatter, *, redact: bool) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    if redact:
        handler.addFilter(RedactFilter())
    logger = logging.getLogger(f"tickmesh.test.redact.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def _log_every_mistake(log: logging.Logger) -> None:
    log.info("auth ok", extra={"event": "auth.ok", "user": "alice", "token": JWT})
    log.info("frame %s", '{"op":"auth","token":"%s"}' % OPAQUE, extra={"event": "ws.frame"})
    log.warning("auth failed for header Bearer %s", JWT, extra={"event": "auth.failed"})
    log.info(
        "upgrade",
        extra={
            "event": "ws.open",
            "url": f"/ws?token={OPAQUE}&v=1",
            "headers": {"Authorization": f"Bearer {OPAQUE}", "Origin": "https://x"},
        },
    )
    try:
        raise ValueError(f"could not decode {JWT}")
    except ValueError:
        log.exception("decode failed", extra={"event": "auth.error"})


@pytest.mark.parametrize("formatter", [logs.JsonFormatter("edge"), logs.TextFormatter("edge")], ids=["json", "text"])
def test_redact_filter_removes_tokens_from_every_place_a_record_can_carry_one(formatter):
    log, out = _logger(formatter, redact=True)
    _log_every_mistake(log)
    text = out.getvalue()
    assert JWT not in text and OPAQUE not in text
    assert JWT.split(".")[1] not in text, "no part of the JWT either"
    assert REDACTED in text
    assert "auth ok" in text and "could not decode" in text, "the records themselves survive"


def test_json_lines_stay_valid_and_keep_their_structure():
    log, out = _logger(logs.JsonFormatter("edge"), redact=True)
    _log_every_mistake(log)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    assert [rec["event"] for rec in lines] == ["auth.ok", "ws.frame", "auth.failed", "ws.open", "auth.error"]
    assert lines[0]["token"] == REDACTED and lines[0]["user"] == "alice"
    assert lines[3]["headers"] == {"Authorization": REDACTED, "Origin": "https://x"}
    assert "ValueError" in lines[4]["exc"] and JWT not in lines[4]["exc"]


def test_without_the_filter_the_json_formatter_would_leak():
    """Why redact.py exists: JsonFormatter writes every ``extra`` field as given."""
    log, out = _logger(logs.JsonFormatter("edge"), redact=False)
    log.info("auth ok", extra={"token": JWT})
    assert JWT in out.getvalue()


def test_logs_setup_installs_the_redaction_filter(monkeypatch):
    monkeypatch.setenv("TICKMESH_LOG_FORMAT", "json")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("edge")
        assert any(isinstance(f, RedactFilter) for h in root.handlers for f in h.filters)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
