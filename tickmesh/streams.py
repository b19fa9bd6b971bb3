"""JetStream streams and KV buckets: created or updated idempotently at start-up.

What exists, which subjects each stream stores and its retention defaults are declared in
``contracts/streams.toml`` (read by :mod:`tickmesh.contracts.streams`); this module applies
that table to a NATS server. Every process that relies on persistence calls :func:`ensure` when
it starts (services before publishing, edges before recovering), so a fresh NATS is configured
by whoever comes first and a changed retention setting is applied on the next start.

Replicas: every stream and bucket gets ``TICKMESH_STREAM_REPLICAS`` replicas. Changing it for an
existing stream updates the stream (JetStream moves the data to the new peer set); a server
that cannot do it (a single server asked for 3 replicas) makes :func:`ensure` raise
:class:`StreamSetupError` naming the stream and the server's reason. Nothing is deleted.

Who may change them: with NATS permissions (``contracts/permissions.toml``) only the admin
identity manages streams (``tickmesh up`` does it before starting anything, the Helm chart's
setup job in a cluster). Components then run with ``TICKMESH_STREAMS_MANAGE=off``: :func:`ensure`
only waits until every stream and bucket exists, and logs a warning when one differs from this
process's settings (the admin's settings win).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DiscardPolicy, KeyValueConfig, RePublish, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BadRequestError, NotFoundError

from tickmesh.config import setting
from tickmesh.contracts import streams as table

log = logging.getLogger(__name__)

# The names code refers to, from the table (kept as module constants: they are used widely).
TICKS = table.stream("ticks").name
USER_STATE = table.stream("user_state").name
USER_EVENTS = table.stream("user_events").name
ANNOUNCEMENTS = table.stream("announcements").name
NEWS = table.stream("news").name
REVOCATIONS = table.stream("revocations").name

HOLDINGS_BUCKET = table.bucket("holdings").name
ALERTS_BUCKET = table.bucket("alerts").name
ORDERS_BUCKET = table.bucket("orders").name
COMMAND_REPLIES_BUCKET = table.bucket("command_replies").name
TICKETS_BUCKET = table.bucket("tickets").name

MAX_REPLICAS = 5  # JetStream's own limit


class StreamSetupError(RuntimeError):
    """A stream or bucket could not be brought to the configured settings."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"JetStream {name}: {reason}")
        self.name = name
        self.reason = reason


def _validate(self: Any) -> None:
    if not 1 <= self.replicas <= MAX_REPLICAS:
        from tickmesh.config import ConfigError

        raise ConfigError("TICKMESH_STREAM_REPLICAS", str(self.replicas), f"must be 1 to {MAX_REPLICAS}")


def _values(self: Any) -> dict[str, int | float]:
    """Retention key -> value, as :meth:`contracts.streams.Stream.limit_values` takes it."""
    return {k: getattr(self, k) for k in table.retention_settings()}


# One field per [retention] entry of streams.toml (so `tickmesh settings streams` lists each,
# and a stream added to the table needs no code here), plus the replica count.
Retention = dataclasses.make_dataclass(
    "Retention",
    [(r.key, r.type, setting(r.env, r.default, r.doc)) for r in table.retention_settings().values()]
    + [
        (
            "replicas",
            int,
            setting(
                "TICKMESH_STREAM_REPLICAS",
                1,
                "Replicas of every JetStream stream and KV bucket (1 to 5; above 1 needs a NATS cluster)",
            ),
        ),
        (
            "manage",
            bool,
            setting(
                "TICKMESH_STREAMS_MANAGE",
                True,
                "Create and update streams and buckets (off: only wait until the admin has made them)",
            ),
        ),
        (
            "wait",
            float,
            setting(
                "TICKMESH_STREAMS_WAIT_S",
                60.0,
                "Seconds a process that does not manage streams waits for them to exist",
            ),
        ),
    ],
    frozen=True,
    namespace={
        "validate": _validate,
        "values": _values,
        "__doc__": "Retention limits and replicas of the streams and buckets (settings from the environment).",
    },
)
Retention.__module__ = __name__
StreamSettings = Retention


def stream_configs(r: Any) -> list[StreamConfig]:
    values = r.values()
    out = []
    for st in table.streams().values():
        limits: dict[str, Any] = dict(st.limit_values(values))  # max_age, max_msgs, max_msgs_per_subject
        # JetStream refuses a duplicate window longer than the stream's max age.
        window = min(r.duplicate_window, limits["max_age"]) if limits.get("max_age") else r.duplicate_window
        out.append(
            StreamConfig(
                name=st.name,
                description=st.doc or None,
                subjects=list(st.subjects),
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
                discard=DiscardPolicy.OLD,
                allow_direct=True,
                duplicate_window=window,
                num_replicas=r.replicas,
                **limits,
            )
        )
    return out


def kv_configs(r: Any) -> list[KeyValueConfig]:
    values = r.values()
    return [
        KeyValueConfig(
            bucket=b.name,
            description=b.doc or None,
            history=b.history,
            ttl=b.ttl_value(values) or None,
            storage=StorageType.FILE,
            replicas=r.replicas,
            limit_marker_ttl=b.marker_ttl,
            republish=RePublish(src=b.republish_src(), dest=b.republish) if b.republish else None,
        )
        for b in table.buckets().values()
    ]


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
        return
    except BadRequestError:
        pass  # exists with other settings (or a concurrent creator won): bring it to ours
    except APIError as exc:
        raise await _explain(js, config.name, config.num_replicas, exc) from None
    try:
        await js.update_stream(config)
    except APIError as exc:
        raise await _explain(js, config.name, config.num_replicas, exc) from None


async def _explain(js: JetStreamContext, name: str | None, replicas: int | None, exc: APIError) -> StreamSetupError:
    name = name or "?"
    try:
        current = (await js.stream_info(name)).config.num_replicas
    except Exception:  # noqa: BLE001 - the original error is what matters
        current = None
    if current is not None and replicas is not None and current != replicas:
        return StreamSetupError(
            name,
            f"cannot change replicas from {current} to {replicas} "
            f"(TICKMESH_STREAM_REPLICAS): {exc.description or exc}; "
            "replicas above 1 need a JetStream cluster with that many servers",
        )
    if replicas is not None and replicas > 1:
        return StreamSetupError(
            name,
            f"cannot create it with {replicas} replicas (TICKMESH_STREAM_REPLICAS): "
            f"{exc.description or exc}; replicas above 1 need a JetStream cluster "
            "with that many servers",
        )
    return StreamSetupError(name, f"cannot apply the configuration: {exc.description or exc}")


async def _ensure_bucket(js: JetStreamContext, kv: KeyValueConfig) -> None:
    stream = f"KV_{kv.bucket}"
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        try:
            await js.create_key_value(kv)
            return
        except BadRequestError:
            info = await js.stream_info(stream)  # a concurrent creator won
        except APIError as exc:
            raise await _explain(js, stream, kv.replicas, exc) from None
    # The bucket exists: apply a changed TTL or replica count to its stream.
    cfg = info.config
    ttl = kv.ttl or 0.0
    if cfg.num_replicas == kv.replicas and abs((cfg.max_age or 0.0) - ttl) < 1e-6:
        return
    cfg = dataclasses.replace(cfg, num_replicas=kv.replicas, max_age=ttl)
    try:
        await js.update_stream(cfg)
    except APIError as exc:
        raise await _explain(js, stream, kv.replicas, exc) from None


async def ensure(js: JetStreamContext, retention: Any = None) -> None:
    """Create every stream and bucket, or update it to the configured limits and replicas. Safe
    to run concurrently from several processes. Raises :class:`StreamSetupError` when NATS
    refuses a change (the message says which stream and why)."""
    from tickmesh import config as cfg

    r = retention if retention is not None else cfg.load(Retention)
    if not r.manage:
        await _wait_for_all(js, r)
        return
    try:
        for config in stream_configs(r):
            await _ensure_stream(js, config)
        for kv in kv_configs(r):
            await _ensure_bucket(js, kv)
    except NatsTimeoutError:
        err = str(getattr(getattr(js, "_nc", None), "last_error", "") or "")
        if "permissions violation" in err.lower():
            raise StreamSetupError(
                "streams",
                "this NATS identity may not create or update streams ("
                f"{err}); run it with TICKMESH_STREAMS_MANAGE=off and let the admin "
                "identity manage them",
            ) from None
        raise
    log.debug("jetstream streams and buckets ensured", extra={"event": "streams.ensured"})


async def _wait_for_all(js: JetStreamContext, r: Any) -> None:
    """Without the right to manage streams: wait until each exists; warn where it differs."""
    import asyncio

    from tickmesh.backoff import Backoff

    loop = asyncio.get_running_loop()
    deadline = loop.time() + r.wait
    wanted: list[tuple[str, list[str] | None, int | None]] = [
        (c.name or "", c.subjects, c.num_replicas) for c in stream_configs(r)
    ]
    wanted += [(f"KV_{kv.bucket}", None, kv.replicas) for kv in kv_configs(r)]
    for name, subjects, replicas in wanted:
        backoff = Backoff(base=0.1, cap=2.0)
        while True:
            try:
                info = await js.stream_info(name)
                break
            except NotFoundError:
                now = loop.time()
                if now >= deadline:
                    raise StreamSetupError(
                        name,
                        f"does not exist after {r.wait:g}s, and this process may not "
                        "create it (TICKMESH_STREAMS_MANAGE=off): the admin identity "
                        "creates streams (tickmesh up, or the chart's setup job)",
                    ) from None
                await asyncio.sleep(min(backoff.next_delay(now), deadline - now))
        if (
            subjects is not None and list(info.config.subjects or []) != list(subjects)
        ) or info.config.num_replicas != replicas:
            log.warning(
                "JetStream %s differs from this process's settings (subjects or replicas); the admin's "
                "configuration applies",
                name,
                extra={"event": "streams.differs", "stream": name},
            )
