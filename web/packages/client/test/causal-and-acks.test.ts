import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AckBatch, MAX_ACK_SEQS } from "../src/acks.js";
import { CausalHold } from "../src/causal.js";
import { TickmeshClient, type ClientOptions } from "../src/client.js";
import type { TransportName } from "../src/transport.js";
import { fakeEnvironment, fakeNetwork, flush, type FakeTransport } from "./fakes.js";

async function connected(options: Partial<ClientOptions> = {}) {
  const net = fakeNetwork();
  const client = new TickmeshClient({
    url: "http://edge.test",
    getToken: () => "tok",
    environment: fakeEnvironment(),
    transportFactories: net.factories,
    backoff: { random: () => 0 },
    ...options,
  });
  client.connect();
  await flush();
  net.last().welcome();
  return { client, net };
}

function okSub(t: FakeTransport, ch: string, extra: Record<string, unknown> = {}) {
  const sub = t.frames("sub").filter((f) => f.ch === ch).at(-1)!;
  t.receive({ op: "ok", id: sub.id, ...extra });
}

const fill = (seq: number) => ({ op: "msg" as const, ch: "trades", seq, data: { exec_id: `x${seq}`, status: "filled" } });
const value = (version: number, tradeSeq?: number) =>
  ({ op: "msg" as const, ch: "portfolio", seq: version, data: { total_value: String(version), ...(tradeSeq ? { trade_seq: tradeSeq } : {}) } });

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("CausalHold (sans I/O)", () => {
  const live = (seq: number | undefined) => ({ subscribed: true, seq });

  it("holds a value naming a fill not reached yet, and lets it go once reached", () => {
    const hold = new CausalHold<string>(2000);
    expect(hold.offer("v1", 10, live(8), 0)).toBe(true);
    expect(hold.release(live(9))).toBeUndefined();
    expect(hold.offer("v2", undefined, live(9), 5)).toBe(true); // newer value, still includes fill 10
    expect(hold.release(live(10))).toBe("v2");
    expect(hold.offer("v3", 10, live(10), 6)).toBe(false);
  });

  it("never holds without a trades subscription, and gives up after holdMs once per position", () => {
    const hold = new CausalHold<string>(2000);
    expect(hold.offer("a", 50, { subscribed: false, seq: undefined }, 0)).toBe(false);
    expect(hold.offer("b", 60, live(undefined), 100)).toBe(true);
    expect(hold.deadline).toBe(2100);
    expect(hold.expire(2099)).toBeUndefined();
    expect(hold.expire(2100)).toBe("b");
    expect(hold.offer("c", 60, live(40), 2200)).toBe(false); // timed out: counts as reached
    expect(new CausalHold<string>(0).offer("d", 60, live(1), 0)).toBe(false); // 0 turns it off
  });
});

describe("AckBatch", () => {
  it("sends what was received since the last ack, at most 256 positions a frame", () => {
    const batch = new AckBatch();
    for (let i = 1; i <= MAX_ACK_SEQS + 2; i++) batch.add(i);
    const frames = batch.take("trades");
    expect(frames.map((f) => f.seqs.length)).toEqual([MAX_ACK_SEQS, 2]);
    expect(frames[0]).toMatchObject({ op: "ack", ch: "trades" });
    expect(batch.take("trades")).toEqual([]);
  });
});

describe("causal order of trades and portfolio in the client", () => {
  async function both() {
    const s = await connected();
    const shown: string[] = [];
    s.client.subscribe("trades", (m) => shown.push(`fill ${m.seq}`));
    s.client.subscribe("portfolio", (m) => shown.push(`value ${(m.data as { total_value: string }).total_value}`));
    const t = s.net.last();
    okSub(t, "trades", { epoch: "e1", seq: 100, recovered: true, replayed: 0 });
    okSub(t, "portfolio");
    return { ...s, t, shown };
  }

  it("shows a fill before the value that includes it, whatever order they arrive in", async () => {
    const { t, shown, client } = await both();
    t.receive(value(1, 101));
    expect(shown).toEqual([]);
    expect(client.last("portfolio")).toBeUndefined(); // not shown to late listeners either
    t.receive(fill(101));
    expect(shown).toEqual(["fill 101", "value 1"]);
    t.receive(value(2, 101), value(3)); // already shown fill; a value naming none
    expect(shown).toEqual(["fill 101", "value 1", "value 2", "value 3"]);
  });

  it("keeps only the newest held value, and lets it go after causalHoldMs if the fill never comes", async () => {
    const { t, shown } = await both();
    t.receive(value(1, 105), value(2, 105));
    await vi.advanceTimersByTimeAsync(1999);
    expect(shown).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(shown).toEqual(["value 2"]);
  });

  it("a value naming a fill before the trades subscription's start is shown at once", async () => {
    const { t, shown } = await both();
    t.receive(value(1, 90));
    expect(shown).toEqual(["value 1"]);
  });
});

describe("acks of trades", () => {
  for (const [name, expected] of [["websocket", true], ["sse", false]] as Array<[TransportName, boolean]>) {
    it(`${expected ? "sends" : "does not send"} acks over ${name}`, async () => {
      const { client, net } = await connected({ transports: [name], share: false });
      client.subscribe("trades", () => {});
      const t = net.last();
      okSub(t, "trades", { epoch: "e1", seq: 1, recovered: true, replayed: 0 });
      t.receive(fill(2), fill(3));
      expect(t.frames("ack")).toEqual([]);
      await vi.advanceTimersByTimeAsync(250);
      t.receive(fill(4));
      await vi.advanceTimersByTimeAsync(250);
      const acks = t.sent.filter((f) => f.op === "ack");
      expect(acks).toEqual(expected ? [{ op: "ack", ch: "trades", seqs: [2, 3] }, { op: "ack", ch: "trades", seqs: [4] }] : []);
    });
  }
});
