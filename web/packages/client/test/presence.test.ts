import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { TickmeshClient } from "../src/client.js";
import { PresenceBook } from "../src/presence.js";
import { fakeEnvironment, fakeNetwork, flush } from "./fakes.js";

const T = 1_795_630_000_000_000;
const member = (user: string, since = T, conns = 1) => ({ user, name: user.toUpperCase(), conns, since });

async function connected() {
  const net = fakeNetwork();
  const client = new TickmeshClient({
    url: "http://edge.test", getToken: async () => "tok", environment: fakeEnvironment(),
    transportFactories: net.factories, backoff: { random: () => 0.5 },
  });
  client.connect();
  await flush();
  net.last().welcome();
  return { client, net };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("PresenceBook", () => {
  it("assembles a snapshot and the deltas that follow it, and refuses a gap", () => {
    const book = new PresenceBook();
    expect(book.apply("presence:desk.support", 7, { type: "snapshot", count: 1, conns: 1, limit: 100, members: [member("sam")] })).toBe(true);
    expect(book.apply("presence:desk.support", 8, { type: "delta", count: 2, conns: 3, limit: 100, joins: [member("ann", T - 5, 2)] })).toBe(true);
    expect(book.state("presence:desk.support")!.members.map((m) => m.user)).toEqual(["ann", "sam"]); // by since
    expect(book.apply("presence:desk.support", 10, { type: "delta", count: 1, conns: 1, limit: 100, leaves: ["ann"] })).toBe(false);
    expect(book.state("presence:desk.support")!.count).toBe(2); // unchanged by the refused delta
    expect(book.snapshot("presence:desk.support", 0)!.data).toMatchObject({ type: "snapshot", count: 2 });
  });
});

describe("presence on the client", () => {
  it("joins, updates, leaves, and joins again after a reconnect", async () => {
    const { client, net } = await connected();
    const m = client.join("symbol.AAPL", { viewing: "chart" });
    const t = net.last();
    const [join] = t.frames("join");
    expect(join).toMatchObject({ topic: "symbol.AAPL", data: { viewing: "chart" } });
    expect(client.membershipStatus("symbol.AAPL").status).toBe("joining");
    t.receive({ op: "ok", id: join!.id });
    expect(client.membershipStatus("symbol.AAPL").status).toBe("joined");
    const second = client.join("symbol.AAPL"); // another holder: no second join on the wire
    expect(t.frames("join")).toHaveLength(1);
    m.update({ viewing: "ticket" });
    expect(t.frames("join").at(-1)).toMatchObject({ data: { viewing: "ticket" } });
    t.drop();
    await vi.advanceTimersByTimeAsync(2000);
    net.last().welcome();
    expect(net.last().frames("join")).toMatchObject([{ topic: "symbol.AAPL", data: { viewing: "ticket" } }]);
    m.leave();
    await flush();
    expect(net.last().frames("leave")).toHaveLength(0); // the other holder still wants it
    second.leave();
    await flush();
    expect(net.last().frames("leave")).toMatchObject([{ topic: "symbol.AAPL" }]);
  });

  it("a refused join, and a membership the server ends, say why", async () => {
    const { client, net } = await connected();
    const seen: string[] = [];
    client.events.on("membership", (e) => seen.push(`${e.status}${e.error ? ":" + e.error.code : ""}`));
    client.join("desk.support");
    const t = net.last();
    t.receive({ op: "err", id: t.frames("join")[0]!.id, code: 301, reason: "support staff only" });
    expect(client.membershipStatus("desk.support")).toMatchObject({ status: "error", error: { code: 301 } });
    client.join("watchlist.AbCdEfGhIjKlMnOpQrStU1");
    t.receive({ op: "ok", id: t.frames("join")[1]!.id });
    t.receive({ op: "leave", topic: "watchlist.AbCdEfGhIjKlMnOpQrStU1", code: 301, reason: "access revoked" });
    expect(client.membershipStatus("watchlist.AbCdEfGhIjKlMnOpQrStU1").error?.code).toBe(301);
    expect(seen).toContain("error:301");
  });

  it("starts again from a snapshot when a delta is missed, and serves the assembled list to late listeners", async () => {
    const { client, net } = await connected();
    const got: unknown[] = [];
    client.subscribe("presence:symbol.AAPL", (m) => got.push(m.data));
    const t = net.last();
    const [sub] = t.frames("sub");
    t.receive({ op: "ok", id: sub!.id }, { op: "msg", ch: "presence:symbol.AAPL", seq: 3, data: { type: "snapshot", count: 1, conns: 1, limit: 100, members: [member("bob")] } });
    t.receive({ op: "msg", ch: "presence:symbol.AAPL", seq: 4, data: { type: "delta", count: 2, conns: 2, limit: 100, joins: [member("cy", T + 1)] } });
    expect(client.presence("presence:symbol.AAPL")!.members.map((m) => m.user)).toEqual(["bob", "cy"]);
    const late: unknown[] = [];
    client.subscribe("presence:symbol.AAPL", (m) => late.push(m.data));
    await flush();
    expect(late).toMatchObject([{ type: "snapshot", count: 2, members: [{ user: "bob" }, { user: "cy" }] }]);
    t.receive({ op: "msg", ch: "presence:symbol.AAPL", seq: 6, data: { type: "delta", count: 1, conns: 1, limit: 100, leaves: ["bob"] } });
    expect(got).toHaveLength(2); // the gap is not delivered...
    const [unsub] = t.frames("unsub");
    expect(unsub).toMatchObject({ ch: "presence:symbol.AAPL" }); // ...the channel starts over
    t.receive({ op: "ok", id: unsub!.id });
    expect(t.frames("sub")).toHaveLength(2);
    // A snapshot from another edge may have a lower version: it replaces everything.
    t.receive({ op: "ok", id: t.frames("sub")[1]!.id }, { op: "msg", ch: "presence:symbol.AAPL", seq: 1, data: { type: "snapshot", count: 1, conns: 1, limit: 100, members: [member("cy", T + 1)] } });
    expect(client.presence("presence:symbol.AAPL")).toMatchObject({ count: 1, version: 1 });
  });

  it("a subscription the server ends is an error with its code", async () => {
    const { client, net } = await connected();
    client.subscribe("watchlist:AbCdEfGhIjKlMnOpQrStU1", () => {});
    const t = net.last();
    t.receive({ op: "ok", id: t.frames("sub")[0]!.id });
    t.receive({ op: "unsub", ch: "watchlist:AbCdEfGhIjKlMnOpQrStU1", code: 301, reason: "access revoked" });
    expect(client.channelStatus("watchlist:AbCdEfGhIjKlMnOpQrStU1")).toMatchObject({ status: "error", error: { code: 301 } });
  });
});
