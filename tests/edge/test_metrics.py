"""The edge's /metrics and logs, as an operator sees them, while a real client comes and goes."""

import urllib.request

import nats

from tests.support.metrics import Samples, total
from tests.support.metrics import scrape as scrape_url
from tests.support.timing import eventually
from tests.support.tokens import token
from tests.support.wsclient import Client
from tickmesh.contracts.channels import tick_subject
from tickmesh.contracts.codes import ErrorCode


def scrape(edge) -> Samples:
    return scrape_url(edge.http + "/metrics")


def metric(samples: Samples, name: str, **labels) -> float:
    return total(samples, name, **labels)


async def test_metrics_follow_a_client_through_its_life(edge_factory, nats_mon):
    edge = edge_factory(EDGE_CMD_RATE="0.5", EDGE_CMD_BURST="1")
    before = scrape(edge)
    assert metric(before, "tickmesh_nats_connected") == 1
    secret = token("alice")
    c = await Client.login(edge.ws_url, secret)
    await c.request("sub", ch="prices:AAPL")
    await c.request("sub", ch="notifications")
    nc = await nats.connect(nats_mon.url)
    # Latency is observed for a sample of the batches written (1 in 16): send enough of them.
    for seq in range(1, 41):
        await nc.publish(
            tick_subject("AAPL"), b'{"symbol":"AAPL","last":"1.00","ts":1795000000000000}', headers={"Tm-Seq": str(seq)}
        )
        await nc.flush()
        await c.messages(1)
    await c.request("cmd", name="alert.list")
    limited, _ = await c.request("cmd", name="alert.list")
    assert limited["code"] == ErrorCode.RATE_LIMITED
    # Counts from the writers reach the registry once a second.
    during = await eventually(
        lambda: (
            lambda m: m if metric(m, "tickmesh_messages_total", direction="out", **{"class": "state"}) >= 40 else None
        )(scrape(edge))
    )
    assert metric(during, "tickmesh_edge_connections", transport="ws") == 1
    assert metric(during, "tickmesh_edge_subscriptions", **{"class": "state"}) == 1
    assert metric(during, "tickmesh_edge_subscriptions", **{"class": "event"}) == 1
    assert metric(during, "tickmesh_edge_rate_limited_total", limit="command") == 1
    assert metric(during, "tickmesh_edge_errors_total", code="400") == 1
    assert metric(during, "tickmesh_e2e_latency_seconds_count", **{"class": "state"}) >= 1
    assert metric(during, "tickmesh_messages_total", direction="in", **{"class": "state"}) >= 40
    assert metric(during, "tickmesh_messages_total", direction="out", **{"class": "state"}) >= 40
    await c.close()
    bad = await Client.connect(edge.ws_url)
    await bad.send({"op": "auth", "id": 1, "token": "nope"})
    after = await eventually(
        lambda: (
            lambda m: (
                m
                if metric(m, "tickmesh_edge_auth_failures_total") >= 1
                and metric(m, "tickmesh_edge_connections", transport="ws") == 0
                else None
            )
        )(scrape(edge))
    )
    assert metric(after, "tickmesh_edge_connections", transport="ws") == 0
    assert metric(after, "tickmesh_edge_auth_failures_total") >= 1
    assert metric(after, "tickmesh_edge_subscriptions") == 0
    # No user id or symbol ever becomes a label; no token reaches the logs.
    with urllib.request.urlopen(edge.http + "/metrics") as resp:
        text = resp.read().decode()
    assert "alice" not in text and "AAPL" not in text
    await nc.close()
    assert secret not in edge.output() and "eyJ" not in edge.output()
