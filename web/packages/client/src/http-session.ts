import { ErrorCode } from "./generated/contracts.js";
import type { ClientFrame, RequestId, ServerFrame } from "./frames.js";
import { tokenExpiry } from "./jwt.js";
import { httpUrl, type Transport, type TransportHandlers, type TransportName, type TransportOptions } from "./transport.js";

/** What a stream driver (SSE or long polling) reports back to its session. */
export interface StreamSink {
  opened(): void;
  frame(frame: ServerFrame): void;
  cursor(cursor: string): void;
  /** `answered`: the edge itself refused (an HTTP error with its code), so the path is not blocked. */
  failed(code: number, reason: string, answered?: boolean): void;
}

/** Opens one HTTP stream of frames for a ticket, a set of channels and a cursor. */
export interface StreamDriver {
  /** `history`: channels whose first subscription asked for their last N messages. */
  start(url: (path: string) => string, ticket: string, channels: readonly string[], cursor: string | undefined, sink: StreamSink,
    history?: ReadonlyMap<string, number>): void;
  stop(): void;
  /** Whether frames can arrive right now (answers the client's app-level ping). */
  healthy(): boolean;
}

/** The host's `fetch`, bound to the global; throws (a failed open) when there is none. */
export function defaultFetch(): typeof fetch {
  if (typeof globalThis.fetch !== "function") throw new Error("no fetch in this environment");
  return globalThis.fetch.bind(globalThis);
}

/**
 * The close code of a refused ticket or stream: the one the edge puts in its `err` body when it
 * is a close code (4102 forbidden, 4103 connection limit, 4000 draining, ...), so a refused HTTP
 * stream ends exactly like the same WebSocket close; otherwise one from the status.
 */
export function closeCodeForStatus(status: number, body?: unknown): number {
  const code = (body as { code?: unknown } | undefined)?.code;
  if (typeof code === "number" && Number.isInteger(code) && code >= 4000 && code <= 4999) return code;
  if (status === 401) return 4003; // expired (or invalid) token: get a new one and reconnect
  if (status === 403) return 4102;
  return 1006;
}

/** `closeCodeForStatus` for a refused response, reading its JSON body if it has one. */
export async function closeCodeOf(resp: Response): Promise<number> {
  let body: unknown;
  try {
    body = await resp.json();
  } catch {
    body = undefined; // not JSON (a proxy's error page): the status decides
  }
  return closeCodeForStatus(resp.status, body);
}

/**
 * Makes an HTTP stream look like a WebSocket session to the client: `auth` fetches a ticket
 * (`POST /ticket`), the stream's opening is the `welcome`, `sub`/`unsub` restart the stream with
 * the new channel set from the last cursor (nothing lost), `cmd` goes to `POST /cmd`, `ping` is
 * answered while the stream is healthy. Tokens never go in a URL; tickets do.
 */
export function httpSessionTransport(name: TransportName, driver: StreamDriver, options: TransportOptions, handlers: TransportHandlers,
  renewTicketMs?: number): Transport {
  const doFetch = options.fetch ?? defaultFetch();
  const url = (path: string) => httpUrl(options.baseUrl, path);
  const channels = new Set(options.channels);
  const pendingSubs = new Map<string, RequestId>();
  const history = new Map<string, number>(); // asked with the sub; the edge applies it while the cursor has no position
  let cursor = options.cursor;
  let token = "";
  let authId: RequestId = 0;
  let opened = false;
  let welcomed = false;
  let done = false;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;
  let renewTimer: ReturnType<typeof setTimeout> | undefined;
  let generation = 0;

  // A refusal the edge itself answered (HTTP 401/403/429/503 with its close code) ends the
  // session like the same WebSocket close would after opening: the client then acts on the code
  // (4102: stop; 4003: new token) instead of taking this transport for blocked.
  const fail = (code: number, reason: string, answered = false) => {
    if (done) return;
    done = true;
    driver.stop();
    clearTimeout(restartTimer);
    clearTimeout(renewTimer);
    handlers.onClose({ code, reason, opened: opened || answered });
  };

  const welcome = () => {
    if (welcomed) return;
    welcomed = true;
    handlers.onFrame({ op: "welcome", id: authId, proto: name, expires_at: tokenExpiry(token) });
  };

  const deliver = (frame: ServerFrame) => {
    if (frame.op === "welcome") return welcome();
    if (frame.op === "ping") return; // the HTTP stream's own heartbeat; nothing to answer with
    if (frame.op === "close") return fail(frame.code, frame.reason ?? "closed by the edge");
    if (frame.op === "ok" || frame.op === "err") {
      // Subscription replies on a stream are keyed by channel name; give them the client's id.
      const ch = frame.ch ?? (typeof frame.id === "string" ? frame.id : undefined);
      if (ch !== undefined && pendingSubs.has(ch)) {
        frame = { ...frame, id: pendingSubs.get(ch)! };
        pendingSubs.delete(ch);
      }
    }
    handlers.onFrame(frame);
  };

  const ticket = async (): Promise<string> => {
    const resp = await doFetch(url("/ticket"), { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    if (!resp.ok) throw Object.assign(new Error(`ticket refused: HTTP ${resp.status}`), { code: await closeCodeOf(resp), answered: true });
    return ((await resp.json()) as { ticket: string }).ticket;
  };

  const start = async () => {
    const mine = ++generation;
    driver.stop();
    let t: string;
    try {
      t = await ticket();
    } catch (err) {
      const { code, answered } = err as { code?: number; answered?: boolean };
      return fail(code ?? 1006, String((err as Error).message ?? err), answered);
    }
    if (done || mine !== generation) return;
    if (channels.size === 0) return welcome(); // nothing to stream yet: ready for `sub`
    const sink: StreamSink = {
      opened: () => {
        if (done || mine !== generation) return;
        opened = true;
        welcome();
      },
      frame: (f) => !done && mine === generation && deliver(f),
      cursor: (c) => {
        cursor = c;
        options.onCursor?.(c);
      },
      failed: (code, reason, answered) => mine === generation && fail(code, reason, answered),
    };
    try {
      driver.start(url, t, [...channels], cursor, sink, history);
    } catch (err) {
      // Whatever throws while opening the stream (a missing or refusing constructor, a
      // synchronous TypeError) ends this transport: never an unhandled rejection and a hang.
      return fail(1006, `could not open the stream: ${String(err)}`);
    }
    if (renewTicketMs) {
      // Polling reuses a ticket only for a while (EDGE_TICKET_RESUME_S): renew well before.
      clearTimeout(renewTimer);
      renewTimer = setTimeout(() => !done && void start(), renewTicketMs);
    }
  };

  // Coalesce a burst of sub/unsub (a page mounting ten tickers) into one restart.
  const restart = () => {
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => !done && void start(), 30);
  };

  const command = async (frame: Extract<ClientFrame, { op: "cmd" }>) => {
    let reply: ServerFrame;
    try {
      const resp = await doFetch(url("/cmd"), {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ name: frame.name, key: frame.key, data: frame.data }),
      });
      reply = (await resp.json()) as ServerFrame;
    } catch (err) {
      reply = { op: "err", code: ErrorCode.UNAVAILABLE, reason: `command transport failed: ${String(err)}` };
    }
    if (!done) handlers.onFrame({ ...reply, id: frame.id } as ServerFrame);
  };

  queueMicrotask(() => !done && handlers.onOpen());

  return {
    name,
    send(frame) {
      if (done) return;
      switch (frame.op) {
        case "auth":
          token = frame.token;
          authId = frame.id;
          void start();
          return;
        case "refresh":
          token = frame.token;
          queueMicrotask(() => !done && handlers.onFrame({ op: "ok", id: frame.id, expires_at: tokenExpiry(token) }));
          return;
        case "sub":
          pendingSubs.set(frame.ch, frame.id);
          if (frame.history !== undefined) history.set(frame.ch, frame.history);
          else history.delete(frame.ch);
          if (!channels.has(frame.ch) || !opened) {
            channels.add(frame.ch);
            restart();
          }
          return;
        case "unsub":
          channels.delete(frame.ch);
          history.delete(frame.ch);
          queueMicrotask(() => !done && handlers.onFrame({ op: "ok", id: frame.id }));
          restart();
          return;
        case "ping":
          if (driver.healthy()) queueMicrotask(() => !done && handlers.onFrame({ op: "pong", id: frame.id }));
          return;
        case "cmd":
          void command(frame);
          return;
        case "join":
          // A membership lasts as long as its connection: HTTP transports watch presence only.
          queueMicrotask(() => !done && handlers.onFrame({ op: "err", id: frame.id, code: ErrorCode.UNAVAILABLE, reason: "joining presence needs a WebSocket" }));
          return;
        case "leave":
          queueMicrotask(() => !done && handlers.onFrame({ op: "ok", id: frame.id }));
          return;
        case "pong":
          return;
      }
    },
    close() {
      done = true;
      clearTimeout(restartTimer);
      clearTimeout(renewTimer);
      driver.stop();
    },
  };
}
