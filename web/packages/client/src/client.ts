import { AckBatch } from "./acks.js";
import { Backoff } from "./backoff.js";
import { MessageCache, type CachedMessage } from "./cache.js";
import { isEventChannel, type DataOf } from "./channels.js";
import { CausalHold, type TradesView } from "./causal.js";
import { jsonCodec, type Codec } from "./codec.js";
import { CommandQueue, randomKey } from "./commands.js";
import { Emitter } from "./emitter.js";
import { browserEnvironment, type Environment } from "./environment.js";
import { shouldReconnect, TickmeshError } from "./errors.js";
import type { ClientFrame, ErrFrame, MsgFrame, OkFrame, Position, RequestId, ServerFrame, WelcomeFrame } from "./frames.js";
import { CloseCode, ErrorCode, type CommandName, type Commands, type Presence } from "./generated/contracts.js";
import { Heartbeat } from "./heartbeat.js";
import { tokenSubject } from "./jwt.js";
import { missingFor, resolvePlatform, type Platform } from "./platform.js";
import { Positions } from "./positions.js";
import { PresenceBook, type Membership, type MembershipRecord, type MembershipStatus, type PresenceState } from "./presence.js";
import { isLive, StateMachine, type ConnectionState } from "./state.js";
import { HISTORY_ON_FIRST_SUBSCRIBE, type ClientEvents, type ClientOptions, type TokenRequest } from "./options.js";
import { HANDOVER, SharedLink, shareMode, type HubTransport, type ShareOptions } from "./shared-link.js";
import { engineSettingsOf, shareKey, type HubMessage, type Upstream } from "./shared-protocol.js";
import { Subscriptions, type ChannelStatus, type Listener, type SubscriptionRecord } from "./subscriptions.js";
import type { CloseInfo, Transport, TransportFactory, TransportName } from "./transport.js";
import { TransportPicker } from "./transport-picker.js";
import { pollingTransport } from "./transport-poll.js";
import { sseTransport } from "./transport-sse.js";
import { webSocketTransport } from "./transport-ws.js";

export { HISTORY_ON_FIRST_SUBSCRIBE, type ClientEvents, type ClientOptions, type RecoveryEvent, type TokenRequest } from "./options.js";

const DEFAULT_TRANSPORTS: Record<TransportName, TransportFactory> = {
  websocket: webSocketTransport,
  sse: sseTransport,
  polling: pollingTransport,
};

/**
 * A connection to the tickmesh edges. One state machine (`client.state`, `state` events),
 * transports chosen and replaced behind it, subscriptions that survive reconnects without
 * missing or repeating an event, and commands that are retried safely.
 */
/** The user's own channels whose order the client keeps (see causal.ts). */
const TRADES = "trades";
const PORTFOLIO = "portfolio";

/** The `trade_seq` a portfolio value names, if any. */
function tradeSeqOf(data: unknown): number | undefined {
  const seq = (data as { trade_seq?: unknown } | null)?.trade_seq;
  return typeof seq === "number" ? seq : undefined;
}

export class TickmeshClient {
  readonly events = new Emitter<ClientEvents>();
  private readonly machine = new StateMachine();
  private readonly options: Required<Omit<ClientOptions, "url" | "backoff" | "transportFactories" | "fetch" | "environment" | "codec" | "WebSocket" | "EventSource" | "share">>;
  private codecInUse: Codec;
  /** Messages still to come of each channel's `history` replay (flagged `history: true`). */
  private readonly historyLeft = new Map<string, number>();
  private readonly baseUrl: string;
  private readonly env: Environment;
  private readonly factories: Record<TransportName, TransportFactory>;
  private readonly platform: Platform;
  private readonly picker: TransportPicker;
  private readonly backoff: Backoff;
  private readonly cache: MessageCache;
  private readonly positions = new Positions();
  // Causal order of the user's own trades and portfolio, and the acks of trades (causal.ts, acks.ts).
  private readonly causal: CausalHold<{ record: SubscriptionRecord; message: CachedMessage }>;
  private causalTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly acks = new AckBatch();
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly subs = new Subscriptions();
  private readonly presenceBook = new PresenceBook();
  private readonly memberships = new Map<string, MembershipRecord>();
  private readonly commands: CommandQueue;
  private readonly pending = new Map<RequestId, (frame: OkFrame | ErrFrame) => void>();
  private readonly cursors: Partial<Record<TransportName, string>> = {};
  private seq = 0;
  private running = false;
  private everConnected = false;
  private generation = 0;
  private transport: Transport | HubTransport | undefined;
  private authId: RequestId | undefined;
  private welcomed = false;
  private tokenReason: TokenRequest["reason"] = "connect";
  private heartbeat: Heartbeat | undefined;
  private timers = new Map<"retry" | "connect" | "refresh" | "upgrade" | "drain", ReturnType<typeof setTimeout>>();
  private unwatch: (() => void) | undefined;
  private edgeDegraded = false;
  // Sharing one connection among tabs (see SharedLink): whether and how, the membership for
  // the current user, whether the current "transport" is the hub, and the hub's upstream.
  private readonly shareOptions: ShareOptions;
  private shareMode: "worker" | "leader" | undefined;
  private handovers = 0;
  private link: SharedLink | undefined;
  private sharing = false;
  private upstream: Upstream | undefined;

  /** The last fatal error (a "do not reconnect" close, an auth failure), if any. */
  error: TickmeshError | undefined;
  /** The welcome of the current connection. */
  session: WelcomeFrame | undefined;
  /** When the next reconnect attempt is due (ms since the epoch), while waiting. */
  nextRetryAt: number | undefined;
  /** When the last frame arrived (ms since the epoch). */
  lastFrameAt = 0;
  /** Why the client is waiting to reconnect. */
  lastRetryReason: string | undefined;
  /** Transports left out because this environment lacks what they need, with the reason. */
  readonly skippedTransports: Partial<Record<TransportName, string>> = {};

  constructor(private readonly init: ClientOptions) {
    this.options = {
      getToken: init.getToken,
      transports: init.transports ?? ["websocket", "sse", "polling"],
      pingIntervalMs: init.pingIntervalMs ?? 15_000,
      pongTimeoutMs: init.pongTimeoutMs ?? 5_000,
      connectTimeoutMs: init.connectTimeoutMs ?? 10_000,
      refreshLeadMs: init.refreshLeadMs ?? 60_000,
      staleAfterMs: init.staleAfterMs ?? 30_000,
      upgradeIntervalMs: init.upgradeIntervalMs ?? 30_000,
      commandTimeoutMs: init.commandTimeoutMs ?? 15_000,
      historyLimit: init.historyLimit ?? 100,
      priceHistory: Math.max(0, Math.min(1000, Math.floor(init.priceHistory ?? 0))),
      causalHoldMs: Math.max(0, init.causalHoldMs ?? 2000),
      ackIntervalMs: Math.max(0, init.ackIntervalMs ?? 250),
    };
    this.causal = new CausalHold(this.options.causalHoldMs);
    const origin = typeof location === "undefined" ? "http://127.0.0.1:8000" : location.origin;
    this.baseUrl = init.url ?? origin;
    this.codecInUse = init.codec ?? jsonCodec;
    this.env = init.environment ?? browserEnvironment();
    this.factories = { ...DEFAULT_TRANSPORTS, ...init.transportFactories };
    this.platform = resolvePlatform({ WebSocket: init.WebSocket, EventSource: init.EventSource, fetch: init.fetch });
    // Skip up front what cannot run here (no EventSource in React Native, no WebSocket in
    // Node.js 20): trying it would only delay the fallback. A factory the application replaced
    // brings its own means, so only the built-in ones are checked.
    const usable = this.options.transports.filter((name) => {
      const missing = this.factories[name] === DEFAULT_TRANSPORTS[name] ? missingFor(name, this.platform) : undefined;
      if (missing) this.skippedTransports[name] = missing;
      return !missing;
    });
    this.picker = new TransportPicker(usable, this.env);
    this.shareOptions = typeof init.share === "object" ? init.share : {};
    const wantShare = init.share === undefined ? typeof document !== "undefined" : init.share !== false;
    const local = Boolean(init.transportFactories || init.WebSocket || init.EventSource || init.fetch);
    this.shareMode = wantShare ? shareMode(this.shareOptions, local) : undefined;
    this.backoff = new Backoff(init.backoff);
    this.cache = new MessageCache(this.options.historyLimit);
    this.commands = new CommandQueue(() => this.nextId());
    this.machine.events.on("change", (change) => this.events.emit("state", { ...change, transport: this.transportName }));
  }

  // --- public API -------------------------------------------------------------------------

  get state(): ConnectionState {
    return this.machine.state;
  }

  /** The WebSocket codec new connections use (see {@link setCodec}). */
  get codec(): Codec {
    return this.codecInUse;
  }

  /**
   * Use `codec` for WebSocket connections from now on (a feature flag can roll MessagePack
   * out). The same codec changes nothing. A connected WebSocket reconnects once at once, resuming
   * every channel from its position (nothing missed or repeated); SSE and polling are not
   * affected (they carry JSON) and pick it up on their next WebSocket. On a shared connection
   * the hub's connection switches (the tabs of one user get the same flags), and this codec is
   * also proposed when this tab joins or connects on its own.
   */
  setCodec(codec: Codec): void {
    if (codec.subprotocol === this.codecInUse.subprotocol) return;
    this.codecInUse = codec;
    if (this.sharing) return (this.transport as HubTransport | undefined)?.codec(codec.subprotocol);
    if (!this.welcomed || (this.transport as Transport | undefined)?.name !== "websocket") return;
    this.dropConnection();
    this.machine.set("reconnecting", `switching to ${codec.subprotocol}`);
    void this.attempt();
  }

  /** The transport in use while connected (on a shared connection: the one the tabs share). */
  get transportName(): TransportName | undefined {
    if (!this.welcomed) return undefined;
    if (this.sharing) return this.upstream && isLive(this.upstream.state) ? this.upstream.transport : undefined;
    return (this.transport as Transport | undefined)?.name;
  }

  /** Whether this client is on a connection shared with other tabs (see the `share` option). */
  get shared(): boolean {
    return this.sharing && this.welcomed;
  }

  /** Start connecting (idempotent). */
  connect(): void {
    if (this.running) return;
    this.running = true;
    this.error = undefined;
    this.unwatch = this.env.watch({
      online: () => this.onOnline(),
      offline: () => this.onOffline(),
      visible: () => this.onVisible(),
    });
    const skipped = Object.entries(this.skippedTransports).map(([name, why]) => `${name} (${why})`);
    if (!this.picker.any()) {
      const err = new TickmeshError(ErrorCode.UNAVAILABLE, `no transport can run here: ${skipped.join(", ") || "none configured"}`);
      this.events.emit("error", err);
      this.stop(err.reason, err);
      return;
    }
    this.machine.set("connecting", skipped.length ? `connect() called; skipped ${skipped.join(", ")}` : "connect() called");
    void this.attempt();
  }

  /** Stop for good: close the transport, stop retrying, fail pending commands. */
  disconnect(): void {
    this.stop("disconnect() called");
  }

  /**
   * Listen to a channel. The first listener subscribes on the edge; the last one to leave
   * unsubscribes. State channels deliver their cached value at once. Returns the disposer.
   */
  subscribe<C extends string>(ch: C, listener: Listener<DataOf<C>>, options: { maxHz?: number } = {}): () => void {
    const { record, created } = this.subs.add(ch, listener as Listener, options.maxHz);
    if (created && this.welcomed) this.sendSub(record);
    const cached = this.cache.get<DataOf<C>>(ch);
    if (cached && !isEventChannel(ch)) {
      queueMicrotask(() => record.listeners.has(listener as Listener) && listener(cached));
    }
    return () => {
      if (!this.subs.remove(ch, listener as Listener)) return;
      // Linger one microtask: React StrictMode (and route changes) unmount and remount at
      // once; without this they would unsubscribe and resubscribe on the edge for nothing.
      queueMicrotask(() => {
        const rec = this.subs.get(ch);
        if (!rec || rec.listeners.size > 0) return;
        this.subs.delete(ch);
        this.positions.forget(ch);
        if (ch === PORTFOLIO) this.causal.clear();
        if (ch === TRADES) this.releaseHeld();
        // (On a shared connection a channel may show `pending` while the hub still holds it.)
        if (this.welcomed && rec.status !== "error") {
          this.request({ op: "unsub", id: this.nextId(), ch }, () => {});
        }
      });
    };
  }

  /** The last message of a channel, if any arrived (also after its listeners left). */
  last<C extends string>(ch: C): CachedMessage<DataOf<C>> | undefined {
    return this.cache.get<DataOf<C>>(ch);
  }

  /** Recent messages of an event channel, or the recent ticks of a price channel when
   * `priceHistory` is set; oldest first. */
  history<C extends string>(ch: C): readonly CachedMessage<DataOf<C>>[] {
    return this.cache.history<DataOf<C>>(ch);
  }

  channelStatus(ch: string): { status: ChannelStatus; error?: TickmeshError } {
    const rec = this.subs.get(ch);
    return rec ? { status: rec.status, error: rec.error } : { status: "idle" };
  }

  /** Where an event channel stands: its epoch and the seq of the last message delivered. */
  position(ch: string): { epoch?: string; seq?: number } {
    return this.positions.get(ch);
  }

  /**
   * Make the next subscription of `ch` resume from `since` if that is earlier than where the
   * client stands (a shared connection resuming for its furthest-behind tab). Returns false
   * when too late: the subscription is already on its way or live.
   */
  resumeFrom(ch: string, since: Position): boolean {
    const status = this.subs.get(ch)?.status;
    if (status === "subscribing" || status === "live") return false;
    const { epoch, seq } = this.positions.get(ch);
    if (epoch === since.epoch && seq !== undefined && seq <= since.seq) return true;
    if (epoch !== undefined && seq !== undefined && epoch !== since.epoch) return false;
    this.positions.set(ch, since);
    return true;
  }

  /**
   * Run a command. Resolves with the reply's `data`, or rejects with a {@link TickmeshError}
   * carrying the code (e.g. 603 insufficient_funds). Sent as soon as connected; retried with the
   * same idempotency `key` after a reconnect, so it runs at most once.
   */
  command<N extends CommandName>(name: N, data: Commands[N], options: { key?: string; timeoutMs?: number } = {}): Promise<Record<string, unknown>> {
    if (!this.running) return Promise.reject(this.error ?? new TickmeshError(ErrorCode.UNAVAILABLE, "client is not connected", name));
    const promise = this.commands.add(name, data, options.key ?? randomKey(), options.timeoutMs ?? this.options.commandTimeoutMs);
    if (this.welcomed) this.flushCommands();
    return promise as Promise<Record<string, unknown>>;
  }

  /**
   * Be a member of presence `topic` (`symbol.AAPL`, `watchlist.<id>`, `desk.support`) with
   * `data`, for as long as the returned membership is not left. Holders in this client share
   * one membership (the last `update` wins); it is joined again after every reconnect. Follow
   * it with {@link membershipStatus} or the `membership` event.
   */
  join(topic: string, data?: unknown): Membership {
    let record = this.memberships.get(topic);
    if (!record) {
      record = { topic, data, holders: 0, status: "pending" };
      this.memberships.set(topic, record);
    } else if (data !== undefined) {
      record.data = data;
    }
    record.holders += 1;
    const rec = record;
    if (this.welcomed && (rec.holders === 1 || data !== undefined)) this.sendJoin(rec);
    let left = false;
    return {
      topic,
      update: (next: unknown) => {
        if (left || this.memberships.get(topic) !== rec) return;
        rec.data = next;
        if (this.welcomed) this.sendJoin(rec);
      },
      leave: () => {
        if (left) return;
        left = true;
        rec.holders -= 1;
        // Linger one microtask, like subscriptions (StrictMode unmounts and remounts at once).
        queueMicrotask(() => {
          if (rec.holders > 0 || this.memberships.get(topic) !== rec) return;
          this.memberships.delete(topic);
          if (this.welcomed && rec.status !== "error") this.request({ op: "leave", id: this.nextId(), topic }, () => {});
          this.setMembership(rec, "pending");
        });
      },
    };
  }

  membershipStatus(topic: string): { status: MembershipStatus | "idle"; error?: TickmeshError } {
    const rec = this.memberships.get(topic);
    return rec ? { status: rec.status, error: rec.error } : { status: "idle" };
  }

  /** Who is in the topic of presence channel `ch` (subscribe to it first), as last received. */
  presence(ch: string): PresenceState | undefined {
    return this.presenceBook.state(ch);
  }

  // --- connecting -------------------------------------------------------------------------

  private async attempt(): Promise<void> {
    this.clearTimer("retry");
    this.nextRetryAt = undefined;
    if (!this.running || this.transport) return;
    if (!this.env.online()) {
      this.machine.set("offline", "the browser is offline");
      return;
    }
    const gen = ++this.generation;
    const name = this.picker.current();
    let token: string;
    try {
      token = await this.options.getToken({ reason: this.tokenReason });
    } catch (err) {
      if (gen !== this.generation) return;
      this.events.emit("error", new TickmeshError(ErrorCode.UNAVAILABLE, `getToken failed: ${String(err)}`));
      return this.retryIn(this.backoff.next(), "could not get a token");
    }
    if (gen !== this.generation || !this.running) return;
    this.tokenReason = "connect";
    this.welcomed = false;
    if (this.shareMode && this.openShared(gen, token)) return;
    try {
      this.transport = this.openTransport(name, gen, token);
    } catch (err) {
      // A constructor that throws, a missing global, a `SecurityError` (CSP `connect-src`), a
      // synchronous TypeError: the transport cannot open here, so move on. Reported after this
      // turn, like any other failed open, so no caller sees a half-updated state.
      queueMicrotask(() => gen === this.generation && this.onClosed({ code: 1006, reason: `${name} could not be opened: ${String(err)}`, opened: false }));
      return;
    }
    this.setTimer("connect", this.options.connectTimeoutMs, () => {
      if (gen !== this.generation || this.welcomed) return;
      // Opened (or not) but no welcome: a proxy that accepts the upgrade and then passes nothing
      // looks exactly like this, so it counts as a failed open and the picker may move on.
      this.onClosed({ code: 4004, reason: "no welcome in time", opened: false });
    });
  }

  private openTransport(name: TransportName, gen: number, token: string): Transport {
    return this.factories[name](
      {
        baseUrl: this.baseUrl,
        codec: this.codecInUse,
        channels: this.subs.channels(),
        // Positions are the truth across transports: a switch from the WebSocket resumes from
        // the last message it delivered, not from where this transport last stopped.
        cursor: this.positions.cursor(this.subs.channels()) ?? this.cursors[name],
        onCursor: (c) => (this.cursors[name] = c),
        ...this.platform,
      },
      {
        onOpen: () => {
          if (gen !== this.generation) return;
          this.authId = this.nextId();
          this.transport?.send({ op: "auth", id: this.authId, token });
        },
        onFrame: (frame) => gen === this.generation && this.onFrame(frame),
        onClose: (info) => gen === this.generation && this.onClosed(info),
      },
    );
  }

  // --- sharing one connection among tabs -------------------------------------------------------

  /** Join the shared connection of this token's user; false when this tab must go direct. */
  private openShared(gen: number, token: string): boolean {
    const subject = tokenSubject(token);
    if (!subject) return false; // nothing to key a shared connection by: connect directly
    const key = shareKey(this.baseUrl, subject);
    const handlers = {
      onOpen: () => {
        if (gen !== this.generation) return;
        this.authId = this.nextId();
        this.transport?.send({ op: "auth", id: this.authId, token });
      },
      onFrame: (frame: ServerFrame) => gen === this.generation && this.onFrame(frame),
      onClose: (info: CloseInfo) => gen === this.generation && this.onClosed(info),
      onUpstream: (msg: HubMessage) => gen === this.generation && this.onUpstream(msg),
    };
    try {
      if (this.link?.key !== key) {
        // Another user now (or the first time): never stay on the previous user's connection.
        this.link?.close();
        this.link = new SharedLink(key, subject, this.shareMode!, this.shareOptions, this.options.getToken,
          () => (_settings, getToken) => new TickmeshClient({ ...this.init, share: false, getToken }));
      }
      this.sharing = true;
      this.transport = this.link.open(engineSettingsOf(this.baseUrl, this.codecInUse, this.init.backoff, this.options), handlers);
    } catch {
      // The host refused (a SharedWorker constructor that throws): this tab goes direct.
      this.stopSharing();
      return false;
    }
    this.setTimer("connect", this.options.connectTimeoutMs, () => {
      if (gen !== this.generation || this.welcomed) return;
      this.onClosed({ code: 4004, reason: "the shared connection did not answer", opened: false });
    });
    return true;
  }

  private stopSharing(): void {
    this.shareMode = undefined;
    this.sharing = false;
    this.link?.close();
    this.link = undefined;
  }

  /** The hub's upstream changed: this tab shows the same state, transport and session. */
  private applyUpstream(up: Upstream): void {
    this.upstream = up;
    if (!this.welcomed) return; // joined: applied with the welcome that follows
    if (up.session?.user !== undefined && up.session.user !== this.link?.subject) {
      // Never show one user another's data, whatever a hub says.
      this.onClosed({ code: 1006, reason: `the shared connection is ${up.session.user}'s`, opened: false });
      return;
    }
    const before = this.session;
    this.session = up.session;
    // A hub whose upstream is (re)starting: for a tab that was connected, that is reconnecting.
    const starting = up.state === "disconnected" || up.state === "connecting";
    this.machine.set(starting ? (this.everConnected ? "reconnecting" : "connecting") : up.state, up.reason || `shared connection ${up.state}`);
    if (isLive(up.state)) this.everConnected = true;
    if (up.session && isLive(up.state) && up.session.conn_id !== before?.conn_id) this.events.emit("welcome", up.session);
  }

  private onUpstream(msg: HubMessage): void {
    this.lastFrameAt = Date.now();
    switch (msg.t) {
      case "upstream":
        return this.applyUpstream(msg.upstream);
      case "chan": {
        const record = this.subs.get(msg.ch);
        if (record) this.setChannelStatus(record, msg.status, msg.code === undefined ? undefined : new TickmeshError(msg.code, msg.reason ?? ""));
        return;
      }
      case "recovery": {
        if (!this.subs.get(msg.ch)) return;
        // The hub's stream restarted (new epoch) or skipped ahead: positions and cache follow.
        if (msg.epoch !== undefined) this.positions.setEpoch(msg.ch, msg.epoch);
        if (msg.reason === "epoch_changed") this.cache.clear(msg.ch);
        this.events.emit("recovery", { ch: msg.ch, reason: msg.reason, replayed: msg.replayed, firstSeq: msg.firstSeq });
        return;
      }
      case "error":
        this.events.emit("error", new TickmeshError(msg.code, msg.reason));
        return;
    }
  }

  private onWelcome(frame: WelcomeFrame): void {
    if (this.sharing) {
      this.welcomed = true;
      this.handovers = 0;
      this.clearTimer("connect");
      this.backoff.reset();
      this.applyUpstream(this.upstream ?? { state: "connecting", reason: "joined the shared connection" });
      // Positions are this tab's own: the hub replays from them what this tab has not seen.
      // Memberships first: an edge answers a connection's frames in order, and a reconnect must
      // be back in its topics before the dead connection's edge lets them lapse.
      for (const rec of this.memberships.values()) this.sendJoin(rec);
      for (const record of this.subs.all()) this.sendSub(record);
      this.flushCommands();
      return;
    }
    this.welcomed = true;
    this.everConnected = true;
    this.session = frame;
    this.clearTimer("connect");
    this.backoff.reset();
    this.picker.succeeded();
    const interval = Math.min(this.options.pingIntervalMs, frame.heartbeat_ms ?? Infinity);
    this.heartbeat = new Heartbeat({
      intervalMs: interval,
      timeoutMs: this.options.pongTimeoutMs,
      sendPing: () => this.transport?.send({ op: "ping", id: this.nextId() }),
      onDead: () => this.onClosed({ code: CloseCode.HEARTBEAT_TIMEOUT, reason: "no pong from the server", opened: true }),
    });
    this.scheduleRefresh(frame.expires_at);
    this.edgeDegraded = false;
    this.machine.set("connected", `connected over ${this.transportName}`);
    this.events.emit("welcome", frame);
    for (const rec of this.memberships.values()) this.sendJoin(rec); // first: see above
    for (const record of this.subs.all()) this.sendSub(record);
    this.flushCommands();
    if (!this.picker.atBest()) this.setTimer("upgrade", this.options.upgradeIntervalMs, () => this.probeUpgrade());
  }

  /** The connection ended (transport closed, heartbeat or connect timeout). */
  private onClosed(info: CloseInfo): void {
    const wasSharing = this.sharing;
    this.dropConnection();
    if (!this.running) return;
    if (wasSharing && !info.opened) {
      // Refused (another user's hub), unreachable or silent: this tab connects on its own.
      this.stopSharing();
      this.machine.set(this.everConnected ? "reconnecting" : "connecting", `${info.reason}; connecting directly`);
      return this.retryIn(0, info.reason);
    }
    if (wasSharing && info.code === HANDOVER && this.handovers++ === 0) {
      // The tab holding the connection left: join the next hub now. Not through a timer, which
      // a background tab may run a second (or a minute) late.
      this.machine.set("reconnecting", info.reason);
      queueMicrotask(() => void this.attempt());
      return;
    }
    if (info.opened && !shouldReconnect(info.code)) {
      const err = new TickmeshError(info.code, info.reason);
      this.events.emit("error", err);
      this.stop(`closed with ${err.codeName} (${info.code}): not reconnecting`, err);
      return;
    }
    if (info.code === CloseCode.TOKEN_EXPIRED) this.tokenReason = "expired";
    let delay: number;
    if (wasSharing) delay = this.backoff.next();
    else if (!info.opened && this.picker.failedToOpen() === "next") delay = 0;
    else {
      if (info.opened && !wasSharing) this.picker.dropped();
      delay = this.backoff.next();
    }
    this.machine.set(this.everConnected ? "reconnecting" : "connecting", `${info.reason} (${info.code})`);
    this.retryIn(delay, info.reason);
  }

  private retryIn(delay: number, why: string): void {
    if (!this.running) return;
    this.nextRetryAt = Date.now() + delay;
    this.setTimer("retry", delay, () => void this.attempt());
    this.lastRetryReason = why;
  }

  /** Forget the current connection (no events): its timers, heartbeat and in-flight requests. */
  private dropConnection(): void {
    this.generation += 1;
    this.transport?.close();
    this.transport = undefined;
    this.sharing = false;
    this.upstream = undefined;
    this.welcomed = false;
    this.session = undefined;
    this.heartbeat?.stop();
    this.heartbeat = undefined;
    for (const key of ["connect", "refresh", "upgrade", "drain"] as const) this.clearTimer(key);
    this.pending.clear();
    this.commands.interrupted();
    this.acks.clear();
    for (const record of this.subs.all()) this.setChannelStatus(record, "pending");
    for (const rec of this.memberships.values()) if (rec.status !== "error") this.setMembership(rec, "pending");
  }

  private stop(reason: string, error?: TickmeshError): void {
    this.running = false;
    this.error = error;
    this.dropConnection();
    this.clearTimer("retry");
    this.nextRetryAt = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
    this.link?.close();
    this.link = undefined;
    this.commands.failAll();
    this.machine.set("disconnected", reason);
  }

  // --- browser signals --------------------------------------------------------------------

  private onOnline(): void {
    if (!this.running || this.welcomed) return;
    // The network is back: waiting out the backoff would only delay the user.
    this.backoff.reset();
    this.dropConnection();
    void this.attempt();
  }

  private onOffline(): void {
    if (!this.running || this.sharing) return; // the shared connection's holder watches the network
    this.dropConnection();
    this.clearTimer("retry");
    this.machine.set("offline", "the browser went offline");
  }

  private onVisible(): void {
    if (!this.running) return;
    const stale = Date.now() - this.lastFrameAt > this.options.staleAfterMs;
    if (this.welcomed) {
      if (stale) this.heartbeat?.probe(); // a sleeping laptop may hold a dead socket
    } else if (stale && this.timers.has("retry")) {
      void this.attempt();
    }
  }

  // --- frames -----------------------------------------------------------------------------

  private onFrame(frame: ServerFrame): void {
    this.lastFrameAt = Date.now();
    this.heartbeat?.touch();
    switch (frame.op) {
      case "welcome":
        if (!this.welcomed) this.onWelcome(frame);
        return;
      case "ok":
      case "err":
        return this.onReply(frame);
      case "msg":
        return this.onMessage(frame);
      case "ping":
        this.transport?.send({ op: "pong" });
        return;
      case "pong":
        return;
      case "status":
        this.edgeDegraded = frame.state === "degraded";
        if (this.welcomed) this.machine.set(this.edgeDegraded ? "degraded" : "connected", frame.reason ?? `edge ${frame.state}`);
        return;
      case "unsub": {
        // The server ended a subscription (access revoked, list deleted): no message follows.
        const record = this.subs.get(frame.ch);
        if (record) this.setChannelStatus(record, "error", new TickmeshError(frame.code, frame.reason));
        this.presenceBook.forget(frame.ch);
        return;
      }
      case "leave": {
        const rec = this.memberships.get(frame.topic);
        if (rec) this.setMembership(rec, "error", new TickmeshError(frame.code, frame.reason));
        return;
      }
      case "reconnect":
        // The edge is draining: leave when it says (it spreads clients with jitter).
        this.setTimer("drain", frame.after_ms ?? 0, () => this.onClosed({ code: CloseCode.SHUTDOWN, reason: "edge draining", opened: true }));
        return;
    }
  }

  private onReply(frame: OkFrame | ErrFrame): void {
    if (!this.welcomed && frame.id === this.authId) {
      if (frame.op === "err") {
        // An `auth` refused with `unauthorized` will not succeed by retrying the same way.
        const code = frame.code === ErrorCode.UNAUTHORIZED ? CloseCode.AUTH_FAILED : 1006;
        this.onClosed({ code, reason: `auth refused: ${frame.reason}`, opened: true });
      }
      return;
    }
    if (this.commands.reply(frame)) return;
    const handler = frame.id == null ? undefined : this.pending.get(frame.id);
    if (!handler) return;
    this.pending.delete(frame.id!);
    handler(frame);
  }

  private onMessage(frame: MsgFrame): void {
    const record = this.subs.get(frame.ch);
    if (!record) return;
    const left = this.historyLeft.get(frame.ch);
    if (left !== undefined) {
      if (left <= 1) this.historyLeft.delete(frame.ch);
      else this.historyLeft.set(frame.ch, left - 1);
    }
    if (frame.ch.startsWith("presence:")) return this.onPresence(record, frame);
    // Once only: a replay that overlaps live delivery, or a transport switch, can repeat one.
    if (typeof frame.seq === "number" && !this.positions.accept(frame.ch, frame.seq)) return;
    const message: CachedMessage = { ch: frame.ch, seq: frame.seq, data: frame.data, receivedAt: Date.now() };
    if (left !== undefined || frame.history === true) message.history = true;
    if (frame.ch === PORTFOLIO && this.causal.offer({ record, message }, tradeSeqOf(frame.data), this.tradesView(), Date.now())) {
      return this.armCausal();
    }
    this.deliver(record, message);
    if (frame.ch === TRADES && typeof frame.seq === "number") this.afterTrade(frame.seq);
  }

  private deliver(record: SubscriptionRecord, message: CachedMessage): void {
    if (isEventChannel(message.ch)) this.cache.put(message, true);
    else this.cache.put(message, this.isPriceWithHistory(message.ch), this.options.priceHistory);
    for (const listener of [...record.listeners]) listener(message);
    this.events.emit("message", message);
  }

  /** A presence frame: versions are the edge's own (a new snapshot after every resubscribe),
   * so they bypass positions; a delta that does not follow the list held means one was missed,
   * and the channel starts again from a snapshot. The cache holds the assembled list. */
  private onPresence(record: SubscriptionRecord, frame: MsgFrame): void {
    if (!this.presenceBook.apply(frame.ch, frame.seq, frame.data as Presence)) {
      if (this.welcomed && record.status === "live") {
        this.request({ op: "unsub", id: this.nextId(), ch: frame.ch }, () => this.subs.get(frame.ch) === record && this.sendSub(record));
      }
      return;
    }
    const message: CachedMessage = { ch: frame.ch, seq: frame.seq, data: frame.data, receivedAt: Date.now() };
    this.cache.put(this.presenceBook.snapshot(frame.ch, message.receivedAt)!, false);
    for (const listener of [...record.listeners]) listener(message);
    this.events.emit("message", message);
  }

  // --- presence memberships -----------------------------------------------------------------

  private sendJoin(rec: MembershipRecord): void {
    const frame: ClientFrame = { op: "join", id: this.nextId(), topic: rec.topic };
    if (rec.data !== undefined) frame.data = rec.data;
    this.setMembership(rec, "joining");
    this.request(frame, (reply) => {
      if (this.memberships.get(rec.topic) !== rec) return;
      if (reply.op === "ok") return this.setMembership(rec, "joined");
      const error = new TickmeshError(reply.code, reply.reason);
      // A rate-limited update keeps the membership; the next update or reconnect tries again.
      this.setMembership(rec, error.code === ErrorCode.RATE_LIMITED && rec.status !== "pending" ? "joined" : "error", error);
    });
  }

  private setMembership(rec: MembershipRecord, status: MembershipStatus, error?: TickmeshError): void {
    if (rec.status === status && rec.error === error) return;
    rec.status = status;
    rec.error = error;
    this.events.emit("membership", { topic: rec.topic, status, error });
  }

  // --- causal order and acks of the user's own trades (causal.ts, acks.ts) -----------------

  private tradesView(): TradesView {
    return { subscribed: this.subs.get(TRADES) !== undefined, seq: this.positions.lastSeq(TRADES) };
  }

  private afterTrade(seq: number): void {
    this.releaseHeld();
    if (this.options.ackIntervalMs <= 0) return;
    this.acks.add(seq);
    this.ackTimer ??= setTimeout(() => this.flushAcks(), this.options.ackIntervalMs);
  }

  private flushAcks(): void {
    this.ackTimer = undefined;
    // Only a WebSocket of this client's own carries acks (a shared hub's connection acks itself).
    if (!this.welcomed || this.sharing || this.transportName !== "websocket") return this.acks.clear();
    for (const frame of this.acks.take(TRADES)) this.transport?.send(frame);
  }

  private releaseHeld(): void {
    const held = this.causal.release(this.tradesView());
    if (held && this.subs.get(held.record.ch) === held.record) this.deliver(held.record, held.message);
    if (this.causal.deadline === undefined && this.causalTimer !== undefined) {
      clearTimeout(this.causalTimer);
      this.causalTimer = undefined;
    }
  }

  private armCausal(): void {
    const deadline = this.causal.deadline;
    if (this.causalTimer !== undefined || deadline === undefined) return;
    this.causalTimer = setTimeout(() => {
      this.causalTimer = undefined;
      const held = this.causal.expire(Date.now());
      if (held && this.subs.get(held.record.ch) === held.record) this.deliver(held.record, held.message);
      this.armCausal();
    }, Math.max(0, deadline - Date.now()));
  }

  // --- subscriptions ----------------------------------------------------------------------

  private sendSub(record: SubscriptionRecord): void {
    const event = isEventChannel(record.ch);
    const since = event ? this.positions.since(record.ch) : undefined;
    const frame: ClientFrame = { op: "sub", id: this.nextId(), ch: record.ch };
    if (record.maxHz !== undefined && !event) frame.max_hz = record.maxHz;
    if (since) frame.since = since;
    // A first subscription has no position: start from the channel's recent past, so a freshly
    // loaded page shows its latest trades and notifications rather than an empty list.
    else if (event) frame.history = HISTORY_ON_FIRST_SUBSCRIBE;
    // Prices: the recent ticks every time (ticks already seen are dropped by position), so a
    // chart also fills in what a disconnection made it miss.
    else if (this.isPriceWithHistory(record.ch)) frame.history = this.options.priceHistory;
    this.historyLeft.delete(record.ch);
    this.setChannelStatus(record, "subscribing");
    this.request(frame, (reply) => this.onSubReply(record, reply, frame.history !== undefined));
  }

  private isPriceWithHistory(ch: string): boolean {
    return this.options.priceHistory > 0 && ch.startsWith("prices:");
  }

  private onSubReply(record: SubscriptionRecord, reply: OkFrame | ErrFrame, askedHistory = false): void {
    if (this.subs.get(record.ch) !== record) return;
    // The messages a `history` request replays (they follow the `ok`) are the past, not news.
    if (askedHistory && reply.op === "ok" && reply.replayed) this.historyLeft.set(record.ch, reply.replayed);
    if (reply.op === "err") {
      const error = new TickmeshError(reply.code, reply.reason);
      this.setChannelStatus(record, "error", error);
      // Transient refusals (a backend unavailable) are retried after a jittered second or two.
      if (error.retry) setTimeout(() => this.welcomed && this.subs.get(record.ch) === record && this.sendSub(record), 1000 + Math.random() * 2000);
      return;
    }
    if (reply.epoch !== undefined) {
      this.positions.setEpoch(record.ch, reply.epoch);
      // With nothing to replay, the reply's position is where we are, even if no message ever
      // arrived: a reconnect then resumes from it and misses nothing. (With a replay, the
      // replayed messages carry the position; setting it here would drop them as duplicates.)
      if (typeof reply.seq === "number" && !reply.replayed) this.positions.advance(record.ch, reply.seq);
    }
    if (reply.recovered === false) {
      // Never a silent gap: tell the application so it can reload what it derives.
      if (reply.reason === "epoch_changed") this.cache.clear(record.ch);
      this.events.emit("recovery", { ch: record.ch, reason: reply.reason ?? "unknown", replayed: reply.replayed ?? 0, firstSeq: reply.first_seq });
    }
    this.setChannelStatus(record, "live");
    if (record.ch === TRADES) this.releaseHeld();
  }

  private setChannelStatus(record: SubscriptionRecord, status: ChannelStatus, error?: TickmeshError): void {
    if (record.status === status && record.error === error) return;
    record.status = status;
    record.error = error;
    this.events.emit("subscription", { ch: record.ch, status, error });
  }

  // --- requests, refresh, upgrade -----------------------------------------------------------

  private request(frame: ClientFrame & { id: RequestId }, onReply: (frame: OkFrame | ErrFrame) => void): void {
    this.pending.set(frame.id, onReply);
    this.transport?.send(frame);
  }

  private flushCommands(): void {
    for (const frame of this.commands.flush()) this.transport?.send(frame);
  }

  private scheduleRefresh(expiresAt: number | undefined): void {
    this.clearTimer("refresh");
    if (!expiresAt) return;
    const left = expiresAt * 1000 - Date.now();
    // Refresh `refreshLeadMs` early, or halfway for short-lived tokens.
    const delay = Math.max(0, left - this.options.refreshLeadMs, left / 2);
    this.setTimer("refresh", delay, () => void this.refreshToken());
  }

  private async refreshToken(): Promise<void> {
    const gen = this.generation;
    let token: string;
    try {
      token = await this.options.getToken({ reason: "refresh" });
    } catch (err) {
      this.events.emit("error", new TickmeshError(ErrorCode.UNAVAILABLE, `token refresh failed: ${String(err)}`));
      if (gen === this.generation) this.setTimer("refresh", 10_000, () => void this.refreshToken());
      return;
    }
    if (gen !== this.generation || !this.welcomed) return;
    this.request({ op: "refresh", id: this.nextId(), token }, (reply) => {
      if (reply.op === "ok") return this.scheduleRefresh(reply.expires_at);
      // The old token stays in force until it expires; the edge then closes with 4003 and we
      // reconnect with a fresh one.
      this.events.emit("error", new TickmeshError(reply.code, reply.reason));
    });
  }

  /** On a fallback transport: if the best one opens now, move back to it. */
  private probeUpgrade(): void {
    if (!this.welcomed || this.picker.atBest()) return;
    const gen = this.generation;
    let done = false;
    const retryLater = () => {
      done = true;
      if (gen === this.generation) this.setTimer("upgrade", this.options.upgradeIntervalMs, () => this.probeUpgrade());
    };
    const options = { baseUrl: this.baseUrl, codec: this.codecInUse, channels: [], ...this.platform };
    let probe: Transport | undefined;
    const onOpen = () => {
      if (done) return;
      done = true;
      probe?.close();
      if (gen !== this.generation) return;
      // Resubscribing with `since` on the new transport loses nothing.
      this.picker.upgrade();
      this.dropConnection();
      this.machine.set("reconnecting", `upgrading to ${this.picker.best()}`);
      void this.attempt();
    };
    try {
      probe = this.factories[this.picker.best()](options, { onOpen, onFrame: () => {}, onClose: retryLater });
    } catch {
      retryLater(); // still blocked (its constructor throws): try again later
    }
  }


  private nextId(): number {
    this.seq += 1;
    return this.seq;
  }

  private setTimer(key: "retry" | "connect" | "refresh" | "upgrade" | "drain", ms: number, fn: () => void): void {
    this.clearTimer(key);
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        fn();
      }, ms),
    );
  }

  private clearTimer(key: "retry" | "connect" | "refresh" | "upgrade" | "drain"): void {
    const timer = this.timers.get(key);
    if (timer !== undefined) clearTimeout(timer);
    this.timers.delete(key);
  }
}
