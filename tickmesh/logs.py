"""Logging for every tickmesh process: JSON lines by default, readable text in a terminal.

Structured fields go in ``extra=`` (``event``, ``conn_id``, ``user``, ``channel``, ...). Callers
pass ids, never credentials; and should one pass a token by mistake, the handler's
:class:`tickmesh.redact.RedactFilter` replaces it before any formatter sees the record.

A JSON line written while a sampled trace is current carries ``trace_id`` and ``span_id``
(:func:`tickmesh.tracing.log_fields`), so a log line leads to its trace.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import orjson

from tickmesh.redact import RedactFilter

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        # Only a process that imported tracing can have a trace; others skip importing it.
        tracing = sys.modules.get("tickmesh.tracing")
        if tracing is not None and "trace_id" not in out:
            out.update(tracing.log_fields())
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service:<16} %(levelname)-7s %(message)s", "%H:%M:%S")


def setup(service: str, level: str | None = None) -> None:
    """Configure the root logger once per process. ``TICKMESH_LOG_FORMAT`` is ``json`` or
    ``text`` (default: text when stderr is a terminal, JSON otherwise)."""
    fmt = os.environ.get("TICKMESH_LOG_FORMAT") or ("text" if sys.stderr.isatty() else "json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter(service) if fmt == "text" else JsonFormatter(service))
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("TICKMESH_LOG_LEVEL", "INFO")).upper())
