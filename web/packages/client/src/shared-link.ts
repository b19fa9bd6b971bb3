import type { TokenRequest } from "./options.js";
import { CloseCode } from "./generated/contracts.js";
import type { ClientFrame, RequestId } from "./frames.js";
import type { Hub, HubOptions } from "./shared-hub.js";
import { isFor, randomId, type EngineSettings, type HubMessage, type TabId, type TabMessage } from "./shared-protocol.js";
import type { TransportHandlers } from "./transport.js";

/** How a tab reaches the hub of its shared connection. */
export interface Bus {
  post(message: TabMessage): void;
  /** Every hub message this tab can see (the transport filters by recipient); returns a disposer. */
  listen(fn: (message: HubMessage) => void): () => void;
  close(): void;
}

export interface ShareOptions {
  /**
   * `auto` (default): a SharedWorker where the browser has one and the client needs nothing it
   * cannot send there (injected constructors or transport factories), else leader election over
   * BroadcastChannel and Web Locks. `worker` and `leader` force one of them.
   */
  mode?: "auto" | "worker" | "leader";
  /** Build the SharedWorker yourself, for bundlers that do not resolve `new URL(..., import.meta.url)`. */
  worker?: (name: string) => SharedWorker;
  /** After a leader leaves, how long the next one waits for the other tabs to rejoin, ms (default 1000). */
  handoverWaitMs?: number;
  /** Reach a hub some other way (tests, other hosts). */
  bus?: (key: string, tab: TabId) => Bus;
}

/** Close codes a hub transport ends with (besides a fatal upstream code). */
export const HANDOVER = CloseCode.SHUTDOWN; // the hub went away: join the next one at once
export const NOT_SHARED = 1006; // refused or unreachable (with `opened: false`): connect directly

export interface HubTransport {
  send(frame: ClientFrame): void;
  /** Ask the hub to switch the shared connection's codec (subprotocol name). */
  codec(subprotocol: string): void;
  close(): void;
}

export interface HubHandlers extends TransportHandlers {
  /** Messages about the upstream connection: `upstream`, `chan`, `recovery`, `error`. */
  onUpstream(message: HubMessage): void;
}

type Locks = { request: LockManager["request"]; query: LockManager["query"] };
const locks = (): Locks | undefined => (globalThis.navigator as Navigator | undefined)?.locks;

/** Which sharing this host supports, given what the client needs. */
export function shareMode(options: ShareOptions, needsLocalConstructors: boolean): "worker" | "leader" | undefined {
  if (options.bus) return "worker"; // whatever it is, it is reached through a bus
  const canLeader = typeof BroadcastChannel === "function" && locks() !== undefined;
  const canWorker = typeof SharedWorker === "function" || options.worker !== undefined;
  const mode = options.mode ?? "auto";
  if (mode === "worker") return canWorker ? "worker" : undefined;
  if (mode === "leader") return canLeader ? "leader" : undefined;
  if (canWorker && !needsLocalConstructors) return "worker";
  return canLeader ? "leader" : undefined;
}

/**
 * A tab's membership in the shared connection of one user: its bus to the hub, its liveness
 * lock (so a hub learns when the page is gone), and answers to the hub's token requests.
 */
export class SharedLink {
  readonly tab: TabId = randomId();
  private readonly bus: Bus;
  private readonly off: () => void;

  constructor(
    readonly key: string,
    readonly subject: string,
    mode: "worker" | "leader",
    options: ShareOptions,
    getToken: (request: TokenRequest) => string | Promise<string>,
    createEngine: () => HubOptions["createEngine"],
  ) {
    if (options.bus) this.bus = options.bus(key, this.tab);
    else if (mode === "worker") this.bus = workerBus(key, this.tab, options.worker);
    else this.bus = leaderBus(key, this.tab, subject, createEngine(), options.handoverWaitMs);
    this.off = this.bus.listen((msg) => {
      if (msg.t !== "token?" || !isFor(msg, this.tab)) return;
      Promise.resolve()
        .then(() => getToken({ reason: msg.reason }))
        .then(
          (token) => this.bus.post({ t: "token", tab: this.tab, hub: msg.hub, id: msg.id, token }),
          (err: unknown) => this.bus.post({ t: "token", tab: this.tab, hub: msg.hub, id: msg.id, error: String(err) }),
        );
    });
  }

  /**
   * A transport-like handle on the hub: `auth` joins, other frames go to the hub, which answers
   * like an edge. Ends with `HANDOVER` when the hub goes away, `NOT_SHARED` (not opened) when
   * it refuses this tab, or the upstream's own code when that is final.
   */
  open(settings: EngineSettings, handlers: HubHandlers): HubTransport {
    const { bus, tab, subject } = this;
    let hub: string | undefined;
    let join: TabMessage | undefined;
    let authId: RequestId | undefined;
    let done = false;
    const end = (code: number, reason: string, opened: boolean) => {
      if (done) return;
      done = true;
      off();
      if (hub) bus.post({ t: "leave", tab, hub });
      handlers.onClose({ code, reason, opened });
    };
    const off = bus.listen((msg) => {
      if (done || !isFor(msg, tab)) return;
      switch (msg.t) {
        case "hello":
          if (hub && msg.hub !== hub) end(HANDOVER, "the shared connection moved to another tab", true);
          else if (!hub && join) bus.post(join);
          return;
        case "joined":
          if (hub) return; // another hub answered first
          if (msg.subject !== subject) return end(NOT_SHARED, "the shared connection is another user's", false);
          hub = msg.hub;
          handlers.onUpstream({ ...msg, t: "upstream" });
          handlers.onFrame({ op: "welcome", id: authId, user: subject });
          return;
        case "refused":
          if (hub && msg.hub !== hub) return;
          return end(NOT_SHARED, `shared connection refused: ${msg.reason}`, false);
        case "token?":
          return; // answered by the link
      }
      if (msg.hub !== hub) return;
      switch (msg.t) {
        case "bye":
          return end(HANDOVER, "the shared connection's hub left", true);
        case "fatal":
          return end(msg.code, msg.reason, true);
        case "frame":
          return handlers.onFrame(msg.frame);
        default:
          return handlers.onUpstream(msg);
      }
    });
    queueMicrotask(() => !done && handlers.onOpen());
    return {
      send(frame) {
        if (done) return;
        if (frame.op === "auth") {
          authId = frame.id;
          join = { t: "join", tab, token: frame.token, settings };
          bus.post(join);
        } else if (hub) {
          bus.post({ t: "frame", tab, hub, frame });
        }
      },
      codec(subprotocol) {
        if (!done && hub) bus.post({ t: "codec", tab, hub, codec: subprotocol });
      },
      close() {
        if (done) return;
        done = true;
        off();
        if (hub) bus.post({ t: "leave", tab, hub });
      },
    };
  }

  close(): void {
    this.off();
    this.bus.close();
  }
}

// --- buses ----------------------------------------------------------------------------------

function listeners<T>() {
  const set = new Set<(msg: T) => void>();
  return {
    fire: (msg: T) => [...set].forEach((fn) => fn(msg)),
    listen: (fn: (msg: T) => void) => (set.add(fn), () => void set.delete(fn)),
  };
}

/**
 * Hold a lock named for this tab for as long as it is a member: a hub asks for the same lock
 * and is granted it when the page is gone (closed, crashed, navigated away), with no message.
 */
function holdTabLock(key: string, tab: TabId): { ready: Promise<void>; release(): void } {
  const lm = locks();
  if (!lm) return { ready: Promise.resolve(), release() {} };
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  const ready = new Promise<void>((granted) => {
    lm.request(tabLockName(key, tab), () => (granted(), held)).catch(() => granted());
  });
  return { ready, release: () => release() };
}

export const tabLockName = (key: string, tab: TabId): string => `${key}:tab:${tab}`;

/** The hub in a SharedWorker named by the key: one per origin and user, alive while a tab is. */
function workerBus(key: string, tab: TabId, make?: (name: string) => SharedWorker): Bus {
  const { fire, listen } = listeners<HubMessage>();
  const worker = make ? make(key) : new SharedWorker(new URL("./shared-worker.js", import.meta.url), { type: "module", name: key });
  const port = worker.port;
  port.onmessage = (event: MessageEvent<HubMessage>) => fire(event.data);
  // A worker that cannot start (its script missing from the build, a CSP worker-src) refuses
  // at once, so the tab connects directly instead of waiting for a timeout.
  worker.onerror = () => fire({ t: "refused", hub: "", to: tab, reason: "the shared worker failed to start" });
  port.start();
  const lock = holdTabLock(key, tab);
  return {
    post: (msg) => void lock.ready.then(() => port.postMessage(msg)),
    listen,
    close() {
      lock.release();
      port.close();
    },
  };
}

/**
 * Leader election: every tab of the key asks for the leader lock; the one holding it runs the
 * hub in its page and the others reach it over a BroadcastChannel. When the leader's page goes
 * away the lock passes to the next tab, which starts a hub and says `hello`; the others rejoin
 * it with the positions they hold.
 */
function leaderBus(key: string, tab: TabId, subject: string, createEngine: HubOptions["createEngine"], handoverWaitMs?: number): Bus {
  const lm = locks()!;
  const { fire, listen } = listeners<HubMessage>();
  const channel = new BroadcastChannel(key);
  channel.onmessage = (event: MessageEvent<HubMessage | TabMessage>) => "to" in event.data && fire(event.data);
  const lock = holdTabLock(key, tab);
  const abort = new AbortController();
  let stepDown = () => {};
  const leading = new Promise<void>((r) => (stepDown = r));
  lm.request(`${key}:leader`, { signal: abort.signal }, async () => {
    const { Hub } = await import("./shared-hub.js");
    const hubChannel = new BroadcastChannel(key);
    const watching = new AbortController();
    // A BroadcastChannel delivers to every other object of its name, this page's included: the
    // leader's own tab talks to its hub through the same channel as every other tab.
    const deliver = (msg: HubMessage) => hubChannel.postMessage(msg);
    const hub: Hub = new Hub({
      subject,
      createEngine,
      post: deliver,
      watchTab: (t, gone) => {
        lm.request(tabLockName(key, t), { signal: watching.signal }, () => gone()).catch(() => {});
      },
      expectedTabs: async () => {
        const state = await lm.query();
        const prefix = `${key}:tab:`;
        return (state.held ?? []).map((l) => l.name ?? "").filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
      },
      handoverWaitMs,
    });
    hubChannel.onmessage = (event: MessageEvent<HubMessage | TabMessage>) => !("to" in event.data) && hub.receive(event.data);
    deliver({ t: "hello", hub: hub.id, to: "*" });
    await leading;
    watching.abort();
    hub.close();
    hubChannel.close();
  }).catch(() => {});
  return {
    post: (msg) => void lock.ready.then(() => channel.postMessage(msg)),
    listen,
    close() {
      abort.abort();
      stepDown();
      lock.release();
      channel.close();
    },
  };
}
