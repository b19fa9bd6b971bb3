// Issue 17: a transport that cannot even be constructed is a failed open, and one whose global
// is missing is skipped up front. These use the real transports with injected constructors;
// only the network behind them is scripted (the real edge runs in web/e2e and e2e/node).
import { afterEach, describe, expect, it, vi } from "vitest";
import { TickmeshClient, type ClientOptions } from "../src/client.js";
import type { StateChange } from "../src/state.js";
import type { TickmeshError } from "../src/errors.js";
import { fakeEnvironment, flush } from "./fakes.js";

const token = ["x", btoa(JSON.stringify({ sub: "alice", exp: 4102444800 })), "y"].join(".");

/**
 * An edge that hands out tickets, answers the first long poll at once (the stream is open) and
 * then holds polls open (nothing new to say).
 */
function ticketEdge() {
  const paths: string[] = [];
  const fetch = vi.fn(async (input: string | URL | Request) => {
    const url = new URL(String(input));
    paths.push(url.pathname);
    if (url.pathname === "/ticket") return new Response(JSON.stringify({ ticket: "T1", expires_in: 60 }));
    if (paths.filter((p) => p === "/poll").length === 1) return new Response(JSON.stringify({ frames: [], cursor: "c1" }));
    return new Promise<Response>(() => {});
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, paths };
}

function securityError(message: string): Error {
  return Object.assign(new Error(message), { name: "SecurityError" });
}

class ThrowingWebSocket {
  static created = 0;
  constructor() {
    ThrowingWebSocket.created += 1;
    throw securityError("Refused to connect because it violates the Content Security Policy directive: connect-src 'self'");
  }
}

class ThrowingEventSource {
  static created = 0;
  constructor() {
    ThrowingEventSource.created += 1;
    throw securityError("Refused to connect: connect-src");
  }
}

function start(options: Partial<ClientOptions>) {
  const states: StateChange[] = [];
  const errors: TickmeshError[] = [];
  const client = new TickmeshClient({
    url: "http://edge.test",
    getToken: async () => token,
    environment: fakeEnvironment(),
    backoff: { random: () => 0.5 },
    ...options,
  });
  client.events.on("state", (c) => states.push(c));
  client.events.on("error", (e) => errors.push(e));
  client.connect();
  return { client, states, errors };
}

/** Run promise callbacks and zero-delay timers, but never a real wait (no connect timeout). */
const settle = async () => {
  for (let i = 0; i < 10; i++) {
    await flush();
    await new Promise((r) => setTimeout(r, 0));
  }
};

afterEach(() => {
  vi.unstubAllGlobals();
  ThrowingWebSocket.created = ThrowingEventSource.created = 0;
});

describe("a transport that cannot be constructed is a failed open", () => {
  it("moves on at once when the WebSocket constructor throws a SecurityError", async () => {
    const edge = ticketEdge();
    const { client, states } = start({
      WebSocket: ThrowingWebSocket as never,
      transports: ["websocket", "polling"],
      fetch: edge.fetch,
      connectTimeoutMs: 60_000, // were the throw swallowed, nothing would happen for a minute
    });
    await settle();
    expect(ThrowingWebSocket.created).toBe(1);
    expect(client.state).toBe("connected");
    expect(client.transportName).toBe("polling");
    expect(edge.paths).toContain("/ticket");
    expect(client.lastRetryReason).toMatch(/websocket could not be opened: SecurityError/);
    expect(states.map((s) => s.to)).toEqual(["connecting", "connected"]);
    client.disconnect();
  });

  it("moves on at once when the EventSource constructor throws", async () => {
    const edge = ticketEdge();
    const { client } = start({
      transports: ["sse", "polling"],
      EventSource: ThrowingEventSource as never,
      fetch: edge.fetch,
      connectTimeoutMs: 60_000,
    });
    // SSE subscribes with its channels: give it one so the stream (and its constructor) is used.
    client.subscribe("news", () => {});
    await settle();
    expect(ThrowingEventSource.created).toBe(1);
    expect(client.state).toBe("connected");
    expect(client.transportName).toBe("polling");
    client.disconnect();
  });

  it("moves on when a transport factory throws a synchronous TypeError", async () => {
    const edge = ticketEdge();
    const { client } = start({
      transports: ["websocket", "polling"],
      transportFactories: {
        websocket: () => {
          throw new TypeError("Failed to construct 'WebSocket': The URL 'ws://[::1' is invalid.");
        },
      },
      fetch: edge.fetch,
      connectTimeoutMs: 60_000,
    });
    await settle();
    expect(client.transportName).toBe("polling");
    expect(client.lastRetryReason).toMatch(/websocket could not be opened: TypeError/);
    client.disconnect();
  });

  it("fails the open (and backs off) when fetch throws synchronously, instead of hanging", async () => {
    vi.useFakeTimers();
    try {
      const fetch = vi.fn(() => {
        throw new TypeError("fetch is not a function in this sandbox");
      });
      const { client } = start({ transports: ["polling"], fetch: fetch as never, connectTimeoutMs: 60_000 });
      await vi.advanceTimersByTimeAsync(0);
      expect(fetch).toHaveBeenCalledTimes(1);
      expect(client.state).toBe("connecting");
      expect(client.nextRetryAt).toBeDefined(); // waiting to retry, not hung on a lost promise
      expect(client.lastRetryReason).toMatch(/fetch is not a function/);
      await vi.advanceTimersByTimeAsync(1000);
      expect(fetch.mock.calls.length).toBeGreaterThan(1);
      client.disconnect();
    } finally {
      vi.useRealTimers();
    }
  });

  it("counts a transport that opens but never welcomes as a failed open (a proxy that passes nothing)", async () => {
    vi.useFakeTimers();
    try {
      const edge = ticketEdge();
      // A WebSocket that opens and then says nothing, like a proxy that accepts the upgrade.
      class SilentWebSocket {
        readyState = 0;
        protocol = "tickmesh.v1.json";
        binaryType = "blob";
        onopen: (() => void) | null = null;
        onmessage = null;
        onclose = null;
        onerror = null;
        constructor() {
          setTimeout(() => ((this.readyState = 1), this.onopen?.()), 1);
        }
        send() {}
        close() {}
      }
      const { client } = start({ WebSocket: SilentWebSocket as never, transports: ["websocket", "polling"], fetch: edge.fetch, connectTimeoutMs: 5000 });
      await vi.advanceTimersByTimeAsync(4999);
      expect(client.state).toBe("connecting");
      await vi.advanceTimersByTimeAsync(10);
      expect(client.transportName).toBe("polling");
      client.disconnect();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("transports the environment lacks are skipped up front", () => {
  it("skips WebSocket and SSE without globals, says so in the state reason, and goes Live over polling", async () => {
    vi.stubGlobal("WebSocket", undefined);
    vi.stubGlobal("EventSource", undefined);
    const edge = ticketEdge();
    const { client, states } = start({ fetch: edge.fetch, connectTimeoutMs: 60_000 });
    expect(states[0]).toMatchObject({ from: "disconnected", to: "connecting" });
    expect(states[0]!.reason).toContain("skipped websocket (no WebSocket in this environment), sse (no EventSource in this environment)");
    expect(client.skippedTransports).toEqual({ websocket: "no WebSocket in this environment", sse: "no EventSource in this environment" });
    await settle();
    expect(client.state).toBe("connected");
    expect(client.transportName).toBe("polling");
    client.disconnect();
  });

  it("never probes a skipped transport for an upgrade", async () => {
    vi.stubGlobal("WebSocket", undefined);
    vi.stubGlobal("EventSource", undefined);
    const edge = ticketEdge();
    const { client } = start({ fetch: edge.fetch, upgradeIntervalMs: 1 });
    await settle();
    await new Promise((r) => setTimeout(r, 20));
    expect(client.transportName).toBe("polling");
    expect(client.state).toBe("connected"); // at best already: no upgrade, no reconnect
    client.disconnect();
  });

  it("stops with a clear error when no transport can run at all", async () => {
    vi.stubGlobal("WebSocket", undefined);
    vi.stubGlobal("EventSource", undefined);
    vi.stubGlobal("fetch", undefined);
    const { client, errors } = start({});
    expect(client.state).toBe("disconnected");
    expect(errors).toHaveLength(1);
    expect(client.error?.reason).toMatch(/no transport can run here: websocket \(no WebSocket.*\), sse \(no EventSource or fetch.*\), polling \(no fetch/);
    await expect(client.command("order.cancel", { order_id: "B-1" })).rejects.toThrow(/no transport can run here/);
  });

  it("keeps a transport whose factory the application replaced, whatever the globals", async () => {
    vi.stubGlobal("WebSocket", undefined);
    const opened: string[] = [];
    const { client } = start({
      transports: ["websocket"],
      transportFactories: {
        websocket: (options, handlers) => {
          opened.push(options.baseUrl);
          queueMicrotask(() => handlers.onOpen());
          return { name: "websocket", send: (f) => f.op === "auth" && handlers.onFrame({ op: "welcome", id: f.id, user: "alice" }), close() {} };
        },
      },
    });
    await settle();
    expect(client.skippedTransports).toEqual({});
    expect(opened).toEqual(["http://edge.test"]);
    expect(client.state).toBe("connected");
    client.disconnect();
  });
});

describe("injected constructors", () => {
  it("opens the injected WebSocket with the edge's /ws URL and the codec's subprotocol", async () => {
    vi.stubGlobal("WebSocket", undefined);
    const made: Array<{ url: string; protocols: unknown }> = [];
    class RecordingWebSocket {
      readyState = 0;
      protocol = "";
      binaryType = "blob";
      onopen = null;
      onmessage = null;
      onclose = null;
      onerror = null;
      constructor(url: string, protocols: unknown) {
        made.push({ url, protocols });
      }
      send() {}
      close() {}
    }
    const { client } = start({ url: "https://stream.example.com", WebSocket: RecordingWebSocket });
    await settle();
    expect(client.skippedTransports.websocket).toBeUndefined();
    expect(made).toEqual([{ url: "wss://stream.example.com/ws", protocols: ["tickmesh.v1.json"] }]);
    client.disconnect();
  });

  it("uses the injected fetch for tickets and polls, never the global one", async () => {
    const globalFetch = vi.fn(async () => new Response("{}", { status: 500 }));
    vi.stubGlobal("fetch", globalFetch);
    const edge = ticketEdge();
    const { client } = start({ transports: ["polling"], fetch: edge.fetch });
    client.subscribe("news", () => {});
    await settle();
    await new Promise((r) => setTimeout(r, 50)); // the coalesced restart with the channel
    expect(edge.paths).toEqual(expect.arrayContaining(["/ticket", "/poll"]));
    expect(globalFetch).not.toHaveBeenCalled();
    client.disconnect();
  });
});
