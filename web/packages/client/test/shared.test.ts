// One connection for all tabs (issue 14): real tab clients and a real Hub, joined by an
// in-memory bus that clones every message as a MessagePort or BroadcastChannel would. Only the
// edge behind the hub's upstream is faked (FakeTransport); the browser's own SharedWorker and
// leader election run in web/e2e/shared-connection.test.mjs.
import { afterEach, describe, expect, it, vi } from "vitest";
import { TickmeshClient } from "../src/client.js";
import type { TickmeshError } from "../src/errors.js";
import type { ServerFrame } from "../src/frames.js";
import { Hub } from "../src/shared-hub.js";
import type { Bus } from "../src/shared-link.js";
import { subjectOfKey, type HubMessage, type TabId, type TabMessage } from "../src/shared-protocol.js";
import { fakeEnvironment, fakeNetwork, type FakeTransport } from "./fakes.js";

const tokenFor = (sub: string) => ["x", btoa(JSON.stringify({ sub, exp: 4102444800 })), "y"].join(".");

/** Hubs per share key, tabs listening per key, and the fake edge behind every hub's upstream. */
function fabric(options: { expectTabs?: boolean; ignoreKey?: boolean } = {}) {
  const hubs = new Map<string, Hub>();
  const listeners = new Map<string, Set<(m: HubMessage) => void>>();
  const net = fakeNetwork();
  const engines: TickmeshClient[] = [];
  const tabs = new Set<TabId>();
  const keyOf = (key: string) => (options.ignoreKey ? "one-for-all" : key);
  const deliver = (key: string, m: HubMessage) => {
    const copy = structuredClone(m);
    queueMicrotask(() => [...(listeners.get(keyOf(key)) ?? [])].forEach((fn) => fn(copy)));
  };
  const hubFor = (key: string) => {
    let hub = hubs.get(keyOf(key));
    if (!hub) {
      hub = new Hub({
        subject: subjectOfKey(key)!,
        createEngine: (settings, getToken) => {
          const engine = new TickmeshClient({ url: settings.url, getToken, share: false, environment: fakeEnvironment(), transportFactories: net.factories, backoff: { random: () => 0.5 }, priceHistory: settings.priceHistory });
          engines.push(engine);
          return engine;
        },
        post: (m) => deliver(key, m),
        expectedTabs: options.expectTabs ? async () => [...tabs] : undefined,
        idleMs: 50,
      });
      hubs.set(keyOf(key), hub);
    }
    return hub;
  };
  const bus = (key: string, tab: TabId): Bus => {
    tabs.add(tab);
    return {
      post: (m: TabMessage) => {
        const copy = structuredClone(m);
        queueMicrotask(() => hubFor(key).receive(copy));
      },
      listen: (fn) => {
        let set = listeners.get(keyOf(key));
        if (!set) listeners.set(keyOf(key), (set = new Set()));
        set.add(fn);
        return () => void set.delete(fn);
      },
      close: () => void tabs.delete(tab),
    };
  };
  return {
    net, engines, hubs,
    /** The edge side of the (only) upstream connection. */
    upstream: () => net.last(),
    /** The tab holding the hub leaves: its hub says bye, the next one says hello. */
    handover(key: string) {
      const old = hubs.get(keyOf(key))!;
      hubs.delete(keyOf(key));
      old.close();
      const next = hubFor(key);
      deliver(key, { t: "hello", hub: next.id, to: "*" });
      return next;
    },
    tab(user = "alice", extra: Partial<ConstructorParameters<typeof TickmeshClient>[0]> = {}) {
      const getToken = vi.fn(async () => tokenFor(user));
      const client = new TickmeshClient({ url: "http://edge.test", getToken, share: { bus }, environment: fakeEnvironment(), backoff: { random: () => 0.5 },
        transportFactories: net.factories, // only for a tab that ends up connecting on its own
        ...extra });
      const got: Array<{ ch: string; seq: number; data: unknown; history?: boolean }> = [];
      const errors: TickmeshError[] = [];
      client.events.on("message", (m) => got.push(m.history ? { ch: m.ch, seq: m.seq, data: m.data, history: true } : { ch: m.ch, seq: m.seq, data: m.data }));
      client.events.on("error", (e) => errors.push(e));
      return { client, got, errors, getToken };
    },
  };
}

const settle = async (rounds = 20) => {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setTimeout(r, 0));
};

/** Answer every unanswered `sub` on the fake upstream as the edge would. */
function answerSubs(t: FakeTransport, answered: Set<number | string>, seq = 0) {
  for (const f of t.frames("sub")) {
    if (answered.has(f.id)) continue;
    answered.add(f.id);
    const event = !f.ch.startsWith("prices:") && !f.ch.startsWith("portfolio");
    t.receive(event ? ({ op: "ok", id: f.id, epoch: "E1", seq, replayed: 0 } as ServerFrame) : { op: "ok", id: f.id });
  }
}

const msg = (ch: string, seq: number, data: unknown = { n: seq }): ServerFrame => ({ op: "msg", ch, seq, data });

afterEach(() => vi.useRealTimers());

describe("tabs sharing one connection", () => {
  it("opens one upstream for three tabs, subscribes each channel once, delivers to all", async () => {
    const f = fabric();
    const tabs = [f.tab(), f.tab(), f.tab()];
    for (const t of tabs) t.client.connect();
    await settle();
    expect(f.net.created).toHaveLength(1);
    f.upstream().welcome({ user: "alice", conn_id: "c1" });
    await settle();
    for (const t of tabs) {
      expect(t.client.state).toBe("connected");
      expect(t.client.shared).toBe(true);
      expect(t.client.transportName).toBe("websocket");
      expect(t.client.session?.user).toBe("alice");
      t.client.subscribe("prices:AAPL", () => {});
      t.client.subscribe("trades", () => {});
    }
    await settle();
    const up = f.upstream();
    expect(up.frames("sub").map((s) => s.ch).sort()).toEqual(["prices:AAPL", "trades"]);
    answerSubs(up, new Set());
    await settle();
    for (const t of tabs) expect(t.client.channelStatus("trades").status).toBe("live");
    up.receive(msg("prices:AAPL", 7, { last: "187.10" }), msg("trades", 1, { client_order_id: "o1" }));
    await settle();
    for (const t of tabs) expect(t.got).toEqual([{ ch: "prices:AAPL", seq: 7, data: { last: "187.10" } }, { ch: "trades", seq: 1, data: { client_order_id: "o1" } }]);
  });

  it("counts subscriptions across tabs: the last tab to leave a channel unsubscribes upstream", async () => {
    const f = fabric();
    const [a, b] = [f.tab(), f.tab()];
    a.client.connect();
    b.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice" });
    await settle();
    const offA = a.client.subscribe("news", () => {});
    const offB = b.client.subscribe("news", () => {});
    await settle();
    answerSubs(f.upstream(), new Set());
    await settle();
    offA();
    await settle();
    expect(f.upstream().frames("unsub")).toEqual([]);
    f.upstream().receive(msg("news", 4));
    await settle();
    expect(a.got).toEqual([]);
    expect(b.got.map((m) => m.seq)).toEqual([4]);
    offB();
    await settle();
    expect(f.upstream().frames("unsub").map((u) => u.ch)).toEqual(["news"]);
  });

  it("gives a tab that joins late the recent history of an event channel, then live messages", async () => {
    const f = fabric();
    const a = f.tab();
    a.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice" });
    a.client.subscribe("notifications", () => {});
    await settle();
    const sub = f.upstream().frames("sub")[0]!;
    expect(sub.history).toBe(50);
    f.upstream().receive({ op: "ok", id: sub.id, epoch: "E1", seq: 3, replayed: 3 } as ServerFrame, msg("notifications", 1), msg("notifications", 2), msg("notifications", 3));
    await settle();
    const b = f.tab();
    b.client.connect();
    await settle();
    b.client.subscribe("notifications", () => {});
    await settle();
    f.upstream().receive(msg("notifications", 4));
    await settle();
    expect(a.got.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(b.got.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(f.upstream().frames("sub")).toHaveLength(1);
  });

  it("marks replayed history as such in every tab (lists fill silently; only news toasts)", async () => {
    const f = fabric();
    const a = f.tab();
    a.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice" });
    a.client.subscribe("notifications", () => {});
    await settle();
    const sub = f.upstream().frames("sub")[0]!;
    f.upstream().receive({ op: "ok", id: sub.id, epoch: "E1", seq: 2, replayed: 2 } as ServerFrame, msg("notifications", 1), msg("notifications", 2));
    await settle();
    f.upstream().receive(msg("notifications", 3));
    await settle();
    const b = f.tab();
    b.client.connect();
    await settle();
    b.client.subscribe("notifications", () => {});
    await settle();
    f.upstream().receive(msg("notifications", 4));
    await settle();
    const marks = (t: typeof a) => t.got.map((m) => [m.seq, m.history === true]);
    expect(marks(a)).toEqual([[1, true], [2, true], [3, false], [4, false]]);
    // A tab joining late starts with the recent past as history, then news.
    expect(marks(b)).toEqual([[1, true], [2, true], [3, true], [4, false]]);
  });

  it("gives every tab the recent ticks a price chart asks for (priceHistory)", async () => {
    const f = fabric();
    const a = f.tab("alice", { priceHistory: 3 });
    a.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice" });
    a.client.subscribe("prices:AAPL", () => {});
    await settle();
    const sub = f.upstream().frames("sub")[0]!;
    expect(sub.history).toBe(3);
    f.upstream().receive({ op: "ok", id: sub.id, replayed: 3 }, msg("prices:AAPL", 10), msg("prices:AAPL", 11), msg("prices:AAPL", 12));
    await settle();
    const b = f.tab("alice", { priceHistory: 3 });
    b.client.connect();
    await settle();
    b.client.subscribe("prices:AAPL", () => {});
    await settle();
    f.upstream().receive(msg("prices:AAPL", 13));
    await settle();
    for (const t of [a, b]) {
      expect(t.got.map((m) => [m.seq, m.history === true])).toEqual([[10, true], [11, true], [12, true], [13, false]]);
      expect(t.client.history("prices:AAPL").map((m) => m.seq)).toEqual([11, 12, 13]);
    }
  });

  it("routes each command's reply to the tab that sent it, with its idempotency key unchanged", async () => {
    const f = fabric();
    const [a, b] = [f.tab(), f.tab()];
    a.client.connect();
    b.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice" });
    await settle();
    const ok = a.client.command("order.submit", { client_order_id: "A1", symbol: "AAPL", side: "buy", type: "market", quantity: "1" }, { key: "A1" });
    const bad = b.client.command("order.submit", { client_order_id: "B1", symbol: "AAPL", side: "buy", type: "market", quantity: "1e9" }, { key: "B1" });
    await settle();
    const cmds = f.upstream().frames("cmd");
    expect(cmds.map((c) => c.key).sort()).toEqual(["A1", "B1"]);
    const byKey = Object.fromEntries(cmds.map((c) => [c.key, c.id]));
    f.upstream().receive({ op: "err", id: byKey.B1, code: 603, reason: "insufficient funds" }, { op: "ok", id: byKey.A1, data: { status: "filled", order_id: "ord-1" } });
    await expect(ok).resolves.toEqual({ status: "filled", order_id: "ord-1" });
    await expect(bad).rejects.toMatchObject({ code: 603, codeName: "insufficient_funds" });
  });

  it("mirrors the upstream reconnecting, and each tab gets what was missed exactly once", async () => {
    const f = fabric();
    const [a, b] = [f.tab(), f.tab()];
    a.client.connect();
    b.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice", conn_id: "c1" });
    a.client.subscribe("trades", () => {});
    b.client.subscribe("trades", () => {});
    await settle();
    answerSubs(f.upstream(), new Set(), 10);
    f.upstream().receive(msg("trades", 11));
    await settle();
    const welcomes: string[] = [];
    a.client.events.on("welcome", (w) => welcomes.push(String(w.conn_id)));
    f.upstream().drop();
    await settle();
    expect(a.client.state).toBe("reconnecting");
    expect(b.client.channelStatus("trades").status).toBe("pending");
    await new Promise((r) => setTimeout(r, 300)); // the upstream's backoff (random 0.5 of 500 ms)
    const up2 = f.upstream();
    expect(f.net.created).toHaveLength(2);
    up2.welcome({ user: "alice", conn_id: "c2" });
    await settle();
    const resub = up2.frames("sub")[0]!;
    expect(resub.since).toEqual({ epoch: "E1", seq: 11 });
    up2.receive({ op: "ok", id: resub.id, epoch: "E1", seq: 13, replayed: 2 } as ServerFrame, msg("trades", 12), msg("trades", 13));
    await settle();
    for (const t of [a, b]) {
      expect(t.client.state).toBe("connected");
      expect(t.client.channelStatus("trades").status).toBe("live");
      expect(t.got.map((m) => m.seq)).toEqual([11, 12, 13]);
    }
    expect(welcomes).toEqual(["c2"]);
  });

  it("asks a tab for a token when the upstream needs one", async () => {
    const f = fabric();
    const a = f.tab();
    a.client.connect();
    await settle();
    expect(a.getToken).toHaveBeenCalledTimes(1); // the join's token opens the upstream
    f.upstream().welcome({ user: "alice" });
    await settle();
    f.upstream().drop({ code: 4003, reason: "token expired" });
    await new Promise((r) => setTimeout(r, 300));
    await settle();
    expect(a.getToken).toHaveBeenLastCalledWith({ reason: "expired" });
    expect(f.net.created).toHaveLength(2);
  });

  it("ends every tab with the upstream's do-not-reconnect code (a revoked user)", async () => {
    const f = fabric();
    const [a, b] = [f.tab(), f.tab()];
    a.client.connect();
    b.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice" });
    await settle();
    f.upstream().drop({ code: 4102, reason: "user revoked" });
    await settle();
    for (const t of [a, b]) {
      expect(t.client.state).toBe("disconnected");
      expect(t.client.error).toMatchObject({ code: 4102, codeName: "forbidden" });
    }
  });
});

describe("another user's tab", () => {
  it("gets a hub of its own: the share key is the origin's edge and the user", async () => {
    const f = fabric();
    const alice = f.tab("alice");
    const bob = f.tab("bob");
    alice.client.connect();
    bob.client.connect();
    await settle();
    expect(f.hubs.size).toBe(2);
    expect(f.net.created).toHaveLength(2);
    const [upAlice, upBob] = f.net.created as [FakeTransport, FakeTransport];
    upAlice.welcome({ user: "alice" });
    upBob.welcome({ user: "bob" });
    alice.client.subscribe("notifications", () => {});
    bob.client.subscribe("notifications", () => {});
    await settle();
    answerSubs(upAlice, new Set());
    answerSubs(upBob, new Set());
    upAlice.receive(msg("notifications", 1, { text: "for alice" }));
    await settle();
    expect(alice.got.map((m) => m.data)).toEqual([{ text: "for alice" }]);
    expect(bob.got).toEqual([]);
  });

  it("is refused by a hub of another subject, and connects on its own", async () => {
    const f = fabric({ ignoreKey: true }); // a host that routes every tab to the same hub
    const alice = f.tab("alice");
    alice.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice" });
    alice.client.subscribe("notifications", () => {});
    await settle();
    answerSubs(f.upstream(), new Set());
    const bob = f.tab("bob");
    bob.client.connect();
    await settle();
    expect(bob.client.shared).toBe(false);
    expect(f.net.created).toHaveLength(2); // bob's own connection
    const own = f.net.last();
    own.open();
    expect(own.sent[0]).toMatchObject({ op: "auth", token: tokenFor("bob") });
    (f.net.created[0] as FakeTransport).receive(msg("notifications", 2, { text: "for alice" }));
    await settle();
    expect(bob.got).toEqual([]);
    expect(alice.got.map((m) => m.seq)).toEqual([2]);
  });

  it("refuses every tab when the edge welcomes the upstream as someone else", async () => {
    const f = fabric();
    const a = f.tab("alice");
    a.client.connect();
    await settle();
    f.upstream().welcome({ user: "mallory" });
    await settle();
    expect(a.client.shared).toBe(false);
    expect(f.net.created.length).toBe(2); // the tab's own connection
    expect(f.engines[0]!.state).toBe("disconnected");
  });
});

describe("handover", () => {
  it("resumes every tab from its own position on the next hub: nothing lost, nothing twice", async () => {
    const f = fabric({ expectTabs: true });
    const [a, b, c] = [f.tab(), f.tab(), f.tab()];
    for (const t of [a, b, c]) {
      t.client.connect();
      t.client.subscribe("notifications", () => {});
    }
    await settle();
    const key = [...f.hubs.keys()][0]!;
    f.upstream().welcome({ user: "alice" });
    await settle();
    answerSubs(f.upstream(), new Set(), 20);
    f.upstream().receive(msg("notifications", 21), msg("notifications", 22));
    await settle();
    // A command in flight when the leader leaves is sent again, with its key, to the next hub.
    const order = b.client.command("order.submit", { client_order_id: "K1", symbol: "AAPL", side: "buy", type: "market", quantity: "1" }, { key: "K1" });
    await settle();
    expect(f.upstream().frames("cmd").map((x) => x.key)).toEqual(["K1"]);

    // The leader (tab a) leaves; its hub's upstream goes with it.
    a.client.disconnect();
    f.handover(key);
    await settle(40);
    expect(b.client.state).toBe("reconnecting");
    await new Promise((r) => setTimeout(r, 20));
    const up2 = f.upstream();
    expect(f.net.created).toHaveLength(2);
    up2.welcome({ user: "alice" });
    await settle();
    const sub = up2.frames("sub")[0]!;
    expect(sub).toMatchObject({ ch: "notifications", since: { epoch: "E1", seq: 22 } });
    expect(up2.frames("cmd").map((x) => x.key)).toEqual(["K1"]);
    // Published while no hub held the connection: replayed from the position, once.
    up2.receive({ op: "ok", id: sub.id, epoch: "E1", seq: 24, replayed: 2 } as ServerFrame, msg("notifications", 23), msg("notifications", 24));
    up2.receive({ op: "ok", id: up2.frames("cmd")[0]!.id, data: { status: "filled" } });
    await settle();
    await expect(order).resolves.toEqual({ status: "filled" });
    for (const t of [b, c]) {
      expect(t.client.state).toBe("connected");
      expect(t.got.map((m) => m.seq)).toEqual([21, 22, 23, 24]);
    }
  });

  it("starts the upstream subscription from the oldest position the rejoining tabs hold", async () => {
    const net = fakeNetwork();
    const posted: HubMessage[] = [];
    const hub = new Hub({
      subject: "alice",
      createEngine: (settings, getToken) => new TickmeshClient({ url: settings.url, getToken, share: false, environment: fakeEnvironment(), transportFactories: net.factories }),
      post: (m) => posted.push(structuredClone(m)),
      expectedTabs: async () => ["b", "c"],
    });
    const settings = { url: "http://edge.test" };
    hub.receive({ t: "join", tab: "b", token: tokenFor("alice"), settings });
    hub.receive({ t: "frame", tab: "b", hub: hub.id, frame: { op: "sub", id: 1, ch: "news", since: { epoch: "E1", seq: 6 } } });
    await settle();
    expect(net.created).toHaveLength(0); // waiting for tab c, which held the old leader's connection too
    hub.receive({ t: "join", tab: "c", token: tokenFor("alice"), settings });
    hub.receive({ t: "frame", tab: "c", hub: hub.id, frame: { op: "sub", id: 1, ch: "news", since: { epoch: "E1", seq: 4 } } });
    await new Promise((r) => setTimeout(r, 30));
    await settle();
    const up = net.last();
    up.welcome({ user: "alice" });
    const sub = up.frames("sub")[0]!;
    expect(sub.since).toEqual({ epoch: "E1", seq: 4 });
    up.receive({ op: "ok", id: sub.id, epoch: "E1", seq: 7, replayed: 3 } as ServerFrame, msg("news", 5), msg("news", 6), msg("news", 7));
    const to = (seq: number) => posted.filter((m) => m.t === "frame" && m.frame.op === "msg" && m.frame.seq === seq).map((m) => m.to);
    for (const seq of [5, 6, 7]) expect(to(seq)).toEqual([["b", "c"]]); // each tab drops what it has
    const acks = posted.filter((m) => m.t === "frame" && m.frame.op === "ok");
    expect(acks.map((m) => [m.to, (m as { frame: { recovered?: boolean } }).frame.recovered])).toEqual([["b", true], ["c", true]]);
  });

  it("tells a tab further behind than its log reaches that messages were lost, never a silent gap", async () => {
    const net = fakeNetwork();
    const posted: HubMessage[] = [];
    const hub = new Hub({
      subject: "alice",
      createEngine: (settings, getToken) => new TickmeshClient({ url: settings.url, getToken, share: false, environment: fakeEnvironment(), transportFactories: net.factories }),
      post: (m) => posted.push(structuredClone(m)),
    });
    const settings = { url: "http://edge.test" };
    hub.receive({ t: "join", tab: "b", token: tokenFor("alice"), settings });
    hub.receive({ t: "frame", tab: "b", hub: hub.id, frame: { op: "sub", id: 1, ch: "news", since: { epoch: "E1", seq: 10 } } });
    await settle();
    const up = net.last();
    up.welcome({ user: "alice" });
    up.receive({ op: "ok", id: up.frames("sub")[0]!.id, epoch: "E1", seq: 11, replayed: 1 } as ServerFrame, msg("news", 11));
    hub.receive({ t: "join", tab: "late", token: tokenFor("alice"), settings });
    hub.receive({ t: "frame", tab: "late", hub: hub.id, frame: { op: "sub", id: 9, ch: "news", since: { epoch: "E1", seq: 3 } } });
    const ack = posted.find((m) => m.t === "frame" && m.to === "late" && m.frame.op === "ok");
    expect(ack).toMatchObject({ frame: { id: 9, recovered: false, reason: "position_expired", first_seq: 11, replayed: 1 } });
  });
});

describe("opting out", () => {
  it("share: false gives the tab its own connection", async () => {
    const net = fakeNetwork();
    const client = new TickmeshClient({ url: "http://edge.test", getToken: async () => tokenFor("alice"), share: false, environment: fakeEnvironment(), transportFactories: net.factories });
    client.connect();
    await settle();
    net.last().welcome();
    expect(client.shared).toBe(false);
    expect(client.transportName).toBe("websocket");
    client.disconnect();
  });
});

describe("a feature flag switching the codec of a shared connection", () => {
  it("reconnects the hub's one upstream with the new codec; every tab stays connected and resumes", async () => {
    const f = fabric();
    const [a, b] = [f.tab(), f.tab()];
    a.client.connect();
    b.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice" });
    await settle();
    a.client.subscribe("trades", () => {});
    b.client.subscribe("trades", () => {});
    await settle();
    answerSubs(f.upstream(), new Set(), 40);
    await settle();
    const { msgpackCodec } = await import("../src/msgpack.js");
    a.client.setCodec(msgpackCodec);
    b.client.setCodec(msgpackCodec); // the same flag reaches every tab of the user
    await settle();
    expect(f.net.created).toHaveLength(2); // one reconnect, not one per tab
    const up = f.upstream();
    expect(up.options.codec.subprotocol).toBe("tickmesh.v1.msgpack");
    up.welcome({ user: "alice" });
    await settle();
    expect(up.frames("sub")).toEqual([expect.objectContaining({ ch: "trades", since: { epoch: "E1", seq: 40 } })]);
    answerSubs(up, new Set(), 40); // resumed at 40: nothing missed meanwhile
    up.receive(msg("trades", 41));
    await settle();
    for (const t of [a, b]) {
      expect(t.client.state).toBe("connected");
      expect(t.got.map((m) => m.seq)).toEqual([41]);
    }
  });
});

describe("presence through a shared connection", () => {
  it("joins a topic once for every tab, answers each tab, and leaves with the last one", async () => {
    const f = fabric();
    const [a, b] = [f.tab(), f.tab()];
    a.client.connect();
    b.client.connect();
    await settle();
    f.upstream().welcome({ user: "alice", conn_id: "c1" });
    await settle();
    const ma = a.client.join("symbol.AAPL", { tab: "a" });
    await settle();
    const up = f.upstream();
    expect(up.frames("join")).toMatchObject([{ topic: "symbol.AAPL", data: { tab: "a" } }]);
    up.receive({ op: "ok", id: up.frames("join")[0]!.id });
    await settle();
    expect(a.client.membershipStatus("symbol.AAPL").status).toBe("joined");
    const mb = b.client.join("symbol.AAPL");
    await settle();
    expect(up.frames("join")).toHaveLength(1); // the user is one member, however many tabs
    expect(b.client.membershipStatus("symbol.AAPL").status).toBe("joined");
    // A tab subscribing late starts from the list the hub assembled.
    a.client.subscribe("presence:symbol.AAPL", () => {});
    await settle();
    up.receive({ op: "ok", id: up.frames("sub").at(-1)!.id },
      msg("presence:symbol.AAPL", 5, { type: "snapshot", count: 1, conns: 1, limit: 100, members: [{ user: "alice", name: "Alice", conns: 1, since: 1795630000000000 }] }));
    up.receive(msg("presence:symbol.AAPL", 6, { type: "delta", count: 2, conns: 2, limit: 100, joins: [{ user: "bob", name: "Bob", conns: 1, since: 1795630000000001 }] }));
    await settle();
    b.client.subscribe("presence:symbol.AAPL", () => {});
    await settle();
    expect(b.client.presence("presence:symbol.AAPL")).toMatchObject({ count: 2, version: 6 });
    up.receive(msg("presence:symbol.AAPL", 7, { type: "delta", count: 1, conns: 1, limit: 100, leaves: ["bob"] }));
    await settle();
    expect(b.client.presence("presence:symbol.AAPL")!.members.map((m) => m.user)).toEqual(["alice"]);
    ma.leave();
    await settle();
    expect(up.frames("leave")).toHaveLength(0);
    mb.leave();
    await settle();
    expect(up.frames("leave")).toMatchObject([{ topic: "symbol.AAPL" }]);
  });
});
