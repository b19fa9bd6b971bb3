"""Answering "did Alice's browser receive fill X, and when?" from JetStream.

Two stored subjects answer it: the user's ``trades`` (``TM_USER_EVENTS``: which executions the
order had, at which positions) and the user's audit records (``TM_TRADE_AUDIT``: when each
position reached which connection, and when the client acknowledged it). Records carry the
execution's ids too, so an order is still found after its trades have aged out of
``TM_USER_EVENTS``. Used by the ``audit.trades`` command (served by the edges) and by
``tickmesh audit trades``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from tickmesh import streams
from tickmesh.contracts.channels import Kind, trade_audit_subject, user_subject
from tickmesh.contracts.codes import ErrorCode
from tickmesh.contracts.commands import CommandRequest

from .audit import STREAM as AUDIT_STREAM

log = logging.getLogger(__name__)

MAX_SCAN = 200_000  # stored messages read per subject at most (the answer then says truncated)
MAX_DELIVERIES = 1000  # records returned at most
_BATCH = 512


async def _scan(js: Any, stream: str, subject: str) -> tuple[list[tuple[int, Any]], bool]:
    """Every stored message of ``subject`` as ``(stream seq, parsed JSON)``, oldest first, and
    whether the scan stopped at :data:`MAX_SCAN`. Unreadable payloads are skipped."""
    try:
        probe = await js.get_msg(stream, seq=1, subject=subject, next=True, direct=True)
    except NotFoundError:
        return [], False
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=probe.seq,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
        max_ack_pending=-1,
    )
    psub = await js.pull_subscribe(subject, stream=stream, config=config)
    out: list[tuple[int, Any]] = []
    try:
        while len(out) < MAX_SCAN:
            try:
                msgs = await psub.fetch(_BATCH, timeout=2.0)
            except TimeoutError:
                break
            for m in msgs:
                try:
                    out.append((m.metadata.sequence.stream, orjson.loads(m.data)))
                except orjson.JSONDecodeError:
                    pass
            if msgs and msgs[-1].metadata.num_pending == 0:
                return out, False
        return out, len(out) >= MAX_SCAN
    finally:
        try:
            await psub.unsubscribe()
        except Exception:  # the consumer expires by itself (inactive_threshold)
            pass


def _matches(obj: Any, order: str) -> bool:
    return isinstance(obj, dict) and order in (obj.get("order_id"), obj.get("client_order_id"))


async def trade_deliveries(js: Any, user: str, order: str) -> dict[str, Any]:
    """What the stored trail says about ``order`` (an order id or client order id) of ``user``:
    its executions and every delivery and acknowledgement of them, oldest first."""
    trades, cut_trades = await _scan(js, streams.USER_EVENTS, user_subject(Kind.TRADES, user))
    executions = [
        {"seq": seq, "exec_id": t.get("exec_id"), "status": t.get("status"), "ts": t.get("ts")}
        for seq, t in trades
        if _matches(t, order)
    ]
    seqs = {e["seq"] for e in executions}
    batches, cut_audit = await _scan(js, AUDIT_STREAM, trade_audit_subject(user))
    found: list[dict[str, Any]] = []
    for _, batch in batches:
        if not isinstance(batch, dict) or not isinstance(batch.get("records"), list):
            continue
        for rec in batch["records"]:
            if isinstance(rec, dict) and (rec.get("seq") in seqs or _matches(rec, order)):
                found.append({**rec, "edge": batch.get("edge")})
    found.sort(key=lambda r: r.get("at") or 0)
    for rec in found:  # positions known only from the records (the trades aged out)
        if rec.get("seq") not in seqs and rec.get("event") == "delivered":
            seqs.add(rec["seq"])
            executions.append(
                {"seq": rec["seq"], "exec_id": rec.get("exec_id"), "status": rec.get("status"), "ts": None}
            )
    executions.sort(key=lambda e: e["seq"])
    for e in executions:
        mine = [r for r in found if r.get("seq") == e["seq"]]
        e["delivered_at"] = min((r["at"] for r in mine if r.get("event") == "delivered"), default=None)
        e["acked_at"] = min((r["at"] for r in mine if r.get("event") == "acked"), default=None)
        e["connections"] = len({r.get("conn_id") for r in mine if r.get("event") == "delivered"})
    return {
        "user": user,
        "order": order,
        "executions": executions,
        "deliveries": found[:MAX_DELIVERIES],
        "truncated": cut_trades or cut_audit or len(found) > MAX_DELIVERIES,
    }


async def serve_queries(nc: Any) -> list:
    """Answer ``audit.trades`` (commands.toml: service ``edge``) from this edge."""
    from tickmesh.services.runner import CommandError, serve_commands

    js = nc.jetstream()

    async def audit_trades(req: CommandRequest) -> dict[str, Any]:
        if not {"support", "admin"} & set(req.roles):  # the forwarding edge checked; checked again
            raise CommandError(ErrorCode.FORBIDDEN, "audit.trades needs one of the roles: admin, support")
        owner, order = req.data["user"], req.data["order"]
        log.info(
            "privileged read of another user's trade deliveries",
            extra={"event": "audit.trade_query", "user": req.user, "owner": owner, "order": order},
        )
        return await trade_deliveries(js, owner, order)

    return await serve_commands(nc, "edge", {"audit.trades": audit_trades})
