// The built @tickmesh/client under plain Node.js (no browser, no DOM) against the real stack:
// once with the `ws` package injected as its WebSocket, once with no WebSocket and no
// EventSource at all, where it must skip both and go Live over long polling (issue 17).
// Run with `npm run e2e` (after `npm run build`).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { WebSocket as WsWebSocket } from "ws";
import { REPO, startStack, t } from "./support/stack.mjs";

const DIST = join(REPO, "web/packages/client/dist/index.js");

let stack;
let client;
before(async () => {
  if (!existsSync(DIST)) throw new Error("the client is not built: run `npm run build` in web/ first");
  // Whatever this Node.js has built in (22+ has a WebSocket), these tests decide what exists.
  delete globalThis.WebSocket;
  delete globalThis.EventSource;
  client = await import("@tickmesh/client");
  stack = await startStack("node-client");
});
after(async () => {
  await stack?.stop();
});

/** A token source like an application's: the dev stack signs tokens for its seeded users. */
function devTokens(user) {
  return async () => {
    const resp = await fetch(`${stack.url}/dev/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user }),
    });
    if (!resp.ok) throw new Error(`token refused: HTTP ${resp.status}`);
    return (await resp.json()).token;
  };
}

/** Resolves with the first value `check` returns that is not undefined, checked on each event. */
function until(emitterOn, check, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let off = () => {};
    const timer = setTimeout(() => (off(), reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))), timeoutMs);
    const test = (...args) => {
      const value = check(...args);
      if (value === undefined) return;
      clearTimeout(timer);
      off();
      resolve(value);
    };
    off = emitterOn(test);
    test();
  });
}

const connected = (c) =>
  until((fn) => c.events.on("state", fn), () => (c.state === "connected" ? true : undefined), t(20000), `connected (state: ${c.state})`);

/** Two different prices of `symbol` in a row: the price stream is live. */
function pricesMove(c, symbol) {
  const seen = [];
  return until(
    (fn) => c.subscribe(`prices:${symbol}`, fn),
    (m) => {
      if (m) seen.push(m.data.last ?? m.data.price ?? JSON.stringify(m.data));
      return new Set(seen).size >= 2 ? seen : undefined;
    },
    t(20000),
    `two different ${symbol} prices`,
  );
}

/**
 * Submit a market order once `trades` is live (a trading screen subscribes to it at load, long
 * before the first order), and wait for both its reply and its execution there.
 */
async function orderFills(c, symbol) {
  const clientOrderId = `node-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const execution = until(
    (fn) => c.subscribe("trades", fn),
    (m) => (m && m.data.client_order_id === clientOrderId && m.data.status === "filled" ? m.data : undefined),
    t(20000),
    `the fill of ${clientOrderId} on trades`,
  );
  await until((fn) => c.events.on("subscription", fn), () => (c.channelStatus("trades").status === "live" ? true : undefined), t(20000), "trades live");
  const reply = await c.command("order.submit", { client_order_id: clientOrderId, symbol, side: "buy", type: "market", quantity: "1" }, { key: clientOrderId });
  assert.ok(["accepted", "filled"].includes(reply.status), `order reply: ${JSON.stringify(reply)}`);
  return execution;
}

describe("@tickmesh/client under plain Node.js against the real edge", { timeout: t(120000) }, () => {
  it("runs over an injected `ws` WebSocket: live prices, a filled order", async () => {
    const c = new client.TickmeshClient({ url: stack.url, getToken: devTokens("alice"), WebSocket: WsWebSocket });
    try {
      c.subscribe("trades", () => {});
      c.connect();
      await connected(c);
      assert.equal(c.transportName, "websocket");
      assert.deepEqual(c.skippedTransports, { sse: "no EventSource in this environment" });
      assert.equal(c.session.user, "alice");
      await pricesMove(c, "AAPL");
      const fill = await orderFills(c, "AAPL");
      assert.equal(fill.symbol, "AAPL");
    } finally {
      c.disconnect();
    }
  });

  it("acknowledges a fill for the audit trail, and shows it before the portfolio value that includes it", async () => {
    const c = new client.TickmeshClient({ url: stack.url, getToken: devTokens("alice"), WebSocket: WsWebSocket });
    const shown = [];
    try {
      c.subscribe("portfolio", (m) => shown.push({ ch: "portfolio", tradeSeq: m.data.trade_seq }));
      c.subscribe("trades", (m) => shown.push({ ch: "trades", seq: m.seq, coid: m.data.client_order_id, status: m.data.status }));
      c.connect();
      await connected(c);
      await pricesMove(c, "AAPL");
      const fill = await orderFills(c, "AAPL");
      const fillAt = shown.findIndex((e) => e.ch === "trades" && e.coid === fill.client_order_id && e.status === "filled");
      const seq = shown[fillAt].seq;
      // The valuation that includes the fill names it, and is shown after it.
      await until((fn) => c.events.on("message", fn), () => (shown.some((e) => e.ch === "portfolio" && e.tradeSeq >= seq) ? true : undefined),
        t(20000), `a portfolio value naming trade ${seq}`);
      const valueAt = shown.findIndex((e) => e.ch === "portfolio" && e.tradeSeq >= seq);
      assert.ok(valueAt > fillAt, JSON.stringify(shown));
      // Support asks the edge: this connection received the fill, and acknowledged it.
      const admin = await devTokens("admin")();
      const deadline = Date.now() + t(20000);
      let answer;
      for (;;) {
        const resp = await fetch(`${stack.url}/cmd`, {
          method: "POST", headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
          body: JSON.stringify({ name: "audit.trades", data: { user: "alice", order: fill.client_order_id } }),
        });
        answer = await resp.json();
        assert.equal(answer.op, "ok", JSON.stringify(answer));
        const mine = answer.data.deliveries.filter((r) => r.conn_id === c.session.conn_id && r.seq === seq);
        if (mine.some((r) => r.event === "delivered") && mine.some((r) => r.event === "acked")) break;
        assert.ok(Date.now() < deadline, `no delivery and ack of ${seq} by ${c.session.conn_id}: ${JSON.stringify(answer)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const execution = answer.data.executions.find((e) => e.seq === seq);
      assert.ok(execution.delivered_at && execution.acked_at >= execution.delivered_at, JSON.stringify(execution));
    } finally {
      c.disconnect();
    }
  });

  it("speaks MessagePack through `ws` (binary frames)", async () => {
    const { msgpackCodec } = await import("@tickmesh/client/msgpack");
    const c = new client.TickmeshClient({ url: stack.url, getToken: devTokens("bob"), WebSocket: WsWebSocket, codec: msgpackCodec });
    try {
      c.connect();
      await connected(c);
      assert.equal(c.session.proto, "tickmesh.v1.msgpack");
      await pricesMove(c, "MSFT");
    } finally {
      c.disconnect();
    }
  });

  it("with no WebSocket and no EventSource, skips both, says why, and goes Live over long polling", async () => {
    assert.equal(globalThis.WebSocket, undefined);
    assert.equal(globalThis.EventSource, undefined);
    const c = new client.TickmeshClient({ url: stack.url, getToken: devTokens("alice") });
    try {
      const states = [];
      c.events.on("state", (s) => states.push(s));
      // Subscribed from the start, as a trading screen is. A long poll answers when a message is
      // due (or after EDGE_POLL_WAIT_S), so the stream must carry a busy channel: with only a
      // quiet one, the first answer, and with it `connected`, would wait for that long.
      c.subscribe("trades", () => {});
      c.subscribe("prices:AAPL", () => {});
      c.connect();
      assert.match(states[0].reason, /skipped websocket \(no WebSocket in this environment\), sse \(no EventSource in this environment\)/);
      await connected(c);
      assert.equal(c.transportName, "polling");
      await pricesMove(c, "AAPL");
      const fill = await orderFills(c, "AAPL");
      assert.equal(fill.symbol, "AAPL");
    } finally {
      c.disconnect();
    }
  });
});
