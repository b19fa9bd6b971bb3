"""Error codes (in ``err`` frames) and close codes, built from ``codes.toml``.

The numeric values are stable: clients decide what to do from them. ``ErrorCode`` values are
sent in ``err`` frames and leave the connection open; ``CloseCode`` values close it, and
:func:`should_reconnect` tells whether a client should try again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._data import load
from .code_enums import CloseCode, ErrorCode


@dataclass(frozen=True, slots=True)
class CodeInfo:
    name: str
    code: int
    meaning: str
    retry: bool
    http: int


# The HTTP status of an error code without its own `http` entry, by range (codes.toml's header).
_HTTP_BY_RANGE = {1: 400, 2: 400, 3: 401, 4: 429, 5: 503, 6: 422}


def _table(kind: str, flag: str) -> dict[str, CodeInfo]:
    raw = load("codes.toml")[kind]
    return {
        name: CodeInfo(
            name=name,
            code=int(entry["code"]),
            meaning=entry["meaning"],
            retry=bool(entry[flag]),
            http=int(entry.get("http", _HTTP_BY_RANGE.get(int(entry["code"]) // 100, 400))),
        )
        for name, entry in raw.items()
    }


ERRORS: dict[str, CodeInfo] = _table("err", "retry")
CLOSES: dict[str, CodeInfo] = _table("close", "reconnect")

for _enum, _table_ in ((ErrorCode, ERRORS), (CloseCode, CLOSES)):
    if {m.name: m.value for m in _enum} != {n.upper(): i.code for n, i in _table_.items()}:
        raise ImportError(
            f"contracts/code_enums.py is stale against codes.toml ({_enum.__name__}): "
            "run python -m tickmesh.ops.codegen"
        )

_CLOSE_BY_CODE = {info.code: info for info in CLOSES.values()}
_HTTP = {info.code: info.http for info in (*ERRORS.values(), *CLOSES.values())}


def http_status(code: int) -> int:
    """The HTTP status for an ``err`` body carrying ``code`` (error or close code)."""
    return _HTTP.get(code) or _HTTP_BY_RANGE.get(code // 100, 400)


def should_reconnect(close_code: int) -> bool:
    """Whether a client should reconnect after ``close_code``.

    Codes 4000-4099 mean yes, 4100-4199 mean no; an unknown or standard WebSocket code other
    than those listed means yes (network trouble is transient).
    """
    info = _CLOSE_BY_CODE.get(close_code)
    if info is not None:
        return info.retry
    return not 4100 <= close_code <= 4199
