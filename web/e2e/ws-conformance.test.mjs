// The edge's direct WebSocket engine as Chromium's own WebSocket sees it (issue 11): the third
// independent client beside websockets and aiohttp (tests/edge/test_ws_conformance.py). A raw
// `WebSocket` in the page, no tickmesh client: exact text lengths over every length encoding,
// binary frames (MessagePack), the server's heartbeat, and a close with code and reason.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openBrowser } from "./support/browser.mjs";
import { PYTHON, REPO, startStack, t } from "./support/stack.mjs";

const SUPPORT = join(REPO, "web/e2e/support");
let stack;
let browser;

before(async () => {
  // The synthetic feed keeps to AAPL, so this test owns MSFT's ticks; a 1 s heartbeat.
  stack = await startStack("ws-conformance", { FEED_SYMBOLS: "AAPL", EDGE_HEARTBEAT_S: "1" });
  browser = await openBrowser();
  await browser.page.goto(stack.url + "/");
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

function publishTick(seq, length) {
  execFileSync(PYTHON, [join(SUPPORT, "tick.py"), stack.natsUrl, "MSFT", String(seq), String(length)], { cwd: REPO });
}

// In the page: a raw WebSocket that logs every message with its byte length and type.
const OPEN = `async ({ user, protocol, pack }) => {
  const token = (await (await fetch("/dev/token", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user }) })).json()).token;
  const url = location.origin.replace(/^http/, "ws") + "/ws";
  const ws = new WebSocket(url, protocol ? [protocol] : undefined);
  ws.binaryType = "arraybuffer";
  const log = { messages: [], closed: null, protocol: null };
  window.__ws = ws; window.__log = log;
  ws.onmessage = (e) => {
    const binary = typeof e.data !== "string";
    const bytes = binary ? e.data.byteLength : new TextEncoder().encode(e.data).length;
    log.messages.push({ binary, bytes, text: binary ? null : e.data, first: binary ? new Uint8Array(e.data)[0] : null });
    if (!binary && e.data.startsWith('{"op":"ping"')) ws.send('{"op":"pong"}');
  };
  ws.onclose = (e) => { log.closed = { code: e.code, reason: e.reason, clean: e.wasClean }; };
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  log.protocol = ws.protocol;
  ws.send(pack ? pack(token) : JSON.stringify({ op: "auth", id: 1, token }));
  return true;
}`;

async function open(user, protocol = "tickmesh.v1.json") {
  await browser.page.evaluate(`(${OPEN})(${JSON.stringify({ user, protocol })})`);
}

const waitFor = (predicate, arg) => browser.page.waitForFunction(predicate, arg, { timeout: t(15000) });

describe("the direct engine in Chromium", () => {
  it("delivers text frames of 125, 126, 65535 and 65536 bytes whole", async () => {
    await open("alice");
    await waitFor(() => window.__log.messages.some((m) => m.text?.includes('"welcome"')));
    await browser.page.evaluate(() => window.__ws.send(JSON.stringify({ op: "sub", id: 2, ch: "prices:MSFT" })));
    await waitFor(() => window.__log.messages.some((m) => m.text === '{"op":"ok","id":2}'));
    const lengths = [125, 126, 65535, 65536];
    for (const [i, length] of lengths.entries()) {
      publishTick(1000 + i, length);
      await waitFor((seq) => window.__log.messages.some((m) => m.text?.includes(`"seq":${seq},`)), 1000 + i);
    }
    const got = await browser.page.evaluate(() =>
      window.__log.messages.filter((m) => m.text?.startsWith('{"op":"msg"')).map((m) => m.bytes));
    assert.deepEqual(got.slice(-4), lengths);
  });

  it("sends the heartbeat and closes with code and reason", async () => {
    await waitFor(() => window.__log.messages.some((m) => m.text === '{"op":"ping"}'));
    execFileSync(PYTHON, [join(SUPPORT, "revoke.py"), stack.natsUrl, "alice"], { cwd: REPO });
    await waitFor(() => window.__log.closed !== null);
    const closed = await browser.page.evaluate(() => window.__log.closed);
    assert.deepEqual(closed, { code: 4102, reason: "user revoked", clean: true });
  });

  it("speaks MessagePack in binary frames", async () => {
    // A minimal MessagePack encoder for the auth frame (a map of short strings and an int).
    const PACK = `(token) => {
      const enc = new TextEncoder();
      const str = (s) => {
        const b = enc.encode(s);
        if (b.length < 32) return [0xa0 | b.length, ...b];
        return b.length < 256 ? [0xd9, b.length, ...b] : [0xda, b.length >> 8, b.length & 0xff, ...b];
      };
      return new Uint8Array([0x83, ...str("op"), ...str("auth"), ...str("id"), 0x01, ...str("token"), ...str(token)]);
    }`;
    await browser.page.evaluate(`(${OPEN})({ user: "bob", protocol: "tickmesh.v1.msgpack", pack: ${PACK} })`);
    await waitFor(() => window.__log.messages.length > 0);
    const log = await browser.page.evaluate(() => window.__log);
    assert.equal(log.protocol, "tickmesh.v1.msgpack");
    assert.equal(log.messages[0].binary, true);
    assert.equal(log.messages[0].first & 0xf0, 0x80); // a map: the welcome
  });
});
