"""Keeps credentials out of log lines, even when a caller passes one by mistake.

:class:`RedactFilter` is a ``logging.Filter`` for the *handler* (a handler's filters see every
record that reaches it, from any logger; a logger's filters would miss records propagated from
child loggers). It rewrites the record in place before any formatter sees it:

- structured fields (``extra=``) whose name says "secret" (``token``, ``authorization``,
  ``password``, ``secret``, ``cookie``, ``api_key``, ...), at any depth of dicts and lists, become
  ``"[redacted]"``;
- JWTs (``eyJ...``.``...``.``...``), ``Bearer``/``Basic`` credentials, ``?token=`` query values
  and ``token: ...``/``password=...`` pairs anywhere in the message, its arguments, string fields
  or an exception's traceback are replaced by ``[redacted]``.

Install it in ``tickmesh.logs.setup`` with ``handler.addFilter(RedactFilter())``; it never
drops a record (``filter`` always returns True). Cost: a few regex scans per log record, never
on a per-message path (tickmesh logs events, not messages).
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"

# Field names that hold credentials (compared lower-case, with "-" read as "_").
SECRET_KEYS = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "jwt",
        "authorization",
        "auth",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "cookie",
        "set_cookie",
        "session",
        "private_key",
        "credentials",
        "signature",
    }
)
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "_api_key", "_private_key", "signing_key")

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_QUERY = re.compile(r"(?i)([?&](?:token|access_token|jwt|auth)=)[^&\s\"']+")
# ``"token": "..."`` or ``password=...`` inside a logged frame, dict repr or config line.
_KV = re.compile(
    r"""(?i)(["']?\b(?:token|access_token|refresh_token|jwt|password|secret|authorization)"""
    r"""["']?\s*[:=]\s*["']?)[^"'\s,;}&]+"""
)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


def is_secret_key(key: str) -> bool:
    k = key.lower().replace("-", "_")
    return k in SECRET_KEYS or k.endswith(_SECRET_SUFFIXES)


def scrub_text(text: str) -> str:
    """``text`` with every JWT, Bearer/Basic credential and ``?token=`` value replaced."""
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    return _KV.sub(lambda m: m.group(1) + REDACTED, text)


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with secret-named keys and secret-looking strings redacted."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes):
        return scrub_text(value.decode("utf-8", "replace"))
    if depth > 6:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and is_secret_key(k) else scrub(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v, depth + 1) for v in value)
    return value


class RedactFilter(logging.Filter):
    """Redacts credentials in every record it sees; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub_text(record.msg)
        if record.args:
            record.args = scrub(record.args) if isinstance(record.args, tuple) else scrub(record.args)
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD or key.startswith("_"):
                continue
            record.__dict__[key] = REDACTED if is_secret_key(key) else scrub(value)
        if record.exc_info and record.exc_info[1] is not None:
            self._scrub_exception(record)
        return True

    @staticmethod
    def _scrub_exception(record: logging.LogRecord) -> None:
        # Formatters render exc_info themselves; when the traceback holds a secret, render it
        # here, scrubbed, and hand formatters the text instead: ``exc_text`` for the standard
        # Formatter (TextFormatter) and an ``exc`` field for the JSON formatter.
        text = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
        clean = scrub_text(text)
        if clean != text:
            record.exc_info = None
            record.exc_text = clean
            record.__dict__["exc"] = clean
