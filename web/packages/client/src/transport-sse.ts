import { framesOf } from "./frames.js";
import { httpSessionTransport, type StreamDriver } from "./http-session.js";
import type { EventSourceConstructor, EventSourceLike } from "./platform.js";
import type { TransportFactory } from "./transport.js";

// Every op the edge may send as an SSE event name (`event: <op>`).
const OPS = ["msg", "ok", "err", "status", "reconnect", "welcome", "ping", "pong", "close", "message"];

/** Server-Sent Events at `/sse`: for networks that block WebSockets. */
function sseDriver(EventSourceImpl: EventSourceConstructor | undefined): StreamDriver {
  let es: EventSourceLike | undefined;
  return {
    start(url, ticket, channels, cursor, sink, history) {
      const u = new URL(url("/sse"));
      u.searchParams.set("ticket", ticket);
      for (const ch of channels) u.searchParams.append("ch", ch);
      if (cursor) u.searchParams.set("cursor", cursor);
      for (const [ch, n] of history ?? []) u.searchParams.append("history", `${ch}:${n}`);
      let source: EventSourceLike;
      try {
        if (!EventSourceImpl) throw new Error("no EventSource in this environment");
        source = new EventSourceImpl(u.toString());
      } catch (err) {
        // Missing, or refused at once (a CSP `connect-src`): the stream never opened, so the
        // client falls back to the next transport instead of waiting.
        sink.failed(1006, `could not open the event stream: ${String(err)}`);
        return;
      }
      es = source;
      source.onopen = () => sink.opened();
      for (const op of OPS) {
        source.addEventListener(op, (event) => {
          const e = event as { data: string; lastEventId?: string };
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

/** Throws when the host has no `EventSource` (React Native, Node.js before 22): a failed open. */
export const sseTransport: TransportFactory = (options, handlers) => {
  if (!options.EventSource) throw new Error("no EventSource in this environment");
  return httpSessionTransport("sse", sseDriver(options.EventSource), options, handlers);
};
