import { framesOf } from "./frames.js";
import { httpSessionTransport, type StreamDriver } from "./http-session.js";
import type { TransportFactory } from "./transport.js";

// Every op the edge may send as an SSE event name (`event: <op>`).
const OPS = ["msg", "ok", "err", "status", "reconnect", "welcome", "ping", "pong", "close", "message"];

/** Server-Sent Events at `/sse`: for networks that block WebSockets. */
function sseDriver(): StreamDriver {
  let es: EventSource | undefined;
  return {
    start(url, ticket, channels, cursor, sink) {
      const u = new URL(url("/sse"));
      u.searchParams.set("ticket", ticket);
      for (const ch of channels) u.searchParams.append("ch", ch);
      if (cursor) u.searchParams.set("cursor", cursor);
      const source = new EventSource(u.toString());
      es = source;
      source.onopen = () => sink.opened();
      for (const op of OPS) {
        source.addEventListener(op, (event) => {
          const e = event as MessageEvent<string>;
          let decoded: unknown;
          try {
            decoded = JSON.parse(e.data);
          } catch {
            return;
          }
          for (const frame of framesOf(decoded)) {
            sink.frame(frame);
            if (frame.op === "msg" && e.lastEventId) sink.cursor(e.lastEventId);
          }
        });
      }
      // The browser would retry by itself, but our ticket may be spent: the client reconnects
      // instead, from the last cursor, with a new ticket and its own backoff.
      source.onerror = () => {
        source.close();
        sink.failed(1006, "event stream failed");
      };
    },
    stop() {
      es?.close();
      es = undefined;
    },
    healthy: () => es?.readyState === 1,
  };
}

export const sseTransport: TransportFactory = (options, handlers) =>
  httpSessionTransport("sse", sseDriver(), options, handlers);
