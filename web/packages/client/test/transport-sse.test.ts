import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonCodec } from "../src/codec.js";
import type { ServerFrame } from "../src/frames.js";
import { msgpackCodec } from "../src/msgpack.js";
import type { CloseInfo } from "../src/transport.js";
import { sseTransport } from "../src/transport-sse.js";
import { TransportPicker } from "../src/transport-picker.js";
import { fakeEnvironment } from "./fakes.js";

// A stand-in for the browser's EventSource (Node has none); the real one runs in web/e2e.
class FakeEventSource {
  static last: FakeEventSource;
  readyState = 0;
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  private listeners = new Map<string, (e: MessageEvent) => void>();
  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }
  addEventListener(type: string, fn: (e: MessageEvent) => void) {
    this.listeners.set(type, fn);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  emit(type: string, data: unknown, lastEventId = "") {
    this.listeners.get(type)?.({ data: JSON.stringify(data), lastEventId } as MessageEvent);
  }
}

const settle = () => new Promise((r) => setTimeout(r, 5));

afterEach(() => vi.unstubAllGlobals());

describe("SSE transport", () => {
  it("opens /sse with a ticket, channels and cursor; msg ids are cursors; close frames end it", async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ ticket: "T", expires_in: 60 })));
    const frames: ServerFrame[] = [];
    const closes: CloseInfo[] = [];
    const cursors: string[] = [];
    const t = sseTransport(
      { baseUrl: "http://edge.test", codec: jsonCodec, channels: ["prices:BRK.B", "trades"], cursor: "C0", onCursor: (c) => cursors.push(c), fetch: fetch as never, EventSource: FakeEventSource },
      { onOpen: () => t.send({ op: "auth", id: 1, token: "a.b.c" }), onFrame: (f) => frames.push(f), onClose: (c) => closes.push(c) },
    );
    await settle();
    const es = FakeEventSource.last;
    const url = new URL(es.url);
    expect(url.pathname).toBe("/sse");
    expect(url.searchParams.get("ticket")).toBe("T");
    expect(url.searchParams.getAll("ch")).toEqual(["prices:BRK.B", "trades"]);
    expect(url.searchParams.get("cursor")).toBe("C0");
    expect(frames).toEqual([]); // no welcome before the stream is really open
    es.open();
    expect(frames[0]).toMatchObject({ op: "welcome", id: 1 });
    t.send({ op: "ping", id: 2 });
    await settle();
    expect(frames.at(-1)).toEqual({ op: "pong", id: 2 });
    es.emit("msg", { op: "msg", ch: "trades", seq: 3, data: {} }, "C1");
    expect(cursors).toEqual(["C1"]);
    es.emit("close", { op: "close", code: 4001, reason: "slow consumer" });
    expect(closes).toEqual([{ code: 4001, reason: "slow consumer", opened: true }]);
    expect(es.closed).toBe(true);
  });

  it("reports a stream that never opened as not opened (blocked: fall back)", async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ ticket: "T", expires_in: 60 })));
    const closes: CloseInfo[] = [];
    const t = sseTransport(
      { baseUrl: "http://edge.test", codec: jsonCodec, channels: ["news"], fetch: fetch as never, EventSource: FakeEventSource },
      { onOpen: () => t.send({ op: "auth", id: 1, token: "a.b.c" }), onFrame: () => {}, onClose: (c) => closes.push(c) },
    );
    await settle();
    FakeEventSource.last.onerror?.();
    expect(closes).toEqual([{ code: 1006, reason: "event stream failed", opened: false }]);
  });
});

describe("transport memory", () => {
  it("starts with the transport that worked last time", () => {
    const env = fakeEnvironment();
    env.save("tickmesh.transport", "sse");
    const picker = new TransportPicker(["websocket", "sse", "polling"], env);
    expect(picker.current()).toBe("sse");
    expect(picker.atBest()).toBe(false);
    picker.upgrade();
    expect(picker.current()).toBe("websocket");
  });
});

describe("MessagePack codec", () => {
  it("round-trips frames and still reads JSON text", () => {
    const frame = { op: "sub", id: 1, ch: "prices:AAPL", since: { epoch: "1795630000123456", seq: 1795630850562443 } } as const;
    const bytes = msgpackCodec.encode(frame) as Uint8Array;
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(msgpackCodec.decode(bytes)).toEqual(frame);
    expect(msgpackCodec.decode(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer)).toEqual(frame);
    expect(msgpackCodec.decode('{"op":"pong","id":1}')).toEqual({ op: "pong", id: 1 });
    expect(msgpackCodec.subprotocol).toBe("tickmesh.v1.msgpack");
  });
});
