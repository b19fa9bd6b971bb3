"""NATS permissions per component, from ``permissions.toml``, resolved to concrete subjects.

:func:`role` turns a role's symbolic grants (``channel:prices``, ``commands:broker``,
``bucket:holdings``, ...) into the subject lists a nats-server ``permissions`` block takes,
including the JetStream API subjects that reading a stream, writing a bucket or owning a durable
consumer needs. Nothing here spells a ``tm.*`` subject: channels, commands, control subjects,
streams and buckets all come from the other contracts, so a renamed subject is renamed in the
permissions too. ``tickmesh up`` and the Helm chart render server configuration from this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from . import commands as cmds
from . import messages
from . import streams as table
from ._data import load
from .channels import Kind, wildcard

DEFAULT_INBOX = "_INBOX"
_KEYS = {"doc", "publish", "subscribe", "read", "write", "consume", "responses", "manage"}


class PermissionsError(ValueError):
    """``permissions.toml`` names something the contracts do not have; the message says what."""


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    doc: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    responses: bool
    manage: bool

    def server_permissions(self, inbox_prefix: str) -> dict[str, Any]:
        """The ``permissions`` block of a nats-server user with this role, whose client uses
        ``inbox_prefix`` for its reply subjects."""
        subscribe = list(self.subscribe)
        if ">" not in subscribe:
            subscribe.append(f"{inbox_prefix}.>")
        out: dict[str, Any] = {"publish": {"allow": list(self.publish)}, "subscribe": {"allow": subscribe}}
        if self.responses:
            out["allow_responses"] = True
        return out


def inbox_prefix(user: str) -> str:
    """The reply-subject prefix a component's user gets (only it may subscribe there)."""
    return f"{DEFAULT_INBOX}_{user}"


def _subjects(where: str, value: str) -> list[str]:
    kind_, _, arg = value.partition(":")
    if value == ">":
        return [">"]
    if kind_ == "channel":
        try:
            return [wildcard(Kind(arg))]
        except ValueError as exc:
            raise PermissionsError(f"{where}: {value}: {exc}") from None
    if kind_ == "commands":
        if arg == "*":
            return [cmds.COMMAND_WILDCARD]
        subjects = cmds.service_subjects(arg)
        if not subjects:
            raise PermissionsError(f"{where}: {value}: no command names service {arg!r}")
        return subjects
    if kind_ == "control":
        if (
            arg not in messages.schema_names()
            or not messages.schema(arg).subject
            or arg in messages.channel_schemas().values()
        ):
            raise PermissionsError(f"{where}: {value}: no control schema {arg!r} (a subject that is no channel's)")
        return [messages.schema(arg).subject.replace("<user-token>", "*")]  # type: ignore[union-attr]
    raise PermissionsError(f"{where}: {value!r} is not channel:, commands:, control: or >")


def _stream_name(where: str, value: str) -> str:
    kind_, _, arg = value.partition(":")
    if kind_ == "stream" and arg in table.streams():
        return table.stream(arg).name
    if kind_ == "bucket" and arg in table.buckets():
        return f"KV_{table.bucket(arg).name}"
    raise PermissionsError(f"{where}: {value!r} names no stream:<key> or bucket:<key> of streams.toml")


def read_api(stream: str) -> list[str]:
    """JetStream API subjects to read ``stream``: metadata, direct and stored-message gets, and
    ephemeral consumers (create, info, delete, fetch, flow control)."""
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.API.CONSUMER.DELETE.{stream}.*",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def manage_api() -> list[str]:
    """Creating and updating streams and buckets (never deleting or purging them)."""
    return [
        "$JS.API.INFO",
        "$JS.API.STREAM.CREATE.*",
        "$JS.API.STREAM.UPDATE.*",
        "$JS.API.STREAM.NAMES",
        "$JS.API.STREAM.LIST",
    ]


def _role(name: str, spec: Mapping[str, Any]) -> Role:
    unknown = set(spec) - _KEYS
    if unknown:
        raise PermissionsError(f"roles.{name}: unknown field(s) {sorted(unknown)}")
    where = f"roles.{name}"
    pub: list[str] = []
    sub: list[str] = []
    for value in spec.get("publish", ()):
        pub += _subjects(f"{where}.publish", value)
    for value in spec.get("subscribe", ()):
        sub += _subjects(f"{where}.subscribe", value)
    for value in (*spec.get("read", ()), *spec.get("write", ())):
        pub += read_api(_stream_name(f"{where}.read", value))
    for value in spec.get("write", ()):
        if not value.startswith("bucket:"):
            raise PermissionsError(f"{where}.write: only buckets are written directly ({value!r})")
        pub.append(f"$KV.{table.bucket(value.partition(':')[2]).name}.>")
    for value in spec.get("consume", ()):
        source, _, durable = value.partition("/")
        stream = _stream_name(f"{where}.consume", source)
        if not durable:
            raise PermissionsError(f"{where}.consume: {value!r} needs stream:<key>/<durable>")
        pub += [
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",
        ]
    manage = bool(spec.get("manage", False))
    if manage and ">" not in pub:
        pub += manage_api()
    if ">" not in pub:
        pub.append("$JS.API.STREAM.INFO.*")  # start-up checks that the streams exist
    return Role(
        name,
        spec.get("doc", ""),
        tuple(dict.fromkeys(pub)),
        tuple(dict.fromkeys(sub)),
        bool(spec.get("responses", False)),
        manage,
    )


@cache
def roles() -> dict[str, Role]:
    """Every role by name, resolved and checked (a bad entry fails at first use, in every test)."""
    return {name: _role(name, spec) for name, spec in load("permissions.toml").get("roles", {}).items()}


def role(name: str) -> Role:
    try:
        return roles()[name]
    except KeyError:
        raise PermissionsError(f"no NATS role {name!r} in contracts/permissions.toml") from None
