import type { TransportName } from "./transport.js";

/**
 * The few host constructors the transports need, typed structurally so that the browser's
 * own, the `ws` package's (Node.js) and React Native's all fit. Only what the client uses is
 * listed.
 */
// `any`: each host types its events differently; the client reads only `data`, `code`, `reason`
// and `lastEventId`, and checks what it reads.
type Handler = ((event: any) => unknown) | null;

export interface WebSocketLike {
  readonly readyState: number;
  /** The subprotocol the server picked. */
  readonly protocol: string;
  binaryType: string;
  onopen: Handler;
  onmessage: Handler;
  onclose: Handler;
  onerror: Handler;
  send(data: string | ArrayBuffer | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface EventSourceLike {
  readonly readyState: number;
  onopen: Handler;
  onerror: Handler;
  addEventListener(type: string, listener: NonNullable<Handler>): void;
  close(): void;
}

export type EventSourceConstructor = new (url: string) => EventSourceLike;

export type FetchLike = typeof fetch;

/** The constructors a client runs with: injected ones, else the host's globals. */
export interface Platform {
  WebSocket?: WebSocketConstructor;
  EventSource?: EventSourceConstructor;
  fetch?: FetchLike;
}

/**
 * Injected constructors win; otherwise the globals as they are now. A missing one stays
 * `undefined`, so the transports that need it can be skipped up front rather than fail late.
 */
export function resolvePlatform(injected: Platform = {}): Platform {
  const g = globalThis as { WebSocket?: WebSocketConstructor; EventSource?: EventSourceConstructor; fetch?: FetchLike };
  // `fetch` must be called with the global as `this` (browsers throw "Illegal invocation").
  const globalFetch = typeof g.fetch === "function" ? g.fetch.bind(globalThis) : undefined;
  return {
    WebSocket: injected.WebSocket ?? (typeof g.WebSocket === "function" ? g.WebSocket : undefined),
    EventSource: injected.EventSource ?? (typeof g.EventSource === "function" ? g.EventSource : undefined),
    fetch: injected.fetch ?? globalFetch,
  };
}

/**
 * Why `transport` cannot run on `platform`, or `undefined` when it can. SSE needs `fetch` too,
 * for its ticket; long polling needs only `fetch`.
 */
export function missingFor(transport: TransportName, platform: Platform): string | undefined {
  const lacks: string[] = [];
  if (transport === "websocket" && !platform.WebSocket) lacks.push("WebSocket");
  if (transport === "sse" && !platform.EventSource) lacks.push("EventSource");
  if ((transport === "sse" || transport === "polling") && !platform.fetch) lacks.push("fetch");
  return lacks.length ? `no ${lacks.join(" or ")} in this environment` : undefined;
}
