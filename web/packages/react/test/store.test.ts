import { TickmeshClient, type Execution } from "@tickmesh/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { fakeEnvironment, fakeNetwork, flush } from "../../client/test/fakes.js";
import { TickmeshStore } from "../src/store.js";

async function setup() {
  const net = fakeNetwork();
  const client = new TickmeshClient({ url: "http://x", getToken: () => "t", environment: fakeEnvironment(), transportFactories: net.factories });
  const store = new TickmeshStore(client);
  store.attach();
  client.connect();
  await flush();
  net.last().welcome();
  const t = () => net.last();
  const ack = (ch: string, extra = {}) => {
    const sub = t().frames("sub").filter((f) => f.ch === ch).at(-1)!;
    t().receive({ op: "ok", id: sub.id, ...extra });
  };
  return { net, client, store, t, ack };
}

const exec = (over: Partial<Execution>): Execution => ({
  exec_id: "e1", order_id: "B-1", client_order_id: "c1", user: "alice", symbol: "AAPL", side: "buy",
  order_type: "market", status: "filled", quantity: "1", price: "187.20", ts: 1_795_630_850_000_000, ...over,
});

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("channel entries (per provider, ref-counted)", () => {
  it("tells history a page starts with from live items (toasts only for live ones)", async () => {
    const { store, t, ack } = await setup();
    const entry = store.channel<{ id: string }>("notifications");
    entry.subscribe(() => {});
    ack("notifications", { epoch: "e", seq: 2, replayed: 2 });
    t().receive({ op: "msg", ch: "notifications", seq: 1, data: { id: "old1" } }, { op: "msg", ch: "notifications", seq: 2, data: { id: "old2" } });
    t().receive({ op: "msg", ch: "notifications", seq: 3, data: { id: "new" } });
    const snap = entry.getSnapshot();
    expect(snap.items.map((n) => [n.id, snap.replayed(n)])).toEqual([["new", false], ["old2", true], ["old1", true]]);
  });

  it("shares one subscription between hooks and unsubscribes after the last", async () => {
    const { store, t, ack } = await setup();
    const entry = store.channel("prices:AAPL");
    expect(store.channel("prices:AAPL")).toBe(entry);
    const offA = entry.subscribe(() => {});
    const offB = entry.subscribe(() => {});
    expect(t().frames("sub")).toHaveLength(1);
    ack("prices:AAPL");
    offA();
    offB();
    await flush();
    expect(t().frames("unsub")).toHaveLength(1);
  });

  it("keeps the snapshot identity until the data changes", async () => {
    const { store, t, ack } = await setup();
    const entry = store.channel("prices:AAPL");
    let renders = 0;
    entry.subscribe(() => renders++);
    ack("prices:AAPL");
    const before = entry.getSnapshot();
    expect(before.status).toBe("live");
    store.channel("prices:MSFT").subscribe(() => {});
    ack("prices:MSFT");
    t().receive({ op: "msg", ch: "prices:MSFT", seq: 1, data: { last: "1" } });
    expect(entry.getSnapshot()).toBe(before); // another channel's tick: no re-render here
    const count = renders;
    t().receive({ op: "msg", ch: "prices:AAPL", seq: 1, data: { last: "2", stale: true } });
    expect(renders).toBe(count + 1);
    expect(entry.getSnapshot()).toMatchObject({ data: { last: "2" }, stale: true });
  });

  it("two stores over two clients never share data (not module-global)", async () => {
    const a = await setup();
    const b = await setup();
    a.store.channel("news").subscribe(() => {});
    expect(b.store.channel("news").getSnapshot().status).toBe("idle");
  });

  it("marks data stale while the connection is down", async () => {
    const { store, t, ack } = await setup();
    const entry = store.channel("portfolio");
    entry.subscribe(() => {});
    ack("portfolio");
    t().receive({ op: "msg", ch: "portfolio", seq: 1, data: { total_value: "10" } });
    expect(entry.getSnapshot().stale).toBe(false);
    t().drop();
    expect(entry.getSnapshot().stale).toBe(true);
    expect(store.connection.state).toBe("reconnecting");
  });
});

describe("stream reset", () => {
  it("drops the events of an old epoch when the stream was reset", async () => {
    const { store, t, ack, net } = await setup();
    const entry = store.channel("notifications");
    entry.subscribe(() => {});
    ack("notifications", { epoch: "E1", seq: 0 });
    t().receive({ op: "msg", ch: "notifications", seq: 1, data: { id: "n1" } });
    expect(entry.getSnapshot().items).toHaveLength(1);
    t().drop();
    await vi.advanceTimersByTimeAsync(1000);
    net.last().welcome();
    ack("notifications", { epoch: "E2", seq: 0, recovered: false, reason: "epoch_changed", replayed: 0 });
    expect(entry.getSnapshot().items).toEqual([]);
  });
});

describe("optimistic orders", () => {
  const order = { symbol: "AAPL", side: "buy", type: "market", quantity: "1" } as const;

  it("shows the order at once, then reconciles with the execution", async () => {
    const { store, t } = await setup();
    const p = store.orders.submit({ ...order, client_order_id: "c1" });
    expect(store.orders.snapshot.orders[0]).toMatchObject({ client_order_id: "c1", status: "pending" });
    store.orders.onExecution(exec({ status: "filled", price: "187.20" }));
    expect(store.orders.snapshot.orders[0]).toMatchObject({ status: "filled", price: "187.20", order_id: "B-1" });
    // A late `accepted` reply never moves it backwards.
    const cmd = t().frames("cmd")[0]!;
    expect(cmd.key).toBe("c1");
    t().receive({ op: "ok", id: cmd.id, data: { order_id: "B-1", status: "accepted" } });
    await p;
    expect(store.orders.snapshot.orders[0]!.status).toBe("filled");
  });

  it("rolls back a rejected order with the reason", async () => {
    const { store, t } = await setup();
    const p = store.orders.submit({ ...order, quantity: "1000000", client_order_id: "c2" });
    expect(store.orders.snapshot.orders).toHaveLength(1);
    const cmd = t().frames("cmd")[0]!;
    t().receive({ op: "err", id: cmd.id, code: 603, reason: "insufficient funds" });
    await expect(p).rejects.toMatchObject({ code: 603 });
    expect(store.orders.snapshot.orders).toHaveLength(0);
    expect(store.orders.snapshot.rejections[0]).toMatchObject({ code: 603, codeName: "insufficient_funds", reason: "insufficient funds" });
  });
});
