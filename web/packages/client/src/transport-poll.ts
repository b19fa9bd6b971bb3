import { framesOf } from "./frames.js";
import { closeCodeOf, defaultFetch, httpSessionTransport, type StreamDriver } from "./http-session.js";
import type { TransportFactory } from "./transport.js";

/** Tickets may resume a polling session for EDGE_TICKET_RESUME_S (300 s): renew well before. */
const TICKET_RENEW_MS = 240_000;

/** Long polling at `/poll`: works through anything that passes plain HTTP requests. */
function pollDriver(doFetch: typeof fetch): StreamDriver {
  let abort: AbortController | undefined;
  let healthy = false;
  return {
    start(url, ticket, channels, cursor, sink, history) {
      const controller = new AbortController();
      abort = controller;
      const loop = async () => {
        let first = true;
        while (!controller.signal.aborted) {
          const u = new URL(url("/poll"));
          u.searchParams.set("ticket", ticket);
          for (const ch of channels) u.searchParams.append("ch", ch);
          if (cursor) u.searchParams.set("cursor", cursor);
          for (const [ch, n] of history ?? []) u.searchParams.append("history", `${ch}:${n}`);
          let body: { frames?: unknown[]; cursor?: string };
          try {
            const resp = await doFetch(u.toString(), { signal: controller.signal, cache: "no-store" });
            if (!resp.ok) return sink.failed(await closeCodeOf(resp), `poll refused: HTTP ${resp.status}`, true);
            body = (await resp.json()) as typeof body;
          } catch (err) {
            healthy = false;
            if (!controller.signal.aborted) sink.failed(1006, `poll failed: ${String(err)}`);
            return;
          }
          if (controller.signal.aborted) return;
          healthy = true;
          if (first) {
            first = false;
            sink.opened();
          }
          if (body.cursor) {
            cursor = body.cursor;
            sink.cursor(cursor);
          }
          for (const frame of framesOf(body.frames ?? [])) sink.frame(frame);
        }
      };
      void loop();
    },
    stop() {
      abort?.abort();
      abort = undefined;
      healthy = false;
    },
    healthy: () => healthy,
  };
}

export const pollingTransport: TransportFactory = (options, handlers) => {
  const doFetch = options.fetch ?? defaultFetch();
  return httpSessionTransport("polling", pollDriver(doFetch), { ...options, fetch: doFetch }, handlers, TICKET_RENEW_MS);
};
