import type { Codec } from "./codec.js";
import type { ClientFrame, ServerFrame } from "./frames.js";
import type { EventSourceConstructor, FetchLike, WebSocketConstructor } from "./platform.js";

export type TransportName = "websocket" | "sse" | "polling";

export interface CloseInfo {
  code: number;
  reason: string;
  /**
   * Whether the underlying channel was ever established (the WebSocket opened, the SSE stream
   * opened, a poll answered). A transport that never opened is probably blocked (a proxy, a
   * firewall): the client then falls back to the next one.
   */
  opened: boolean;
}

export interface TransportHandlers {
  /** Ready for `auth`. */
  onOpen(): void;
  onFrame(frame: ServerFrame): void;
  /** Called at most once; the transport is dead afterwards. */
  onClose(info: CloseInfo): void;
}

export interface TransportOptions {
  /** The edge's base URL, e.g. `https://edge.example.com` (http(s); ws(s) is derived). */
  baseUrl: string;
  codec: Codec;
  /** Channels already wanted: HTTP transports open their stream with them at once. */
  channels: readonly string[];
  /** Resume point of an HTTP stream (opaque, from the edge). */
  cursor?: string;
  onCursor?(cursor: string): void;
  /** The host's constructors (injected or global); a transport whose one is missing fails to open. */
  WebSocket?: WebSocketConstructor;
  EventSource?: EventSourceConstructor;
  fetch?: FetchLike;
}

/**
 * One way of carrying frames. The client never knows which one it is on: it sends client
 * frames and receives server frames; HTTP transports translate (tickets, `POST /cmd`, cursors).
 */
export interface Transport {
  readonly name: TransportName;
  send(frame: ClientFrame): void;
  /** Close on our own initiative: `onClose` is not called. */
  close(): void;
}

/**
 * Creates a transport and starts opening it. It may throw (a constructor that throws, a missing
 * global, a `SecurityError`, a malformed URL): the client counts that as a failed open.
 */
export type TransportFactory = (options: TransportOptions, handlers: TransportHandlers) => Transport;

export function httpUrl(baseUrl: string, path: string): string {
  return new URL(path, baseUrl.replace(/^ws/, "http")).toString();
}
