import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { TickmeshClient, type ClientOptions } from "../src/client.js";
import type { ConnectionState } from "../src/state.js";
import { TickmeshError } from "../src/errors.js";
import { fakeEnvironment, fakeNetwork, flush } from "./fakes.js";

function setup(options: Partial<ClientOptions> = {}) {
  const net = fakeNetwork();
  const env = fakeEnvironment();
  const getToken = vi.fn(async () => "tok");
  const client = new TickmeshClient({
    url: "http://edge.test",
    getToken,
    environment: env,
    transportFactories: net.factories,
    backoff: { random: () => 0.5 },
    ...options,
  });
  const states: Array<[ConnectionState, ConnectionState]> = [];
  client.events.on("state", (c) => states.push([c.from, c.to]));
  return { client, net, env, getToken, states };
}

async function connected(options: Partial<ClientOptions> = {}) {
  const s = setup(options);
  s.client.connect();
  await flush();
  s.net.last().welcome();
  return s;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("state machine", () => {
  it("goes connecting -> connected with one event per change", async () => {
    const { client, net, states, getToken } = setup();
    expect(client.state).toBe("disconnected");
    client.connect();
    await flush();
    expect(getToken).toHaveBeenCalledWith({ reason: "connect" });
    const t = net.last();
    t.open();
    expect(t.sent[0]).toMatchObject({ op: "auth", token: "tok" });
    expect(client.state).toBe("connecting");
    t.welcome();
    expect(client.state).toBe("connected");
    expect(client.transportName).toBe("websocket");
    expect(states).toEqual([["disconnected", "connecting"], ["connecting", "connected"]]);
  });

  it("reconnects with backoff after a transient close, on the same transport", async () => {
    const { client, net, states } = await connected();
    net.last().drop({ code: 1006 });
    expect(client.state).toBe("reconnecting");
    expect(net.created).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(249); // random 0.5 of the first 500 ms ceiling
    expect(net.created).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(net.created).toHaveLength(2);
    expect(net.last().name).toBe("websocket");
    net.last().welcome();
    expect(states.slice(-2)).toEqual([["connected", "reconnecting"], ["reconnecting", "connected"]]);
  });

  it("backs off longer on each failed attempt", async () => {
    const { net } = await connected();
    net.last().drop();
    const times: number[] = [];
    let at = 0;
    for (let i = 0; i < 3; i++) {
      const before = net.created.length;
      while (net.created.length === before) {
        await vi.advanceTimersByTimeAsync(10);
        at += 10;
      }
      times.push(at);
      net.last().drop(); // opened, then failed again
    }
    // Ceilings 500, 1000, 2000 with random 0.5: 250, +500, +1000.
    expect(times).toEqual([250, 750, 1750]);
  });

  it("does not reconnect after a do-not-reconnect close code", async () => {
    const { client, net } = await connected();
    const errors: TickmeshError[] = [];
    client.events.on("error", (e) => errors.push(e));
    net.last().drop({ code: 4102, reason: "revoked" });
    expect(client.state).toBe("disconnected");
    expect(client.error?.code).toBe(4102);
    expect(errors[0]?.codeName).toBe("forbidden");
    await vi.advanceTimersByTimeAsync(60000);
    expect(net.created).toHaveLength(1);
  });

  it("gets a new token after close 4003 (token expired)", async () => {
    const { net, getToken } = await connected();
    net.last().drop({ code: 4003 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(getToken).toHaveBeenLastCalledWith({ reason: "expired" });
    expect(net.created).toHaveLength(2);
  });

  it("refreshes the token before it expires", async () => {
    vi.setSystemTime(new Date("2026-01-01T00:00:00Z"));
    const now = Date.now() / 1000;
    // No heartbeat in the way: this test waits ten minutes without the server saying anything.
    const { net, getToken } = await connected({ pingIntervalMs: 1e9 });
    net.last().drop();
    await vi.advanceTimersByTimeAsync(300);
    net.last().welcome({ expires_at: now + 600, heartbeat_ms: 1e9 });
    await vi.advanceTimersByTimeAsync(539_000);
    expect(net.last().frames("refresh")).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(getToken).toHaveBeenLastCalledWith({ reason: "refresh" });
    expect(net.last().frames("refresh")).toHaveLength(1);
  });

  it("goes offline with the browser and retries at once when it is back", async () => {
    const { client, net, env } = await connected();
    env.fire("offline");
    expect(client.state).toBe("offline");
    expect(net.last().closed).toBe(true);
    await vi.advanceTimersByTimeAsync(60000);
    expect(net.created).toHaveLength(1);
    env.fire("online");
    await flush();
    expect(net.created).toHaveLength(2);
  });

  it("retries at once when a hidden tab becomes visible with stale data", async () => {
    const { net, env } = await connected({ backoff: { random: () => 0.99, baseMs: 60000, maxMs: 60000 } });
    net.last().drop();
    await vi.advanceTimersByTimeAsync(31_000);
    expect(net.created).toHaveLength(1);
    env.fire("visible");
    await flush();
    expect(net.created).toHaveLength(2);
  });

  it("reflects the edge's status frames as degraded and back", async () => {
    const { client, net } = await connected();
    net.last().receive({ op: "status", state: "degraded", reason: "nats unavailable" });
    expect(client.state).toBe("degraded");
    net.last().receive({ op: "status", state: "ok" });
    expect(client.state).toBe("connected");
  });
});

describe("transport fallback", () => {
  it("falls back to SSE then polling when transports will not open, and remembers", async () => {
    const { client, net, env } = setup();
    client.connect();
    await flush();
    net.last().drop({ opened: false });
    await flush();
    await vi.advanceTimersByTimeAsync(0);
    expect(net.last().name).toBe("sse");
    net.last().drop({ opened: false });
    await vi.advanceTimersByTimeAsync(0);
    expect(net.last().name).toBe("polling");
    net.last().welcome();
    expect(client.transportName).toBe("polling");
    expect(env.store.get("tickmesh.transport")).toBe("polling");
  });

  it("upgrades back to WebSocket when it opens again", async () => {
    const { client, net } = setup({ upgradeIntervalMs: 1000 });
    client.connect();
    await flush();
    net.last().drop({ opened: false });
    await vi.advanceTimersByTimeAsync(0);
    net.last().welcome(); // on SSE
    await vi.advanceTimersByTimeAsync(1000);
    const probe = net.last();
    expect(probe.name).toBe("websocket");
    probe.open();
    expect(probe.closed).toBe(true);
    await flush();
    net.last().welcome();
    expect(client.transportName).toBe("websocket");
  });

  it("stays on a transport that worked when the edge is merely down", async () => {
    const { net } = await connected();
    net.last().drop();
    for (let i = 0; i < 2; i++) {
      await vi.advanceTimersByTimeAsync(5000);
      net.last().drop({ opened: false });
    }
    await vi.advanceTimersByTimeAsync(5000);
    expect(net.created.map((t) => t.name)).toEqual(["websocket", "websocket", "websocket", "websocket"]);
  });
});

describe("heartbeat", () => {
  it("answers the server's ping with pong", async () => {
    const { net } = await connected();
    net.last().receive({ op: "ping" });
    expect(net.last().sent.at(-1)).toEqual({ op: "pong" });
  });

  it("pings and reconnects when nothing comes back", async () => {
    const { client, net } = await connected({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(net.last().frames("ping")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(499);
    expect(client.state).toBe("connected");
    await vi.advanceTimersByTimeAsync(1);
    expect(client.state).toBe("reconnecting");
  });

  it("counts any frame as proof of life", async () => {
    const { client, net } = await connected({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
    await vi.advanceTimersByTimeAsync(1000);
    const ping = net.last().frames("ping")[0]!;
    net.last().receive({ op: "pong", id: ping.id });
    await vi.advanceTimersByTimeAsync(900);
    expect(client.state).toBe("connected");
  });
});
