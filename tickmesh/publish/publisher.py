"""The publisher: one object per process that puts tickmesh messages on NATS by the contracts.

What every publish does, in order:

1. **Validate** the message against its schema in ``contracts/messages.toml`` (the channel
   names the schema). A message that breaks it raises :class:`InvalidMessage` naming the field;
   nothing is sent.
2. **Address** it: the subject is built by :mod:`tickmesh.contracts.channels` from the channel
   (``trades:alice`` is ``tm.user.alice.trades``); a per-user message's ``user`` field must be
   the channel's user (it is filled in when absent).
3. **Send** it by the channel's class:

   * *State channels* (``prices``, ``portfolio``: the latest value wins): a core NATS publish
     carrying ``Tm-Seq``, a version that strictly increases per subject. Not acknowledged:
     the next value supersedes a lost one. While NATS is unreachable the client's outbound
     buffer holds them (``pending_size`` bytes); when that is full :class:`BufferFull` is
     raised for that message.
   * *Event channels* (trades, notifications, alerts, announcements, news: every message
     counts): a JetStream publish with ``Nats-Msg-Id`` (the event's id) and the expected stream,
     awaited until acknowledged, retried, and held in a bounded buffer while NATS is
     unreachable (:mod:`.delivery`). Returns the :class:`Ack`.

   Either way the current trace context is injected (:mod:`.context`) and the message counted
   in ``tickmesh_messages_total{direction="out"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from nats.errors import ConnectionClosedError, ConnectionReconnectingError, OutboundBufferLimitError

from tickmesh import metrics, tracing
from tickmesh.contracts import messages
from tickmesh.contracts import streams as stream_table
from tickmesh.contracts.channels import Channel, ChannelError, Kind, parse_channel, subject_for, tick_subject
from tickmesh.contracts.messages import SEQ_HEADER
from tickmesh.natsconn import Credentials
from tickmesh.natsconn import connect as nats_connect

from .context import Versions, _current, new_id, now_us, trace_headers
from .delivery import Ack, Delivery
from .errors import BufferFull, InvalidMessage, PublisherClosed, UnknownChannel

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
EXPECTED_STREAM_HEADER = "Nats-Expected-Stream"
_ID_PREFIX = {"notification": "n", "alert": "a", "announcement": "ann", "news": "news", "execution": "x"}


class Publisher:
    """Publishes tickmesh messages; see the module docstring for what each call guarantees.

    Build it with :meth:`connect` (it then owns the connection: :meth:`close` drains it) or
    around a connection you already have (``Publisher(nc)``; :meth:`close` leaves it open).

    ``max_pending`` / ``max_pending_bytes`` bound the event messages waiting for NATS at once;
    ``ack_timeout`` is one attempt's wait for JetStream's acknowledgement; ``deliver_timeout``
    the whole time an event publish may take (keep it well inside the streams' duplicate window,
    ``TM_DUPLICATE_WINDOW_S``, default 120 s, so that publishing again after a
    :class:`PublishTimeout` is stored once).
    """

    def __init__(
        self,
        nc: Any,
        *,
        max_pending: int = 10_000,
        max_pending_bytes: int = 64 << 20,
        ack_timeout: float = 2.0,
        deliver_timeout: float = 30.0,
        owns_connection: bool = False,
    ) -> None:
        self.nc = nc
        self.delivery = Delivery(
            nc,
            max_pending=max_pending,
            max_pending_bytes=max_pending_bytes,
            ack_timeout=ack_timeout,
            deliver_timeout=deliver_timeout,
        )
        self.owns_connection = owns_connection
        self.published = 0
        self._versions = Versions()
        self._tick_subjects: dict[str, str] = {}
        self._tick_schema = messages.schema("tick")

    @classmethod
    async def connect(
        cls,
        nats_url: str,
        credentials: Credentials | str | Mapping[str, str] | None = None,
        *,
        name: str = "tickmesh-publisher",
        connect_timeout: float | None = 30.0,
        **limits: Any,
    ) -> Publisher:
        """Connect to ``nats_url`` (comma-separated servers allowed) as the NATS identity in
        ``credentials`` (a :class:`Credentials`, a ``.creds`` file path, a mapping, or ``None``).

        The first connection is retried for ``connect_timeout`` seconds (``None``: forever);
        after that the client reconnects by itself, forever, and event publishes wait for it.
        ``limits`` are the keyword arguments of :class:`Publisher`.
        """
        nc = await nats_connect(
            nats_url, name=name, first_attempt_timeout=connect_timeout, credentials=Credentials.of(credentials)
        )
        return cls(nc, owns_connection=True, **limits)

    async def close(self) -> None:
        """Drain and close the connection if this publisher opened it (every message handed to
        NATS is flushed first). While NATS is unreachable there is nothing to flush to: the
        connection is closed, and event publishes still waiting raise :class:`PublisherClosed`."""
        if self.owns_connection and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except (ConnectionReconnectingError, ConnectionClosedError):
                await self.nc.close()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # --- any channel ---------------------------------------------------------------------------

    async def publish(self, channel: Channel | str, message: Mapping[str, Any], *, id: str | None = None) -> Ack | None:
        """Publish ``message`` on ``channel`` (a :class:`Channel` or a name such as
        ``"notifications:alice"``, ``"prices:AAPL"``, ``"announcements"``).

        Event channels: ``id`` (default: the message's id field, else a fresh one, written into
        the message) is the ``Nats-Msg-Id``; returns the :class:`Ack` once stored. State
        channels: returns ``None`` once handed to NATS.
        """
        ch = self._channel(channel)
        schema = messages.schema(messages.channel_schemas()[ch.kind])
        msg = dict(message)
        if ch.kind.per_user:
            self._own_user(schema, ch, msg)
        if "ts" not in msg and schema.field("ts") is not None:
            msg["ts"] = now_us()
        if ch.kind is Kind.PRICES:
            if msg.setdefault("symbol", ch.arg) != ch.arg:
                raise InvalidMessage(schema.name, "symbol", f"must be the channel's symbol ({ch.arg})")
            msg.setdefault("ingest_ts", now_us())
            await self.publish_tick(msg)
            return None
        if ch.kind.channel_class == "state":
            await self._publish_state(subject_for(ch), self._encode(schema, msg), now_us(), None)
            return None
        if schema.id_field is not None and msg.get(schema.id_field) is None:
            msg[schema.id_field] = id or new_id(_ID_PREFIX.get(schema.name, "e"))
        event_id = id or (str(msg[schema.id_field]) if schema.id_field else new_id("e"))
        return await self._publish_event(ch, self._encode(schema, msg), event_id)

    # --- state channels ------------------------------------------------------------------------

    async def tick(
        self,
        symbol: str,
        last: str,
        *,
        ts: int,
        provider: str,
        bid: str | None = None,
        ask: str | None = None,
        size: str | None = None,
        ingest_ts: int | None = None,
        stale: bool | None = None,
    ) -> None:
        """A price on ``prices:<symbol>``. Decimals are strings (``"187.20"``) or ``Decimal``;
        ``ts`` is the provider's time in µs since the epoch; ``ingest_ts`` defaults to now."""
        msg: dict[str, Any] = {
            "symbol": symbol,
            "last": last,
            "ts": ts,
            "provider": provider,
            "ingest_ts": now_us() if ingest_ts is None else ingest_ts,
        }
        for k, v in (("bid", bid), ("ask", ask), ("size", size), ("stale", stale)):
            if v is not None:
                msg[k] = v
        await self.publish_tick(msg)

    def tick_subject(self, symbol: str) -> str:
        subject = self._tick_subjects.get(symbol)
        if subject is None:
            subject = self._tick_subjects[symbol] = tick_subject(symbol)
        return subject

    async def publish_tick(self, tick: Mapping[str, Any], trace: Any = tracing.UNSAMPLED) -> None:
        """The hot path of market-feed: a contract-shaped tick dict, and its trace (sampled: its
        innermost open step's context goes into the headers). Raises :class:`InvalidMessage`
        (nothing sent) or :class:`BufferFull` (NATS unreachable for too long)."""
        try:
            payload = orjson.dumps(self._tick_schema.validate(tick))
        except messages.ContractError as exc:
            raise InvalidMessage.of(exc) from None
        symbol = tick["symbol"]
        subject = self._tick_subjects.get(symbol) or self.tick_subject(symbol)
        await self._publish_state(subject, payload, tick["ingest_ts"], trace if trace.sampled else _current.get())
        if "stale" not in tick:
            metrics.observe_publish_latency("state", tick["ts"])

    async def portfolio(self, user: str, valuation: Mapping[str, Any]) -> None:
        """A user's valuation on ``portfolio:<user>`` (the ``portfolio`` schema: cash,
        positions_value, total_value, day_change, day_change_pct, positions, ts)."""
        await self.publish(Channel(Kind.PORTFOLIO, user), valuation)

    async def _publish_state(self, subject: str, payload: bytes, now: int, tr: Any) -> None:
        """``tr``: the trace whose context to inject (``None``: whatever :func:`trace_headers`
        finds, the tickmesh trace or the caller's OpenTelemetry span)."""
        headers: dict[str, str] = {SEQ_HEADER: str(self._versions.next(subject, now))}
        if tr is None:
            headers = trace_headers(headers) or headers
        elif tr.sampled:
            tr.inject(headers)
        try:
            await self.nc.publish(subject, payload, headers=headers)
        except OutboundBufferLimitError:
            raise BufferFull(
                f"the NATS outbound buffer is full (NATS unreachable?); {subject} was not sent",
                subject=subject,
                limit="pending_size",
            ) from None
        except ConnectionClosedError:
            raise PublisherClosed(f"the NATS connection is closed; {subject} was not sent", subject=subject) from None
        self.published += 1
        metrics.messages_out("state", 1, len(payload))

    # --- event channels ------------------------------------------------------------------------

    async def notify(
        self,
        user: str,
        title: str,
        *,
        severity: str = "info",
        kind: str = "system",
        body: str | None = None,
        symbol: str | None = None,
        ref: str | None = None,
        id: str | None = None,
        ts: int | None = None,
    ) -> Ack:
        """A notification for ``user`` (``notifications:<user>``). ``kind``: trade, alert, news,
        system or risk; ``severity``: info, warning or critical. ``id`` defaults to a fresh one:
        pass your own (derived from the cause) so that publishing again is stored once."""
        msg = _fields(
            user=user, title=title, severity=severity, kind=kind, body=body, symbol=symbol, ref=ref, id=id, ts=ts
        )
        return await self._event(Kind.NOTIFICATIONS, user, msg)

    async def alert(
        self,
        user: str,
        *,
        id: str,
        symbol: str,
        condition: str,
        threshold: str,
        fired_price: str,
        fired_ts: int | None = None,
        reference_price: str | None = None,
        created_ts: int | None = None,
        event_id: str | None = None,
    ) -> Ack:
        """A price alert of ``user`` that fired (``alerts:<user>``): the rule (``id``, ``symbol``,
        ``condition`` above/below/move_pct, ``threshold``) and the price that fired it.
        ``event_id`` (default: the rule id) de-duplicates the event."""
        msg = _fields(
            id=id,
            symbol=symbol,
            condition=condition,
            threshold=threshold,
            fired_price=fired_price,
            fired_ts=now_us() if fired_ts is None else fired_ts,
            reference_price=reference_price,
            created_ts=created_ts,
        )
        return await self._event(Kind.ALERTS, user, msg, event_id)

    async def execution(
        self,
        user: str,
        *,
        exec_id: str,
        order_id: str,
        client_order_id: str,
        symbol: str,
        side: str,
        order_type: str,
        status: str,
        quantity: str,
        price: str | None = None,
        limit_price: str | None = None,
        reason: str | None = None,
        code: int | None = None,
        ts: int | None = None,
    ) -> Ack:
        """An order's state change on ``trades:<user>`` (status accepted, filled, rejected or
        cancelled). ``exec_id`` identifies this event: the same id is stored once."""
        msg = _fields(
            user=user,
            exec_id=exec_id,
            order_id=order_id,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            order_type=order_type,
            status=status,
            quantity=quantity,
            price=price,
            limit_price=limit_price,
            reason=reason,
            code=code,
            ts=ts,
        )
        return await self._event(Kind.TRADES, user, msg)

    async def announce(
        self,
        text: str,
        *,
        severity: str = "info",
        starts_at: int | None = None,
        ends_at: int | None = None,
        id: str | None = None,
        ts: int | None = None,
    ) -> Ack:
        """A system announcement on ``announcements``, shown to every connected user (and
        replayed to new connections until ``ends_at``). This publishes at once: scheduling for
        ``starts_at`` is the announcer service's ``announcement.publish`` command."""
        msg = _fields(text=text, severity=severity, starts_at=starts_at, ends_at=ends_at, id=id, ts=ts)
        return await self._event(Kind.ANNOUNCEMENTS, None, msg)

    async def news(
        self,
        headline: str,
        *,
        source: str,
        id: str | None = None,
        summary: str | None = None,
        symbols: Sequence[str] | None = None,
        url: str | None = None,
        ts: int | None = None,
    ) -> Ack:
        """A news story on ``news``."""
        msg = _fields(
            headline=headline,
            source=source,
            id=id,
            summary=summary,
            symbols=list(symbols) if symbols is not None else None,
            url=url,
            ts=ts,
        )
        return await self._event(Kind.NEWS, None, msg)

    async def _event(self, kind: Kind, user: str | None, msg: dict[str, Any], event_id: str | None = None) -> Ack:
        ack = await self.publish(Channel(kind, user), msg, id=event_id)
        assert ack is not None
        return ack

    async def _publish_event(self, ch: Channel, payload: bytes, event_id: str) -> Ack:
        subject = subject_for(ch)
        headers = {MSG_ID_HEADER: event_id, EXPECTED_STREAM_HEADER: _stream_of(ch.kind)}
        headers = trace_headers(headers) or headers
        ack = await self.delivery.send(subject, payload, headers)
        self.published += 1
        metrics.messages_out("event", 1, len(payload))
        return ack

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _channel(channel: Channel | str) -> Channel:
        try:  # a Channel built by hand is checked against the grammar too
            ch = parse_channel(channel.name if isinstance(channel, Channel) else channel)
        except ChannelError as exc:
            raise UnknownChannel(f"channel {str(channel)[:80]!r}: {exc.reason}") from None
        if ch.kind.per_user and ch.arg is None:
            raise UnknownChannel(f"a publisher names the user of a per-user channel: {ch.kind.value}:<user>")
        if ch.kind not in messages.channel_schemas():
            raise UnknownChannel(f"channel {ch.name!r} has no message schema in messages.toml")
        try:  # publishers write to the channels a stream stores; presence and watch-lists have owners
            stream_table.stream_for_kind(ch.kind)
        except KeyError:
            raise UnknownChannel(
                f"{ch.kind.value} channels are not published directly (their service or the edges own them)"
            ) from None
        return ch

    @staticmethod
    def _own_user(schema: messages.Schema, ch: Channel, msg: dict[str, Any]) -> None:
        if schema.field("user") is None:
            return
        if msg.get("user") is None:
            msg["user"] = ch.arg
        elif msg["user"] != ch.arg:
            raise InvalidMessage(schema.name, "user", f"must be the channel's user ({ch.arg})")

    @staticmethod
    def _encode(schema: messages.Schema, msg: Mapping[str, Any]) -> bytes:
        try:
            return orjson.dumps(schema.validate(msg))
        except messages.ContractError as exc:
            raise InvalidMessage.of(exc) from None


def _fields(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _stream_of(kind: Kind) -> str:
    return stream_table.stream_for_kind(kind).name
