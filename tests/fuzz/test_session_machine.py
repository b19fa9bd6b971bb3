"""Hypothesis stateful testing of the sans-I/O session core (edge/session.py).

The machine plays both sides the core talks to: a client sending valid, random and mutated
frames (JSON or MessagePack), and an I/O layer answering the core's actions (verification
results, subscriptions made live or failed, server-side ends, heartbeat ticks with the clock
moving). After every step it checks what a user relies on:

* nothing raises; after a close nothing more comes out;
* every frame the core emits is one the protocol documents, every error and close code is in
  contracts/codes.toml;
* each client frame gets at most one answer (a frame or an action), and only a ``pong`` none;
* nothing but auth and ping is served before authentication;
* a subscription is never to another user's data unless the identity is support/admin, and
  then it is audited; prices only in an entitled market; commands only for allowed roles and in
  the verified user's name;
* the core's subscriptions are exactly those the I/O layer was asked to make and has not
  released, never more than the limit.
"""

from __future__ import annotations

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tickmesh.contracts.codes import CLOSES, ERRORS
from tickmesh.contracts.commands import commands
from tickmesh.contracts.instruments import market_of
from tickmesh.edge.frames import JSON, MSGPACK
from tickmesh.edge.identity import AuthFailure, Identity
from tickmesh.edge.limits import TokenBucket
from tickmesh.edge.session import Authenticate, Close, RunCommand, Session, SessionLimits, Subscribe, Unsubscribe

from .budget import SCALE, examples

# The budget scales with TICKMESH_FUZZ_SCALE, and so does the time a test may take.
pytestmark = pytest.mark.timeout(int(150 * SCALE) + 60)

ERROR_CODES = {i.code for i in ERRORS.values()}
CLOSE_CODES = {i.code for i in CLOSES.values()}
SERVER_OPS = {"err", "ok", "pong", "welcome", "ping", "unsub"}

ALICE = Identity("alice", frozenset({"user"}), frozenset({"equities", "crypto"}), expires_at=10_000.0)
SUPPORT = Identity("sam", frozenset({"support"}), frozenset({"fx"}), expires_at=10_000.0)
ADMIN = Identity("ada", frozenset({"admin"}), frozenset(), expires_at=10_000.0)
LIMITS = SessionLimits(
    auth_timeout=5,
    heartbeat_interval=10,
    max_subscriptions=4,
    max_frame_bytes=600,
    expiry_leeway=30,
    commands_per_second=5,
    commands_burst=5,
)

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8,
)
known_channels = st.sampled_from(
    [
        "prices:AAPL",
        "prices:BTC-USD",
        "prices:EUR/USD",
        "prices:NOPE",
        "portfolio",
        "portfolio:alice",
        "portfolio:bob",
        "trades",
        "trades:bob",
        "notifications",
        "alerts:alice",
        "announcements",
        "news",
        "flags",
        "presence:symbol:AAPL",
        "watchlist:abcdefghijklmnopqrstuv",
        "notifications:sam",
        "trades:ada",
    ]
)
channels = known_channels | st.text(max_size=30)
commands_ = st.sampled_from(sorted(commands())) | st.text(max_size=12)
frames_ = st.one_of(
    st.fixed_dictionaries(
        {"op": st.just("sub"), "id": st.integers(0, 99), "ch": channels},
        optional={
            "since": values | st.fixed_dictionaries({"epoch": st.text(max_size=8), "seq": st.integers(-1, 2**64 - 1)}),
            "max_hz": values | st.floats(0.05, 2000),
            "history": values | st.integers(0, 1001),
        },
    ),
    st.fixed_dictionaries({"op": st.just("unsub"), "id": st.integers(0, 99), "ch": channels}),
    st.fixed_dictionaries(
        {"op": st.just("cmd"), "id": st.integers(0, 99), "name": commands_},
        optional={"key": values | st.text(min_size=1, max_size=70), "data": values},
    ),
    st.fixed_dictionaries(
        {"op": st.sampled_from(["auth", "refresh"]), "id": st.integers(0, 99), "token": values | st.text(max_size=40)}
    ),
    st.fixed_dictionaries({"op": st.sampled_from(["ping", "pong"])}, optional={"id": values}),
    st.dictionaries(st.sampled_from(["op", "id", "ch", "name", "data", "token", "x"]), values, max_size=5),
)


def _mutate(data: bytes, how: int, where: int, byte: int) -> bytes:
    if not data:
        return bytes([byte])
    i = where % len(data)
    if how == 0:
        return data[:i] + bytes([byte]) + data[i + 1 :]  # replace a byte
    if how == 1:
        return data[:i]  # truncate
    if how == 2:
        return data[:i] + bytes([byte]) + data[i:]  # insert a byte
    return data + data[i:]  # duplicate a tail


class SessionMachine(RuleBasedStateMachine):
    @initialize(codec=st.sampled_from([JSON, MSGPACK]), identity=st.sampled_from([None, ALICE, SUPPORT, ADMIN]))
    def start(self, codec, identity):
        self.open(codec, identity)

    @precondition(lambda self: self.closed)
    @rule(codec=st.sampled_from([JSON, MSGPACK]), identity=st.sampled_from([None, ALICE, SUPPORT, ADMIN]))
    def reconnect(self, codec, identity):
        """A closed session stays closed (checked); the client connects again."""
        self.receive(orjson.dumps({"op": "ping"}))
        self.open(codec, identity)

    def open(self, codec, identity):
        self.codec = codec
        self.now = 1.0
        self.session = Session(
            conn_id="fuzz",
            now=self.now,
            limits=LIMITS,
            codec=codec,
            identity=identity,
            rate_limiter=TokenBucket(5, 5, self.now),
            channel_exists=lambda ch: ch.arg != "NOPE",
        )
        self.identity = identity
        self.pending_auth: list[Authenticate] = []
        self.pending_subs: list[Subscribe] = []
        self.subs: set[str] = set()
        self.closed = False
        self.check(self.session.take(), replies_to=None)

    # -- the client ------------------------------------------------------------------------

    def encode(self, frame: dict) -> bytes:
        return msgpack.packb(frame) if self.codec is MSGPACK else orjson.dumps(frame)

    def decoded_op(self, data: bytes) -> object:
        try:
            frame = self.codec.decode(data)
        except Exception:
            return None
        return frame.get("op") if isinstance(frame, dict) else None

    def receive(self, data: bytes) -> None:
        was_open = self.session.state == Session.OPEN
        self.session.receive_frame(data, self.now)
        out = self.session.take()
        if self.closed:
            assert out == [], "nothing comes out of a closed session"
            return
        assert len(out) <= 1, f"one answer per frame, got {out}"
        if not out:
            assert self.decoded_op(data) == "pong", "only a pong goes unanswered"
        if not was_open and out and isinstance(out[0], bytes):
            frame = self.codec.decode(out[0])
            assert frame["op"] in ("err", "pong"), f"served before authentication: {frame}"
            if frame["op"] == "err" and self.decoded_op(data) not in ("auth", "ping", "pong"):
                assert frame["code"] in (100, 101, 102, 103, 300), frame
        self.check(out, replies_to=data)

    @precondition(lambda self: not self.closed)
    @rule(frame=frames_)
    def send_frame(self, frame):
        self.receive(self.encode(frame))

    @precondition(lambda self: not self.closed)
    @rule(ch=known_channels, rid=st.integers(0, 9))
    def subscribe(self, ch, rid):
        self.receive(self.encode({"op": "sub", "id": rid, "ch": ch}))

    @precondition(lambda self: not self.closed)
    @rule(ch=known_channels)
    def unsubscribe(self, ch):
        self.receive(self.encode({"op": "unsub", "id": 1, "ch": ch}))

    @precondition(lambda self: not self.closed)
    @rule(name=st.sampled_from(sorted(commands())), data=values, key=st.none() | st.text(min_size=1, max_size=8))
    def command(self, name, data, key):
        self.receive(self.encode({"op": "cmd", "id": 1, "name": name, "data": data, "key": key}))

    @precondition(lambda self: not self.closed)
    @rule(frame=frames_, how=st.integers(0, 3), where=st.integers(0, 10_000), byte=st.integers(0, 255))
    def send_mutated(self, frame, how, where, byte):
        self.receive(_mutate(self.encode(frame), how, where, byte))

    @precondition(lambda self: not self.closed)
    @rule(data=st.binary(max_size=700))
    def send_bytes(self, data):
        self.receive(data)

    # -- the I/O layer ---------------------------------------------------------------------

    @precondition(lambda self: self.pending_auth)
    @rule(outcome=st.sampled_from(["ok", "other_user", "failed", "expired"]))
    def answer_auth(self, outcome):
        action = self.pending_auth.pop(0)
        if outcome == "ok":
            result = self.identity or ALICE
            if not action.refresh:
                self.identity = result
        elif outcome == "other_user":
            result = ADMIN if self.identity is not ADMIN else ALICE
            if not action.refresh:
                self.identity = result
        else:
            result = AuthFailure(4003 if outcome == "expired" else 4101, outcome)
        self.session.auth_result(result, self.now, rid=action.rid, refresh=action.refresh)
        self.check(self.session.take(), replies_to=None)

    @precondition(lambda self: self.pending_subs)
    @rule(ok=st.booleans(), code=st.sampled_from(sorted(ERROR_CODES)))
    def answer_sub(self, ok, code):
        action = self.pending_subs.pop(0)
        if ok:
            self.session.subscribed(action.name, action.rid, {} if action.state else {"epoch": "e", "seq": 0})
        else:
            self.session.subscribe_failed(action.name, action.rid, code, "failed")
            self.subs.discard(action.name)
        self.check(self.session.take(), replies_to=None)

    @precondition(lambda self: self.subs)
    @rule(data=st.data())
    def server_ends_a_subscription(self, data):
        name = data.draw(st.sampled_from(sorted(self.subs)))
        self.session.end_subscription(name, 301, "no longer allowed")
        self.check(self.session.take(), replies_to=None)

    @precondition(lambda self: not self.closed)
    @rule(seconds=st.sampled_from([0.1, 0.5, 1, 2, 6, 11, 25, 10_000]))
    def tick(self, seconds):
        self.now += seconds
        self.session.tick(self.now)
        self.check(self.session.take(), replies_to=None)

    @precondition(lambda self: not self.closed)
    @rule(code=st.sampled_from(sorted(CLOSE_CODES)))
    def close(self, code):
        self.session.close(code, "closed by the I/O layer")
        self.check(self.session.take(), replies_to=None)

    # -- what comes out --------------------------------------------------------------------

    def check(self, out: list, replies_to: bytes | None) -> None:
        for item in out:
            if isinstance(item, bytes):
                assert not self.closed
                frame = self.codec.decode(item)
                assert frame["op"] in SERVER_OPS, frame
                if frame["op"] == "err":
                    assert frame["code"] in ERROR_CODES, f"undocumented code {frame}"
                if frame["op"] == "welcome":
                    assert self.identity is not None and frame["user"] == self.identity.user
            elif isinstance(item, Close):
                assert item.code in CLOSE_CODES, item
                self.closed = True
                self.pending_subs.clear()
                self.pending_auth.clear()
            elif isinstance(item, Authenticate):
                self.pending_auth.append(item)
            elif isinstance(item, Subscribe):
                identity = self.session.identity
                assert identity is not None
                assert item.name not in self.subs
                self.subs.add(item.name)
                self.pending_subs.append(item)
                if item.subject.startswith("tm.user."):
                    owner = item.subject.split(".")[2]
                    if owner != identity.user:
                        assert identity.privileged and item.audited_owner == owner, item
                if item.name.startswith("prices:"):
                    assert market_of(item.name[7:]) in identity.entitlements, item
            elif isinstance(item, Unsubscribe):
                assert item.name in self.subs, item
                self.subs.discard(item.name)
                self.pending_subs = [s for s in self.pending_subs if s.name != item.name]
            elif isinstance(item, RunCommand):
                identity = self.session.identity
                assert identity is not None
                assert orjson.loads(item.payload)["user"] == identity.user
                assert identity.roles & commands()[item.name].roles
            else:
                raise AssertionError(f"unknown output {item!r}")

    @invariant()
    def subscriptions_are_what_the_io_layer_holds(self):
        if not hasattr(self, "session"):
            return
        assert set(self.session.subscriptions) == self.subs
        assert len(self.subs) <= LIMITS.max_subscriptions


SessionMachine.TestCase.settings = settings(
    max_examples=examples(150), stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_session_machine = SessionMachine.TestCase
