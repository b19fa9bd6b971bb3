"""Typed settings from the environment.

Each deployable declares one frozen dataclass whose fields use :func:`setting`; :func:`load`
reads it once at start-up. A field's environment variable, unit and default are declared next to
it, and ``tickmesh settings`` prints them all, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """An environment variable with a value its setting cannot take."""

    def __init__(self, env: str, value: str, reason: str) -> None:
        super().__init__(f"{env}={value!r}: {reason}")
        self.env = env
        self.value = value
        self.reason = reason


def setting(env: str, default: Any, doc: str) -> Any:
    """Declare a setting read from ``env``; ``doc`` says what it is and its unit."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults")
    return dataclasses.field(default=default, metadata={"env": env, "doc": doc})


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(tp: Any, env: str, raw: str) -> Any:
    try:
        if tp is bool:
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected one of 1/0, true/false, yes/no, on/off")
        if tp is int:
            return int(raw.strip())
        if tp is float:
            value = float(raw.strip())
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError("must be finite")
            return value
        if tp is str:
            return raw
        if typing.get_origin(tp) is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(env, raw, str(exc)) from None
    raise TypeError(f"unsupported setting type {tp!r}")


def load(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from ``environ`` (default ``os.environ``); unset variables keep defaults."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        env = f.metadata.get("env")
        if env and env in environ:
            values[f.name] = _convert(hints[f.name], env, environ[env])
    obj = cls(**values)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


def describe(cls: type) -> list[tuple[str, str, str]]:
    """``(ENV, default, doc)`` for every setting of ``cls``, for help output and docs."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default
        shown = ",".join(default) if isinstance(default, tuple) else str(default)
        rows.append((f.metadata.get("env", ""), shown, f.metadata.get("doc", "")))
    return rows
