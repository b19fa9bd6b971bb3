import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonCodec } from "../src/codec.js";
import type { ServerFrame } from "../src/frames.js";
import type { CloseInfo } from "../src/transport.js";
import { pollingTransport } from "../src/transport-poll.js";

// A scripted edge over fetch: the real /ticket and /poll run in the browser tests (web/e2e).
function fakeEdge(polls: Array<{ frames: unknown[]; cursor: string } | number>) {
  const requests: Array<{ url: URL; init?: RequestInit }> = [];
  const fetch = vi.fn(async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    requests.push({ url, init });
    if (url.pathname === "/ticket") return new Response(JSON.stringify({ ticket: "T1", expires_in: 60 }));
    if (url.pathname === "/cmd") return new Response(JSON.stringify({ op: "ok", id: null, data: { order_id: "B-9" } }));
    const next = polls.shift();
    if (next === undefined) return new Promise<Response>(() => {}); // hangs like a long poll
    if (typeof next === "number") return new Response("{}", { status: next });
    return new Response(JSON.stringify(next));
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, requests };
}

const token = ["x", btoa(JSON.stringify({ exp: 1795634450 })), "y"].join(".");

function open(edge: ReturnType<typeof fakeEdge>, channels: string[], cursor?: string) {
  const frames: ServerFrame[] = [];
  const closes: CloseInfo[] = [];
  const cursors: string[] = [];
  const t = pollingTransport(
    { baseUrl: "http://edge.test", codec: jsonCodec, channels, cursor, onCursor: (c) => cursors.push(c), fetch: edge.fetch },
    { onOpen: () => t.send({ op: "auth", id: 1, token }), onFrame: (f) => frames.push(f), onClose: (c) => closes.push(c) },
  );
  return { t, frames, closes, cursors };
}

const settle = () => new Promise((r) => setTimeout(r, 10));

afterEach(() => vi.restoreAllMocks());

describe("long-polling transport", () => {
  it("trades the token for a ticket, polls with channels and cursor, and looks like a session", async () => {
    const edge = fakeEdge([
      { frames: [{ op: "ok", id: "prices:AAPL" }, { op: "msg", ch: "prices:AAPL", seq: 5, data: {} }], cursor: "C1" },
      { frames: [{ op: "msg", ch: "prices:AAPL", seq: 6, data: {} }], cursor: "C2" },
    ]);
    const { t, frames, cursors } = open(edge, ["prices:AAPL"], "C0");
    await settle();
    const ticketReq = edge.requests[0]!;
    expect(ticketReq.url.pathname).toBe("/ticket");
    expect((ticketReq.init?.headers as Record<string, string>).Authorization).toBe(`Bearer ${token}`);
    const polls = edge.requests.filter((r) => r.url.pathname === "/poll");
    expect(polls[0]!.url.searchParams.get("ticket")).toBe("T1");
    expect(polls[0]!.url.searchParams.getAll("ch")).toEqual(["prices:AAPL"]);
    expect(polls[0]!.url.searchParams.get("cursor")).toBe("C0");
    expect(polls[1]!.url.searchParams.get("cursor")).toBe("C1");
    expect(frames[0]).toMatchObject({ op: "welcome", id: 1, expires_at: 1795634450 });
    expect(cursors).toEqual(["C1", "C2"]);
    t.close();
  });

  it("gives a subscription reply (keyed by channel on HTTP) the client's request id", async () => {
    const edge = fakeEdge([{ frames: [{ op: "ok", id: "trades", epoch: "E", seq: 3 }], cursor: "C1" }]);
    const frames: ServerFrame[] = [];
    // Like the client: `sub` as soon as the welcome arrives, before the poll's frames are handled.
    const t = pollingTransport(
      { baseUrl: "http://edge.test", codec: jsonCodec, channels: ["trades"], fetch: edge.fetch },
      {
        onOpen: () => t.send({ op: "auth", id: 1, token }),
        onFrame: (f) => {
          frames.push(f);
          if (f.op === "welcome") t.send({ op: "sub", id: 7, ch: "trades" });
        },
        onClose: () => {},
      },
    );
    await settle();
    expect(frames.find((f) => f.op === "ok")).toMatchObject({ id: 7, epoch: "E", seq: 3 });
    expect(edge.requests.filter((r) => r.url.pathname === "/ticket")).toHaveLength(1); // no restart
    t.close();
  });

  it("sends commands to POST /cmd and answers with the client's id", async () => {
    const edge = fakeEdge([]);
    const { t, frames } = open(edge, []);
    await settle();
    t.send({ op: "cmd", id: 9, name: "order.cancel", key: "k", data: { order_id: "B-1" } });
    await settle();
    const cmd = edge.requests.find((r) => r.url.pathname === "/cmd")!;
    expect(JSON.parse(String(cmd.init?.body))).toEqual({ name: "order.cancel", key: "k", data: { order_id: "B-1" } });
    expect(frames.at(-1)).toEqual({ op: "ok", id: 9, data: { order_id: "B-9" } });
    t.close();
  });

  it("reports a close frame from the edge, and a refused ticket as expired (4003)", async () => {
    const edge = fakeEdge([{ frames: [{ op: "close", code: 4102, reason: "revoked" }], cursor: "C" }]);
    const { closes } = open(edge, ["portfolio"]);
    await settle();
    expect(closes).toEqual([{ code: 4102, reason: "revoked", opened: true }]);

    // The edge answered: the path works, the token does not (a new one, same transport).
    const expired = fakeEdge([401]);
    const second = open(expired, ["portfolio"]);
    await settle();
    expect(second.closes[0]).toMatchObject({ code: 4003, opened: true });
  });

  it("takes the close code from a refusal's body, like the same WebSocket close", async () => {
    const refusal = (status: number, body: string) => vi.fn(async (input: string | URL | Request) =>
      new URL(String(input)).pathname === "/ticket" ? new Response(JSON.stringify({ ticket: "T1" })) : new Response(body, { status }));
    const cases: Array<[number, string, number]> = [
      [403, JSON.stringify({ op: "err", code: 4102, reason: "user revoked" }), 4102],
      [429, JSON.stringify({ op: "err", code: 4103, reason: "too many connections" }), 4103],
      [503, JSON.stringify({ op: "err", code: 4000, reason: "draining" }), 4000],
      [403, "<html>blocked by proxy</html>", 4102], // no body code: the status decides
      [400, JSON.stringify({ op: "err", code: 102, reason: "bad field" }), 1006], // an err code, not a close code
    ];
    for (const [status, body, code] of cases) {
      const closes: CloseInfo[] = [];
      const fetch = refusal(status, body) as unknown as typeof globalThis.fetch;
      const t = pollingTransport(
        { baseUrl: "http://edge.test", codec: jsonCodec, channels: ["trades"], fetch },
        { onOpen: () => t.send({ op: "auth", id: 1, token }), onFrame: () => {}, onClose: (c) => closes.push(c) },
      );
      await settle();
      expect(closes, `${status} ${body}`).toEqual([expect.objectContaining({ code, opened: true })]);
    }
  });

  it("takes a refused ticket's close code from its body too", async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ op: "err", code: 4102, reason: "user revoked" }), { status: 403 }));
    const closes: CloseInfo[] = [];
    const t = pollingTransport(
      { baseUrl: "http://edge.test", codec: jsonCodec, channels: ["trades"], fetch: fetch as unknown as typeof globalThis.fetch },
      { onOpen: () => t.send({ op: "auth", id: 1, token }), onFrame: () => {}, onClose: (c) => closes.push(c) },
    );
    await settle();
    expect(closes).toEqual([expect.objectContaining({ code: 4102, opened: true })]);
  });
});
