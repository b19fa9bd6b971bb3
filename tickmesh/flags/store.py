"""Reading and changing the ``tm_flags`` bucket, and recording every change on the audit stream.

:class:`FlagStore` is the one write path: the admin command (``services/flags``), the CLI and the
Python API all call :meth:`FlagStore.change`. A change is a compare-and-set on the key's
revision, so two admins changing the same flag at once never lose one another's change: the
loser retries against the new definition (or gets 642 when it named the revision it expected).

Each stored change is then published on ``tm.flags.audit`` (stream ``TM_FLAG_AUDIT``) with who
made it and the definition before and after. The definition itself also carries
``updated_by``/``updated_at`` and the bucket keeps the last 16 definitions per flag
(contracts/streams.toml), so even a change whose audit publish failed (logged) is attributable.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import orjson
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError, NotFoundError

from tickmesh import streams
from tickmesh.contracts import streams as table
from tickmesh.contracts.channels import FLAG_AUDIT_SUBJECT
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.messages import encode

from .changes import apply_change, validate_change
from .model import MAX_FLAGS, Flag, FlagError, check_name, invalid

log = logging.getLogger(__name__)

FLAGS_BUCKET = table.bucket("flags").name
AUDIT_STREAM = table.stream("flag_audit").name
_RETRIES = 16  # compare-and-set attempts when another change wins the race (jittered)
_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed expected-last-sequence check
_AUDIT_SCAN = 10_000  # audit records looked at, at most, to find one flag's last changes


async def ensure(js: Any) -> Any:
    """The ``tm_flags`` bucket, creating every stream and bucket first (contracts/streams.toml,
    the audit stream included) when it does not exist yet."""
    try:
        return await js.key_value(FLAGS_BUCKET)
    except NotFoundError:
        await streams.ensure(js)
        return await js.key_value(FLAGS_BUCKET)


def now_us() -> int:
    return time.time_ns() // 1000


class FlagStore:
    def __init__(self, js: Any, kv: Any) -> None:
        self.js = js
        self.kv = kv

    @classmethod
    async def open(cls, nc: Any) -> FlagStore:
        js = nc.jetstream()
        await streams.ensure(js)  # the audit stream too, at its configured retention
        return cls(js, await js.key_value(FLAGS_BUCKET))

    async def get(self, name: str) -> tuple[Flag | None, int]:
        """The flag's definition and revision (``None, 0`` when absent or deleted)."""
        check_name(name)
        try:
            entry = await self.kv.get(name)
        except KeyNotFoundError:
            return None, 0
        return Flag.decode(name, entry.value), entry.revision

    async def names(self) -> list[str]:
        try:
            return sorted(await self.kv.keys())
        except NoKeysError:
            return []

    async def list(self) -> tuple[list[Flag], int]:
        """Every readable definition and the bucket's last revision."""
        flags = []
        for name in await self.names():
            try:
                flag, _ = await self.get(name)
            except FlagError as exc:
                log.warning("flag %s is unreadable: %s", name, exc.reason, extra={"event": "flags.bad_entry"})
                continue
            if flag is not None:
                flags.append(flag)
        status = await self.kv.status()
        return flags, int(status.stream_info.state.last_seq)

    async def change(self, raw: Mapping[str, Any], *, by: str, via: str) -> tuple[Flag | None, int]:
        """Validate and apply one change; return the new definition (``None`` if deleted) and
        its revision. Raises :class:`FlagError` (102, 640-642) and changes nothing then."""
        change = validate_change(raw)
        name = change["name"]
        expected = change.get("revision")
        for attempt in range(_RETRIES):
            if attempt:
                await asyncio.sleep(random.uniform(0, 0.01 * attempt))
            current, revision = await self.get(name)
            if expected is not None and revision != expected:
                raise FlagError(ErrorCode.FLAG_CONFLICT, f"flag {name} is at revision {revision}, not {expected}")
            new = apply_change(current, change, by=by, now_us=now_us())
            if current is None and len(await self.names()) >= MAX_FLAGS:
                raise invalid(f"at most {MAX_FLAGS} flags")
            try:
                if new is None:
                    stored = await self._delete(name, revision)
                elif current is None:
                    stored = await self.kv.create(name, new.encode())
                else:
                    stored = await self.kv.update(name, new.encode(), last=revision)
            except KeyWrongLastSequenceError:
                if expected is not None:
                    raise FlagError(
                        ErrorCode.FLAG_CONFLICT, f"flag {name} changed meanwhile; reload and retry"
                    ) from None
                continue  # another change won: apply ours to the new definition
            await self._audit(name, change["action"], by, via, current, new, stored)
            return new, stored
        raise FlagError(ErrorCode.FLAG_CONFLICT, f"flag {name} keeps changing; retry")

    async def _delete(self, name: str, revision: int) -> int:
        """A delete marker, only if the key is still at ``revision``; returns its revision (the
        client library's delete does not)."""
        headers = {"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(revision)}
        try:
            ack = await self.js.publish(f"$KV.{FLAGS_BUCKET}.{name}", b"", headers=headers)
        except BadRequestError as exc:
            if getattr(exc, "err_code", None) == _WRONG_LAST_SEQUENCE:
                raise KeyWrongLastSequenceError(description=str(exc)) from None
            raise
        return int(ack.seq)

    async def _audit(
        self, name: str, action: str, by: str, via: str, before: Flag | None, after: Flag | None, revision: int
    ) -> None:
        record: dict[str, Any] = {
            "flag": name,
            "action": action,
            "by": by[:128],
            "via": via,
            "revision": revision,
            "ts": now_us(),
        }
        if before is not None:
            record["before"] = before.to_json()
        if after is not None:
            record["after"] = after.to_json()
        payload = encode("flag_audit", record)
        for attempt in range(3):
            try:
                await self.js.publish(FLAG_AUDIT_SUBJECT, payload, headers={"Nats-Msg-Id": f"{name}:{revision}"})
                break
            except Exception as exc:  # the change is stored (and stamped with `by`); say so loudly
                if attempt == 2:
                    log.error(
                        "flag change %s@%d not audited: %s",
                        name,
                        revision,
                        exc,
                        extra={"event": "flags.audit_failed", "flag": name, "by": by},
                    )
                else:
                    await asyncio.sleep(0.2 * (attempt + 1))
        log.info(
            "flag %s %s by %s via %s",
            name,
            action,
            by,
            via,
            extra={
                "event": "flags.changed",
                "flag": name,
                "action": action,
                "by": by,
                "via": via,
                "revision": revision,
            },
        )

    async def audit(self, name: str | None = None, limit: int = 50) -> builtins.list[dict[str, Any]]:
        """The last ``limit`` audit records (of ``name``, or of every flag), oldest first."""
        try:
            info = await self.js.stream_info(AUDIT_STREAM)
        except NotFoundError:
            return []
        last, first = info.state.last_seq, info.state.first_seq
        out: list[dict[str, Any]] = []
        seq = last
        stop = max(first, last - _AUDIT_SCAN + 1)
        while seq >= stop and seq > 0 and len(out) < limit:
            try:
                msg = await self.js.get_msg(AUDIT_STREAM, seq=seq)
            except NotFoundError:
                seq -= 1
                continue
            seq -= 1
            record = orjson.loads(msg.data)
            if name is None or record.get("flag") == name:
                out.append(record)
        out.reverse()
        return out
