"""HTTP fuzzing of the fallback endpoints (/ticket, /sse, /poll, /cmd) with schemathesis, from
contracts/openapi.yaml, against a real edge with real NATS and the services behind the commands.

Schemathesis generates valid and invalid requests (tickets, channels, cursors, bodies, headers)
from the description; most get a real token or ticket and real channel names swapped in, so the
requests reach past authentication into the streams and the services. Every answer must be
documented: no 5xx, only the statuses, content types, headers and bodies the file describes.

Budget: ``TICKMESH_FUZZ_SCALE`` (tests/fuzz/budget.py) multiplies the examples per endpoint.
"""

from __future__ import annotations

import collections
import random
import sys
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.support.natsserver import NatsServer
from tests.support.procs import EdgeProcess, Proc, base_env
from tests.support.timing import t
from tests.support.tokens import SECRET, token

from .budget import SCALE, examples

# The budget scales with TICKMESH_FUZZ_SCALE, and so does the time a test may take.
pytestmark = pytest.mark.timeout(int(150 * SCALE) + 60)

OPENAPI = Path(__file__).resolve().parents[2] / "contracts" / "openapi.yaml"
SERVICES = ("market-feed", "broker", "notifier", "announcer", "watchlists", "flags")
CHANNELS = [
    "prices:AAPL",
    "prices:BTC-USD",
    "portfolio",
    "trades",
    "notifications",
    "alerts",
    "announcements",
    "news",
    "flags",
    "portfolio:bob",
    "prices:NOPE",
    "presence:symbol:AAPL",
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# A method the operation does not have (schemathesis tries them): 405 with Allow, or the
# framework's own OPTIONS answer.
OTHER_METHOD_CHECKS = [not_a_server_error, unsupported_method, allow_header_conformance]

STATS: collections.Counter = collections.Counter()  # (method path, status): printed at the end (pytest -s)
schema = schemathesis.openapi.from_path(OPENAPI)
schema.config.generation.update(modes=["positive", "negative"], max_examples=examples(30))


def _ready(http: str, name: str, data: dict, user: str = "alice") -> None:
    """Wait until the service behind ``name`` answers (anything but 503: no responders yet)."""
    import time

    deadline = time.monotonic() + t(60)
    while time.monotonic() < deadline:
        resp = requests.post(
            f"{http}/cmd",
            json={"name": name, "data": data},
            timeout=t(10),
            headers={"Authorization": f"Bearer {token(user, roles=('user', 'admin'))}"},
        )
        if resp.status_code != 503:
            return
        time.sleep(0.3)
    raise TimeoutError(f"no service answers {name}")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """NATS, the services behind every command, and one edge (direct engine) with limits raised
    so that the fuzz reaches past the rate limits."""
    tmp = tmp_path_factory.mktemp("http-fuzz")
    server = NatsServer(tmp / "nats").start()
    procs = []
    try:
        import asyncio

        from tickmesh.services.portfolio_valuer.demo import seed_demo_accounts

        env = base_env(NATS_URL=server.url, TICKMESH_JWT_SECRET=SECRET)
        edge = EdgeProcess(
            server.url,
            tmp,
            EDGE_POLL_WAIT_S="1",
            EDGE_TICKET_TTL_S="3600",
            EDGE_HTTP_RATE="10000",
            EDGE_HTTP_BURST="10000",
            EDGE_HTTP_IP_RATE="10000",
            EDGE_HTTP_IP_BURST="10000",
            EDGE_CMD_RATE="10000",
            EDGE_CMD_BURST="10000",
            EDGE_HEARTBEAT_S="1",
        )
        procs.append(edge)
        asyncio.run(seed_demo_accounts(server.url))
        for name in SERVICES:
            procs.append(Proc([sys.executable, "-m", "tickmesh", "service", name], env, tmp / f"{name}.log"))
        _ready(edge.http, "alert.list", {})
        _ready(edge.http, "watchlist.list", {})
        _ready(edge.http, "order.cancel", {"order_id": "none"})
        _ready(edge.http, "flag.list", {}, user="ada")
        ticket = requests.post(
            f"{edge.http}/ticket", headers={"Authorization": f"Bearer {token('alice')}"}, timeout=t(10)
        ).json()["ticket"]
        cursor = requests.get(
            f"{edge.http}/poll",
            params=[("ticket", ticket), ("ch", "notifications"), ("ch", "prices:AAPL")],
            timeout=t(10),
        ).json()["cursor"]
        yield edge, ticket, cursor
        print("http fuzz:", dict(sorted(STATS.items())))
    finally:
        for proc in reversed(procs):
            proc.stop()
        server.stop()
    for proc in procs:
        errors = [line for line in proc.output().splitlines() if '"level":"error"' in line or "Traceback" in line]
        assert not errors, f"{proc.log.name} logged errors:\n" + "\n".join(errors[:10])


def _realistic(case, ticket: str, cursor: str, rng: random.Random) -> None:
    """Swap real credentials and channel names into most generated requests."""
    if case.path in ("/ticket", "/cmd") and rng.random() < 0.85:
        case.headers = dict(case.headers or {})
        user, roles = rng.choice([("alice", ("user",)), ("ada", ("admin",)), ("sam", ("support",))])
        case.headers["Authorization"] = f"Bearer {token(user, roles=roles)}"
    if case.path in ("/sse", "/poll") and isinstance(case.query, dict):
        if rng.random() < 0.8:
            case.query["ticket"] = ticket
        if rng.random() < 0.6:
            case.query["ch"] = rng.sample(CHANNELS, rng.randint(1, 4))
        pick = rng.random()
        if pick < 0.4:
            case.query.pop("cursor", None)
        elif pick < 0.7:
            case.query["cursor"] = cursor
        if case.headers and "Last-Event-ID" in case.headers and rng.random() < 0.7:
            case.headers = {k: v for k, v in case.headers.items() if k != "Last-Event-ID"}


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_fallback_endpoints_answer_only_what_openapi_documents(case, mesh):
    edge, ticket, cursor = mesh
    _realistic(case, ticket, cursor, random.Random(repr(case.query) + repr(case.body) + repr(case.headers)))
    if case.method.lower() != case.operation.method.lower():
        resp = case.call(base_url=edge.http, timeout=t(15))
        STATS[f"{case.method} {case.path} {resp.status_code}"] += 1
        if resp.status_code != 431:  # a head over 16 KiB is refused before any route, whatever the method
            case.validate_response(resp, checks=OTHER_METHOD_CHECKS)
        return
    if case.path == "/sse":
        # Sent by hand: schemathesis would read the whole body, and a stream never ends.
        with requests.request(**case.as_transport_kwargs(base_url=edge.http), stream=True, timeout=t(10)) as resp:
            STATS[f"{case.method} {case.path} {resp.status_code}"] += 1
            if resp.status_code == 200:
                # The stream itself never ends: its head, and its first event, are what can be checked.
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                assert resp.headers["Cache-Control"].startswith("no-cache")
                first = next(resp.iter_lines())
                assert first == b"retry: 2000", first
                return
            case.validate_response(resp, checks=CHECKS)
        return
    resp = case.call(base_url=edge.http, timeout=t(15))
    STATS[f"{case.method} {case.path} {resp.status_code}"] += 1
    case.validate_response(resp, checks=CHECKS)
