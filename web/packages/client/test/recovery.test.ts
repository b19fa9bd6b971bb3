import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HISTORY_ON_FIRST_SUBSCRIBE, TickmeshClient } from "../src/client.js";
import type { CachedMessage } from "../src/cache.js";
import { fakeEnvironment, fakeNetwork, flush, type FakeTransport } from "./fakes.js";

async function connected() {
  const net = fakeNetwork();
  const client = new TickmeshClient({
    url: "http://edge.test",
    getToken: () => "tok",
    environment: fakeEnvironment(),
    transportFactories: net.factories,
    backoff: { random: () => 0 },
  });
  client.connect();
  await flush();
  net.last().welcome();
  return { client, net };
}

/** Reply `ok` to the transport's last `sub` for `ch`. */
function ackSub(t: FakeTransport, ch: string, extra: Record<string, unknown> = {}) {
  const sub = t.frames("sub").filter((f) => f.ch === ch).at(-1)!;
  t.receive({ op: "ok", id: sub.id, ...extra });
  return sub;
}

async function reconnect(net: ReturnType<typeof fakeNetwork>) {
  net.last().drop();
  await vi.advanceTimersByTimeAsync(1);
  net.last().welcome();
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("recovery positions", () => {
  it("resubscribes an event channel with its last position after a reconnect", async () => {
    const { client, net } = await connected();
    const seen: number[] = [];
    client.subscribe("notifications", (m) => seen.push(m.seq));
    // A first subscription has no position: it asks for the recent past instead.
    expect(net.last().frames("sub")[0]).not.toHaveProperty("since");
    expect(net.last().frames("sub")[0]).toMatchObject({ history: HISTORY_ON_FIRST_SUBSCRIBE });
    ackSub(net.last(), "notifications", { epoch: "E1", recovered: true, replayed: 0 });
    net.last().receive({ op: "msg", ch: "notifications", seq: 10, data: { id: "a" } }, { op: "msg", ch: "notifications", seq: 14, data: { id: "b" } });
    await reconnect(net);
    const sub = net.last().frames("sub")[0]!;
    expect(sub).toMatchObject({ ch: "notifications", since: { epoch: "E1", seq: 14 } });
    expect(sub).not.toHaveProperty("history");
    ackSub(net.last(), "notifications", { epoch: "E1", recovered: true, replayed: 2 });
    // The replay overlaps what we had: 14 again is dropped, 15 and 20 are new.
    net.last().receive(
      { op: "msg", ch: "notifications", seq: 14, data: { id: "b" } },
      { op: "msg", ch: "notifications", seq: 15, data: { id: "c" } },
      { op: "msg", ch: "notifications", seq: 20, data: { id: "d" } },
    );
    expect(seen).toEqual([10, 14, 15, 20]);
  });

  it("resumes from the position in the sub reply when no message arrived yet", async () => {
    const { client, net } = await connected();
    const seen: number[] = [];
    client.subscribe("notifications", (m) => seen.push(m.seq));
    ackSub(net.last(), "notifications", { epoch: "E1", seq: 41, recovered: true, replayed: 0 });
    await reconnect(net);
    expect(net.last().frames("sub")[0]).toMatchObject({ since: { epoch: "E1", seq: 41 } });
    // With a replay, the replayed messages (below the reply's seq) are delivered, not dropped.
    ackSub(net.last(), "notifications", { epoch: "E1", seq: 45, recovered: true, replayed: 2 });
    net.last().receive({ op: "msg", ch: "notifications", seq: 43, data: {} }, { op: "msg", ch: "notifications", seq: 45, data: {} });
    expect(seen).toEqual([43, 45]);
  });

  it("reports an epoch change, forgets the old position and cached history", async () => {
    const { client, net } = await connected();
    const recoveries: unknown[] = [];
    client.events.on("recovery", (r) => recoveries.push(r));
    client.subscribe("trades", () => {});
    ackSub(net.last(), "trades", { epoch: "E1" });
    net.last().receive({ op: "msg", ch: "trades", seq: 100, data: {} });
    await reconnect(net);
    ackSub(net.last(), "trades", { epoch: "E2", recovered: false, reason: "epoch_changed", replayed: 0 });
    expect(recoveries).toEqual([{ ch: "trades", reason: "epoch_changed", replayed: 0, firstSeq: undefined }]);
    expect(client.history("trades")).toEqual([]);
    // In the new epoch, seq 5 is new even though it is below the old 100.
    net.last().receive({ op: "msg", ch: "trades", seq: 5, data: {} });
    expect(client.last("trades")?.seq).toBe(5);
    await reconnect(net);
    expect(net.last().frames("sub")[0]).toMatchObject({ since: { epoch: "E2", seq: 5 } });
  });

  it("reports a position that expired (messages lost to retention), never silently", async () => {
    const { client, net } = await connected();
    const recoveries: Array<{ reason: string; firstSeq?: number }> = [];
    client.events.on("recovery", (r) => recoveries.push(r));
    client.subscribe("alerts", () => {});
    ackSub(net.last(), "alerts", { epoch: "E1" });
    net.last().receive({ op: "msg", ch: "alerts", seq: 3, data: {} });
    await reconnect(net);
    ackSub(net.last(), "alerts", { epoch: "E1", recovered: false, reason: "position_expired", replayed: 9, first_seq: 5000 });
    expect(recoveries[0]).toMatchObject({ reason: "position_expired", firstSeq: 5000 });
  });

  it("never delivers an older state value after a newer one, and sends no since for state", async () => {
    const { client, net } = await connected();
    const seen: number[] = [];
    client.subscribe("prices:AAPL", (m) => seen.push(m.seq), { maxHz: 4 });
    const sub = ackSub(net.last(), "prices:AAPL");
    expect(sub.max_hz).toBe(4);
    net.last().receive({ op: "msg", ch: "prices:AAPL", seq: 50, data: {} }, { op: "msg", ch: "prices:AAPL", seq: 40, data: {} });
    await reconnect(net);
    expect(net.last().frames("sub")[0]).not.toHaveProperty("since");
    expect(net.last().frames("sub")[0]).not.toHaveProperty("history");
    ackSub(net.last(), "prices:AAPL");
    net.last().receive({ op: "msg", ch: "prices:AAPL", seq: 50, data: {} }, { op: "msg", ch: "prices:AAPL", seq: 51, data: {} });
    expect(seen).toEqual([50, 51]);
  });
});

describe("cache and shared subscriptions", () => {
  it("serves the cached value of a state channel to a new subscriber at once", async () => {
    const { client, net } = await connected();
    client.subscribe("prices:MSFT", () => {});
    ackSub(net.last(), "prices:MSFT");
    net.last().receive({ op: "msg", ch: "prices:MSFT", seq: 7, data: { last: "410.10" } });
    const got: CachedMessage[] = [];
    client.subscribe("prices:MSFT", (m) => got.push(m));
    await flush();
    expect(got.map((m) => m.data)).toEqual([{ last: "410.10" }]);
    expect(client.last("prices:MSFT")?.data).toEqual({ last: "410.10" });
  });

  it("sends one sub for many listeners and one unsub after the last leaves", async () => {
    const { client, net } = await connected();
    const offA = client.subscribe("portfolio", () => {});
    const offB = client.subscribe("portfolio", () => {});
    expect(net.last().frames("sub")).toHaveLength(1);
    ackSub(net.last(), "portfolio");
    offA();
    await flush();
    expect(net.last().frames("unsub")).toHaveLength(0);
    offB();
    await flush();
    expect(net.last().frames("unsub")).toEqual([expect.objectContaining({ ch: "portfolio" })]);
    expect(client.channelStatus("portfolio").status).toBe("idle");
  });

  it("does not churn when a listener leaves and another arrives in the same tick (StrictMode)", async () => {
    const { client, net } = await connected();
    const off = client.subscribe("news", () => {});
    off();
    client.subscribe("news", () => {});
    await flush();
    expect(net.last().frames("sub")).toHaveLength(1);
    expect(net.last().frames("unsub")).toHaveLength(0);
  });

  it("subscribes what was wanted before connecting, once connected", async () => {
    const net = fakeNetwork();
    const client = new TickmeshClient({ url: "http://x", getToken: () => "t", environment: fakeEnvironment(), transportFactories: net.factories });
    client.subscribe("announcements", () => {});
    expect(client.channelStatus("announcements").status).toBe("pending");
    client.connect();
    await flush();
    expect(net.last().options.channels).toEqual(["announcements"]);
    net.last().welcome();
    expect(net.last().frames("sub").map((f) => f.ch)).toEqual(["announcements"]);
    ackSub(net.last(), "announcements", { epoch: "E" });
    expect(client.channelStatus("announcements").status).toBe("live");
  });

  it("reports a refused subscription with its code", async () => {
    const { client, net } = await connected();
    client.subscribe("prices:ZZZZ", () => {});
    const sub = net.last().frames("sub")[0]!;
    net.last().receive({ op: "err", id: sub.id, code: 201, reason: "unknown symbol" });
    const status = client.channelStatus("prices:ZZZZ");
    expect(status.status).toBe("error");
    expect(status.error?.codeName).toBe("unknown_channel");
  });
});

describe("commands", () => {
  it("resolves with the ok data and rejects with a typed error", async () => {
    const { client, net } = await connected();
    const order = { client_order_id: "o1", symbol: "AAPL", side: "buy", type: "market", quantity: "1" } as const;
    const ok = client.command("order.submit", order, { key: "o1" });
    const bad = client.command("order.submit", { ...order, client_order_id: "o2" }, { key: "o2" });
    const [c1, c2] = net.last().frames("cmd");
    expect(c1).toMatchObject({ name: "order.submit", key: "o1", data: order });
    net.last().receive({ op: "ok", id: c1!.id, data: { order_id: "B-1", status: "filled" } });
    net.last().receive({ op: "err", id: c2!.id, code: 603, reason: "not enough cash" });
    await expect(ok).resolves.toEqual({ order_id: "B-1", status: "filled" });
    await expect(bad).rejects.toMatchObject({ code: 603, codeName: "insufficient_funds", retry: false });
  });

  it("sends a command cut off by a lost connection again, with the same key", async () => {
    const { client, net } = await connected();
    const p = client.command("alert.list", {}, { key: "k-1" });
    expect(net.last().frames("cmd")).toHaveLength(1);
    await reconnect(net);
    const again = net.last().frames("cmd");
    expect(again).toEqual([expect.objectContaining({ key: "k-1", name: "alert.list" })]);
    net.last().receive({ op: "ok", id: again[0]!.id, data: { alerts: [] } });
    await expect(p).resolves.toEqual({ alerts: [] });
  });

  it("times out with code 502", async () => {
    const { client } = await connected();
    const p = client.command("alert.list", {}, { timeoutMs: 1000 });
    const check = expect(p).rejects.toMatchObject({ code: 502 });
    await vi.advanceTimersByTimeAsync(1000);
    await check;
  });
});

describe("cursors for SSE and polling", () => {
  it("encode the client's own positions in the edge's cursor format", async () => {
    const { Positions } = await import("../src/positions.js");
    const p = new Positions();
    p.setEpoch("trades", "E9");
    p.accept("trades", 41);
    p.accept("prices:AAPL", 7);
    const cursor = p.cursor(["trades", "prices:AAPL", "news"])!;
    expect(cursor).not.toMatch(/[+/=]/);
    const json = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    expect(JSON.parse(json)).toEqual({ v: 1, p: { trades: ["E9", 41], "prices:AAPL": [null, 7] } });
    expect(new Positions().cursor(["trades"])).toBeUndefined();
  });
});
