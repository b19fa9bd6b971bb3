// Fakes for what cannot run in a unit test: a network transport and a browser. The real
// transports are exercised end to end in a real browser against the real edge (web/e2e).
import type { ClientFrame, ServerFrame } from "../src/frames.js";
import type { Environment } from "../src/environment.js";
import type { CloseInfo, Transport, TransportFactory, TransportHandlers, TransportName, TransportOptions } from "../src/transport.js";

export class FakeTransport implements Transport {
  sent: ClientFrame[] = [];
  closed = false;
  constructor(readonly name: TransportName, readonly options: TransportOptions, readonly handlers: TransportHandlers) {}
  send(frame: ClientFrame): void {
    this.sent.push(frame);
  }
  close(): void {
    this.closed = true;
  }
  // --- driven by the test ---
  open(): void {
    this.handlers.onOpen();
  }
  receive(...frames: ServerFrame[]): void {
    for (const f of frames) this.handlers.onFrame(f);
  }
  drop(info: Partial<CloseInfo> = {}): void {
    this.closed = true;
    this.handlers.onClose({ code: 1006, reason: "network", opened: true, ...info });
  }
  /** Open, answer `auth` with a welcome. */
  welcome(extra: Record<string, unknown> = {}): void {
    this.open();
    const auth = this.sent.find((f) => f.op === "auth") as { id: number } | undefined;
    this.receive({ op: "welcome", id: auth?.id, user: "alice", heartbeat_ms: 25000, ...extra });
  }
  frames<O extends ClientFrame["op"]>(op: O): Extract<ClientFrame, { op: O }>[] {
    return this.sent.filter((f) => f.op === op) as Extract<ClientFrame, { op: O }>[];
  }
}

export function fakeNetwork() {
  const created: FakeTransport[] = [];
  const factory = (name: TransportName): TransportFactory => (options, handlers) => {
    const t = new FakeTransport(name, options, handlers);
    created.push(t);
    return t;
  };
  return {
    created,
    last: () => created[created.length - 1]!,
    factories: { websocket: factory("websocket"), sse: factory("sse"), polling: factory("polling") },
  };
}

export function fakeEnvironment() {
  let handlers: { online(): void; offline(): void; visible(): void } | undefined;
  const store = new Map<string, string>();
  const env = {
    isOnline: true,
    isVisible: true,
    store,
    online: () => env.isOnline,
    visible: () => env.isVisible,
    watch(h: typeof handlers) {
      handlers = h;
      return () => (handlers = undefined);
    },
    load: (k: string) => store.get(k) ?? null,
    save: (k: string, v: string) => void store.set(k, v),
    fire(event: "online" | "offline" | "visible") {
      if (event === "online") env.isOnline = true;
      if (event === "offline") env.isOnline = false;
      handlers?.[event]();
    },
  };
  return env satisfies Environment;
}

/** Let pending promise callbacks (getToken) and microtasks run. */
export const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};
