"""A shared watch-list and the rules for changing it: pure functions, no I/O.

The stored document is exactly what subscribers of ``watchlist:<id>`` receive (the ``watchlist``
schema). Every change returns a new :class:`Watchlist` one version up, or raises
:class:`WatchlistError` and changes nothing.

Concurrency (PROTOCOL.md, "Which concurrent edits merge"): each item remembers the version at
which it was placed (added or moved) and at which its note last changed. An op of an edit made on
version ``base`` conflicts only with a change to *its own symbol* committed after ``base``, so the
check needs no history and edits of different symbols always merge. Placement is relative
(``before``), so reordering different symbols commutes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from tickmesh.contracts.channels import WATCHLIST_ID_RE
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import schema

MAX_SYMBOLS = 200
MAX_SHARES = 50
MAX_OWNED = 50
MAX_NAME = 64

OWNER, EDITOR, VIEWER = "owner", "editor", "viewer"
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
NOT_FOUND = "no such watch-list, or it is not shared with you"


class WatchlistError(Exception):
    """A refused change: ``code`` from codes.toml; ``data`` for the client (610: the list now)."""

    def __init__(self, code: int, reason: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.code = int(code)
        self.reason = reason
        self.data = data


def new_id() -> str:
    """22 random letters and digits: about 131 bits, so an id cannot be guessed."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def valid_id(value: object) -> bool:
    return isinstance(value, str) and WATCHLIST_ID_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Watchlist:
    id: str
    name: str
    owner: str
    version: int
    items: tuple[dict[str, Any], ...]
    members: dict[str, str] = field(default_factory=dict)  # user -> editor/viewer (owner apart)
    change: dict[str, Any] = field(default_factory=dict)
    created_ts: int = 0

    # -- the stored and published document -------------------------------------------------

    def doc(self) -> dict[str, Any]:
        members = [{"user": self.owner, "role": OWNER}]
        members += [{"user": u, "role": r} for u, r in sorted(self.members.items())]
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "version": self.version,
            "items": list(self.items),
            "members": members,
            "change": self.change,
            "created_ts": self.created_ts,
        }

    @classmethod
    def from_doc(cls, doc: Any) -> Watchlist:
        """Parse a stored document; raises ``ContractError`` (a ValueError) when it is not one."""
        d = schema("watchlist").validate(doc)
        members = {m["user"]: m["role"] for m in d["members"] if m["role"] != OWNER}
        return cls(
            d["id"], d["name"], d["owner"], d["version"], tuple(d["items"]), members, d["change"], d["created_ts"]
        )

    def role_of(self, user: str) -> str | None:
        return OWNER if user == self.owner else self.members.get(user)

    @property
    def symbols(self) -> list[str]:
        return [item["symbol"] for item in self.items]

    def summary(self, user: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "role": self.role_of(user),
            "version": self.version,
            "size": len(self.items),
        }


def _require(wl: Watchlist | None, user: str, *roles: str) -> Watchlist:
    """The list if ``user`` holds one of ``roles``; a non-member learns nothing (301 either way)."""
    role = wl.role_of(user) if wl is not None else None
    if wl is None or role is None:
        raise WatchlistError(ErrorCode.FORBIDDEN, NOT_FOUND)
    if role not in roles:
        raise WatchlistError(ErrorCode.FORBIDDEN, f"a {role} may not do this; it needs: {', '.join(roles)}")
    return wl


def check_read(wl: Watchlist | None, user: str) -> Watchlist:
    return _require(wl, user, OWNER, EDITOR, VIEWER)


def create(
    *,
    user: str,
    name: str,
    symbols: Iterable[str],
    now_us: int,
    tradable: Callable[[str], bool],
    owned: int,
    wl_id: str | None = None,
) -> Watchlist:
    name = name.strip()
    if not name:
        raise WatchlistError(ErrorCode.INVALID_FIELD, "watchlist_create.name: must not be blank")
    if owned >= MAX_OWNED:
        raise WatchlistError(ErrorCode.WATCHLIST_LIMIT, f"at most {MAX_OWNED} watch-lists per user")
    ops, items, seen = [], [], set()
    for symbol in symbols:
        if not tradable(symbol):
            raise WatchlistError(ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol}")
        if symbol in seen:
            continue
        seen.add(symbol)
        items.append({"symbol": symbol, "placed": 1, "noted": 1})
        ops.append({"op": "add", "symbol": symbol})
    change = {"version": 1, "user": user, "ts": now_us, "action": "create", "ops": ops}
    return Watchlist(wl_id or new_id(), name[:MAX_NAME], user, 1, tuple(items), {}, change, now_us)


def share(wl: Watchlist | None, *, user: str, target: str, role: str, now_us: int) -> Watchlist:
    wl = _require(wl, user, OWNER)
    if target == wl.owner:
        raise WatchlistError(ErrorCode.INVALID_FIELD, "watchlist_share.user: the owner already has the list")
    if wl.members.get(target) == role:
        return wl
    if target not in wl.members and len(wl.members) >= MAX_SHARES:
        raise WatchlistError(ErrorCode.WATCHLIST_LIMIT, f"a watch-list is shared with at most {MAX_SHARES} users")
    v = wl.version + 1
    change = {"version": v, "user": user, "ts": now_us, "action": "share", "target": target, "role": role}
    return replace(wl, version=v, members={**wl.members, target: role}, change=change)


def unshare(wl: Watchlist | None, *, user: str, target: str, now_us: int) -> Watchlist:
    wl = _require(wl, user, OWNER, EDITOR, VIEWER)
    if user != wl.owner and user != target:
        raise WatchlistError(ErrorCode.FORBIDDEN, "only the owner may take another member's access away")
    if target == wl.owner:
        raise WatchlistError(ErrorCode.INVALID_FIELD, "watchlist_unshare.user: the owner cannot leave; delete the list")
    if target not in wl.members:
        return wl
    v = wl.version + 1
    members = {u: r for u, r in wl.members.items() if u != target}
    change = {"version": v, "user": user, "ts": now_us, "action": "unshare", "target": target}
    return replace(wl, version=v, members=members, change=change)


def _conflict(wl: Watchlist, reason: str) -> WatchlistError:
    return WatchlistError(ErrorCode.EDIT_CONFLICT, reason, {"watchlist": wl.doc()})


def edit(
    wl: Watchlist | None,
    *,
    user: str,
    base: int,
    ops: list[dict[str, Any]],
    now_us: int,
    tradable: Callable[[str], bool],
) -> tuple[Watchlist, bool]:
    """Apply ``ops`` (made on version ``base``) all together, or raise. Returns the new list and
    whether changes since ``base`` were merged. Ops that are already true (adding a listed symbol,
    removing an absent one) are dropped; when nothing is left the list comes back unchanged."""
    wl = _require(wl, user, OWNER, EDITOR)
    if not ops:
        raise WatchlistError(ErrorCode.INVALID_FIELD, "watchlist_edit.ops: give 1 to 50 operations")
    if base > wl.version or base < 1:
        raise _conflict(wl, f"base version {base} is not one this list had (it is at {wl.version})")
    v = wl.version + 1
    order = [item["symbol"] for item in wl.items]
    items = {item["symbol"]: dict(item) for item in wl.items}
    applied: list[dict[str, Any]] = []

    def place(symbol: str, before: str | None) -> None:
        if before is not None and before != symbol and before in items:
            order.insert(order.index(before), symbol)
        else:
            order.append(symbol)

    def concurrent(version: int) -> bool:  # committed by someone else after base
        return base < version < v

    for i, op in enumerate(ops):
        kind, symbol, before, text = op["op"], op["symbol"], op.get("before"), op.get("text")
        if text is not None and kind != "note":
            raise WatchlistError(ErrorCode.INVALID_FIELD, f"watchlist_edit.ops: item {i}: text is only for note")
        if before is not None and kind not in ("add", "move"):
            raise WatchlistError(
                ErrorCode.INVALID_FIELD, f"watchlist_edit.ops: item {i}: before is only for add and move"
            )
        item = items.get(symbol)
        if kind == "add":
            if not tradable(symbol):
                raise WatchlistError(ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol}")
            if item is not None:
                continue
            if len(order) >= MAX_SYMBOLS:
                raise WatchlistError(ErrorCode.WATCHLIST_LIMIT, f"a watch-list holds at most {MAX_SYMBOLS} symbols")
            items[symbol] = {"symbol": symbol, "placed": v, "noted": v}
            place(symbol, before)
        elif kind == "remove":
            if item is None:
                continue
            del items[symbol]
            order.remove(symbol)
        elif item is None:
            raise _conflict(wl, f"{symbol} is no longer in the list")
        elif kind == "move":
            if before == symbol:
                continue
            if concurrent(item["placed"]):
                raise _conflict(wl, f"{symbol} was moved by someone else since version {base}")
            order.remove(symbol)
            place(symbol, before)
            item["placed"] = v
        else:  # note
            if concurrent(item.get("noted", 0)):
                raise _conflict(wl, f"the note of {symbol} was changed by someone else since version {base}")
            if text:
                item["note"] = text
            else:
                item.pop("note", None)
            item["noted"] = v
        applied.append({k: val for k, val in op.items() if val is not None})
    if not applied:
        return wl, False
    merged = base < wl.version
    change = {"version": v, "user": user, "ts": now_us, "action": "edit", "ops": applied, "merged": merged}
    return replace(wl, version=v, items=tuple(items[s] for s in order), change=change), merged
