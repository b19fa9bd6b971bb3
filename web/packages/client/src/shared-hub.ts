import { codecNamed } from "./codec.js";
import type { CachedMessage } from "./cache.js";
import { isEventChannel } from "./channels.js";
import type { TickmeshClient } from "./client.js";
import type { TokenRequest } from "./options.js";
import { TickmeshError } from "./errors.js";
import type { ClientFrame, MsgFrame, OkFrame, Position } from "./frames.js";
import { ErrorCode } from "./generated/contracts.js";
import { tokenSubject } from "./jwt.js";
import type { EngineSettings, HubMessage, Recipients, TabId, TabMessage, Upstream } from "./shared-protocol.js";
import { randomId } from "./shared-protocol.js";
import type { Membership } from "./presence.js";

/** Recent messages a tab joining late starts with on an event channel (as the edge's `history`). */
const LOG_LIMIT = 200;

export interface HubOptions {
  /** The user this hub serves: a join whose token names another subject is refused. */
  subject: string;
  /** The one upstream connection (share: false), with the hub's token source. */
  createEngine(settings: EngineSettings, getToken: (request: TokenRequest) => Promise<string>): TickmeshClient;
  /** Deliver a message to tabs (a MessagePort each, or one BroadcastChannel). */
  post(message: HubMessage): void;
  /** Call `gone` when a tab's page goes away without saying so (Web Locks). */
  watchTab?(tab: TabId, gone: () => void): void;
  /**
   * Tabs that are about to join (a new leader after a handover). The upstream waits for them
   * (at most `handoverWaitMs`) so its first subscriptions resume from the oldest position any
   * of them holds: nothing published during the handover is lost to any tab.
   */
  expectedTabs?: () => Promise<TabId[]>;
  handoverWaitMs?: number;
  /** Keep an unused upstream this long, so a reloading tab finds it open (default 5000 ms). */
  idleMs?: number;
  /** A tab that does not answer a token request in this time is skipped (default 5000 ms). */
  tokenTimeoutMs?: number;
  id?: string;
}

interface PeerSub {
  id: number | string;
  since?: Position;
  history?: number;
  acked: boolean;
}

interface Peer {
  id: TabId;
  subs: Map<string, PeerSub>;
  /** Presence memberships this tab holds through the upstream (counted there across tabs). */
  joins: Map<string, { membership: Membership; answered: boolean }>;
}

interface Channel {
  ch: string;
  event: boolean;
  peers: Set<TabId>;
  off: () => void;
  /** Event channels: the messages received since `from` (every one with seq > from). */
  log: CachedMessage[];
  from?: number;
}

interface TokenAsk {
  id: number;
  reason: TokenRequest["reason"];
  resolve(token: string): void;
  reject(err: Error): void;
  asked: Set<TabId>;
  current?: TabId;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * One upstream connection shared by the tabs of one user. To each tab it answers like an edge
 * (the same `ok`/`err`/`msg` frames), so a tab keeps its own positions, dedupe, caches and
 * command retries; subscriptions are counted across tabs (the first subscribes upstream, the
 * last unsubscribes). A tab joining late on an event channel gets what it missed from the
 * hub's log, resumed from its own position; when the log does not reach back that far it is
 * told so (`recovered: false`), never left with a silent gap.
 *
 * Guarantees: a tab sees data only after joining with a token for this hub's subject, and the
 * upstream must be welcomed as that same user, or every tab is refused (they then connect on
 * their own).
 */
export class Hub {
  readonly id: string;
  private readonly peers = new Map<TabId, Peer>();
  private readonly channels = new Map<string, Channel>();
  private engine: TickmeshClient | undefined;
  private joinToken: string | undefined;
  private connecting = false;
  /** Commands that arrived while the upstream waits to start (a handover): sent once it has. */
  private deferred: Array<() => void> = [];
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly tokenAsks = new Map<number, TokenAsk>();
  private readonly watched = new Set<TabId>();
  private tokenSeq = 0;
  private closed = false;
  private handedOver = false;

  constructor(private readonly options: HubOptions) {
    this.id = options.id ?? randomId();
  }

  /** Tabs joined right now. */
  get tabs(): TabId[] {
    return [...this.peers.keys()];
  }

  /** Handle one message from a tab. Messages for another hub are ignored. */
  receive(msg: TabMessage): void {
    if (this.closed) {
      if (msg.t === "join") this.post(msg.tab, { t: "refused", reason: "this shared connection has closed" });
      return;
    }
    if (msg.t === "join") {
      if (msg.hub === undefined || msg.hub === this.id) this.join(msg.tab, msg.token, msg.settings);
      return;
    }
    if (msg.hub !== this.id) return;
    if (msg.t === "leave") return this.leave(msg.tab);
    if (msg.t === "token") return this.onToken(msg.tab, msg.id, msg.token, msg.error);
    if (msg.t === "codec") {
      void codecNamed(msg.codec).then((codec) => codec && !this.closed && this.engine?.setCodec(codec));
      return;
    }
    const peer = this.peers.get(msg.tab);
    // Not (or no longer) joined here: tell the tab to join again rather than drop its frames.
    if (!peer) return this.post(msg.tab, { t: "bye" });
    this.onFrame(peer, msg.frame);
  }

  /** A tab went away without leaving (its page closed). */
  leave(tab: TabId): void {
    const peer = this.peers.get(tab);
    if (!peer) return;
    this.peers.delete(tab);
    for (const ch of [...peer.subs.keys()]) this.unregister(peer, ch);
    for (const held of peer.joins.values()) held.membership.leave();
    peer.joins.clear();
    for (const ask of this.tokenAsks.values()) if (ask.current === tab) this.askNext(ask);
    if (this.peers.size === 0 && this.engine) {
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => this.peers.size === 0 && this.engine?.disconnect(), this.options.idleMs ?? 5000);
    }
  }

  /** Stop for good: tabs are told to join another hub (`bye`). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.post("*", { t: "bye" });
    this.engine?.disconnect();
    for (const ask of this.tokenAsks.values()) ask.reject(new Error("hub closed"));
    this.tokenAsks.clear();
  }

  // --- tabs -------------------------------------------------------------------------------

  private join(tab: TabId, token: string, settings: EngineSettings): void {
    if (tokenSubject(token) !== this.options.subject) {
      this.post(tab, { t: "refused", reason: "the token names another user than this shared connection's" });
      return;
    }
    clearTimeout(this.idleTimer);
    const old = this.peers.get(tab);
    if (old) this.leave(tab); // the tab's link broke and it came back: start it afresh
    this.peers.set(tab, { id: tab, subs: new Map(), joins: new Map() });
    if (!this.watched.has(tab)) {
      this.watched.add(tab);
      this.options.watchTab?.(tab, () => (this.watched.delete(tab), this.leave(tab)));
    }
    this.joinToken = token;
    if (!this.engine) {
      this.engine = this.options.createEngine(settings, (request) => this.getToken(request));
      this.watchEngine(this.engine);
    }
    this.post(tab, { t: "joined", subject: this.options.subject, upstream: this.upstream() });
    if (this.engine.state === "disconnected" && !this.connecting) void this.connectEngine();
  }

  private async connectEngine(): Promise<void> {
    this.connecting = true;
    try {
      if (this.options.expectedTabs && !this.handedOver) {
        this.handedOver = true;
        // A handover: let every tab that was on the old leader rejoin (and seed its positions)
        // before the first subscription goes out.
        const expected = await this.options.expectedTabs().catch(() => [] as TabId[]);
        const deadline = Date.now() + (this.options.handoverWaitMs ?? 1000);
        while (expected.some((tab) => !this.peers.has(tab)) && Date.now() < deadline && !this.closed) {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      if (!this.closed && this.peers.size > 0) this.engine?.connect();
    } finally {
      this.connecting = false;
      const deferred = this.deferred;
      this.deferred = [];
      for (const run of deferred) run();
    }
  }

  private onFrame(peer: Peer, frame: ClientFrame): void {
    switch (frame.op) {
      case "sub":
        return this.register(peer, frame);
      case "unsub":
        this.unregister(peer, frame.ch);
        return this.reply(peer.id, { op: "ok", id: frame.id });
      case "cmd":
        return this.command(peer, frame);
      case "join":
        return this.joinTopic(peer, frame);
      case "leave":
        peer.joins.get(frame.topic)?.membership.leave();
        peer.joins.delete(frame.topic);
        return this.reply(peer.id, { op: "ok", id: frame.id });
      case "ping":
        return this.post(peer.id, { t: "frame", frame: { op: "pong", id: frame.id } });
      case "refresh":
        // Tokens are the hub's business (it asks a tab when the upstream needs one).
        return this.reply(peer.id, { op: "ok", id: frame.id });
      case "auth":
      case "pong":
        return;
    }
  }

  private command(peer: Peer, frame: Extract<ClientFrame, { op: "cmd" }>): void {
    if (this.connecting) return void this.deferred.push(() => this.peers.has(peer.id) && this.command(peer, frame));
    const engine = this.engine!;
    // The tab's idempotency key goes upstream unchanged: a command re-sent by a tab after a
    // handover runs once.
    engine.command(frame.name as never, frame.data as never, frame.key ? { key: frame.key } : {}).then(
      (data) => this.peers.has(peer.id) && this.reply(peer.id, { op: "ok", id: frame.id, data }),
      (err: unknown) => {
        if (!this.peers.has(peer.id)) return;
        const e = err instanceof TickmeshError ? err : new TickmeshError(ErrorCode.INTERNAL, String(err));
        this.post(peer.id, { t: "frame", frame: { op: "err", id: frame.id, code: e.code, reason: e.reason, ...(e.data === undefined ? {} : { data: e.data }) } });
      },
    );
  }

  // --- presence memberships -----------------------------------------------------------------

  /** A tab joins a topic (or updates its data): the upstream holds one membership for all tabs
   * of this user (the edge counts the user once anyway); the tab is answered as the edge would. */
  private joinTopic(peer: Peer, frame: Extract<ClientFrame, { op: "join" }>): void {
    if (this.connecting) return void this.deferred.push(() => this.peers.has(peer.id) && this.joinTopic(peer, frame));
    const engine = this.engine!;
    const held = peer.joins.get(frame.topic);
    const before = engine.membershipStatus(frame.topic).status;
    if (held && frame.data !== undefined) held.membership.update(frame.data);
    else if (!held) peer.joins.set(frame.topic, { membership: engine.join(frame.topic, frame.data), answered: false });
    const entry = peer.joins.get(frame.topic)!;
    const settle = (status: string, error?: TickmeshError): boolean => {
      if (status === "joined") this.reply(peer.id, { op: "ok", id: frame.id, ...(held ? { updated: true } : {}) });
      else if (status === "error" && error) this.post(peer.id, { t: "frame", frame: { op: "err", id: frame.id, code: error.code, reason: error.reason } });
      else return false;
      entry.answered = true;
      return true;
    };
    // Nothing was sent upstream (already joined, no new data): answer at once.
    if (before === "joined" && frame.data === undefined && settle("joined")) return;
    const off = engine.events.on("membership", (e) => {
      if (e.topic === frame.topic && this.peers.has(peer.id) && settle(e.status, e.error)) off();
    });
  }

  // --- subscriptions ------------------------------------------------------------------------

  private register(peer: Peer, frame: Extract<ClientFrame, { op: "sub" }>): void {
    const engine = this.engine!;
    const { ch } = frame;
    let chan = this.channels.get(ch);
    if (!chan) {
      const event = isEventChannel(ch);
      // The upstream may still hold this channel (its last tab left a moment ago): then it
      // already runs from its own position, and `from` is learnt as for a fresh subscription.
      const seeded = event && frame.since !== undefined && engine.resumeFrom(ch, frame.since);
      const created: Channel = { ch, event, peers: new Set(), off: () => {}, log: [], from: seeded ? frame.since!.seq : undefined };
      chan = created;
      this.channels.set(ch, created);
      created.off = engine.subscribe(ch, (m) => this.onMessage(created, m), frame.max_hz === undefined ? {} : { maxHz: frame.max_hz });
    } else if (frame.since && chan.event && engine.resumeFrom(ch, frame.since)) {
      // Not sent upstream yet: the subscription now starts early enough for this tab too.
      chan.from = Math.min(chan.from ?? frame.since.seq, frame.since.seq);
    }
    chan.peers.add(peer.id);
    peer.subs.set(ch, { id: frame.id, since: frame.since, history: frame.history, acked: false });
    if (engine.channelStatus(ch).status === "live") this.ack(peer, chan);
  }

  private unregister(peer: Peer, ch: string): void {
    peer.subs.delete(ch);
    const chan = this.channels.get(ch);
    if (!chan) return;
    chan.peers.delete(peer.id);
    if (chan.peers.size > 0) return;
    this.channels.delete(ch);
    chan.off();
  }

  /** Answer a tab's `sub` as the edge would: `ok`, then what it missed from the log. */
  private ack(peer: Peer, chan: Channel): void {
    const sub = peer.subs.get(chan.ch);
    if (!sub || sub.acked) return;
    sub.acked = true;
    const engine = this.engine!;
    if (!chan.event) {
      // State channels: the current value, or the recent ticks a price chart asked for.
      const last = engine.last(chan.ch);
      const ticks = sub.history ? engine.history(chan.ch).slice(-sub.history) : [];
      const backlog = ticks.length ? ticks : last ? [last] : [];
      this.reply(peer.id, ticks.length ? { op: "ok", id: sub.id, replayed: ticks.length } : { op: "ok", id: sub.id });
      for (const m of backlog) this.post(peer.id, { t: "frame", frame: msgFrame(m) });
      return;
    }
    const { epoch, seq } = engine.position(chan.ch);
    const reply: OkFrame = { op: "ok", id: sub.id, epoch };
    let backlog: CachedMessage[];
    const since = sub.since;
    if (!since) {
      backlog = sub.history ? chan.log.slice(-sub.history) : [];
    } else if (epoch !== undefined && since.epoch !== epoch) {
      backlog = chan.log.slice(-(sub.history ?? 50));
      Object.assign(reply, { recovered: false, reason: "epoch_changed" });
    } else if (chan.from !== undefined ? since.seq >= chan.from : seq !== undefined && since.seq >= seq) {
      backlog = chan.log.filter((m) => m.seq > since.seq);
      reply.recovered = true;
    } else {
      // This tab is further behind than anything the hub holds: say so rather than pretend.
      backlog = chan.log;
      Object.assign(reply, { recovered: false, reason: "position_expired", first_seq: chan.log[0]?.seq });
    }
    reply.replayed = backlog.length;
    if (backlog.length === 0 && seq !== undefined) reply.seq = seq;
    this.reply(peer.id, reply);
    for (const m of backlog) this.post(peer.id, { t: "frame", frame: msgFrame(m) });
  }

  private onMessage(chan: Channel, m: CachedMessage): void {
    if (this.channels.get(chan.ch) !== chan) return;
    if (chan.event) {
      if (chan.from === undefined) chan.from = m.seq - 1; // everything from this one on is here
      chan.log.push(m);
      if (chan.log.length > LOG_LIMIT) chan.from = chan.log.splice(0, chan.log.length - LOG_LIMIT).at(-1)!.seq;
    }
    const to = this.acked(chan);
    if (to.length) this.post(to, { t: "frame", frame: msgFrame(m) });
  }

  private acked(chan: Channel): TabId[] {
    const out: TabId[] = [];
    for (const tab of chan.peers) if (this.peers.get(tab)?.subs.get(chan.ch)?.acked) out.push(tab);
    return out;
  }

  // --- the upstream -------------------------------------------------------------------------

  private watchEngine(engine: TickmeshClient): void {
    engine.events.on("state", ({ to, reason }) => {
      if (to === "connected" && engine.session?.user !== undefined && engine.session.user !== this.options.subject) {
        // The edge says this is someone else: no tab may see what arrives on it.
        this.post("*", { t: "refused", reason: `the edge welcomed ${engine.session.user}, not ${this.options.subject}` });
        this.peers.clear();
        this.close();
        return;
      }
      if (to === "disconnected" && engine.error && this.peers.size > 0) {
        this.post("*", { t: "fatal", code: engine.error.code, reason: engine.error.reason });
        return;
      }
      this.post("*", { t: "upstream", upstream: { ...this.upstream(), reason } });
    });
    engine.events.on("subscription", ({ ch, status, error }) => {
      const chan = this.channels.get(ch);
      if (!chan) return;
      if (status === "live" && chan.event && chan.from === undefined && chan.log.length === 0) {
        chan.from = engine.position(ch).seq; // nothing to replay: the edge's position is ours
      }
      const to = this.acked(chan);
      if (to.length) this.post(to, { t: "chan", ch, status, code: error?.code, reason: error?.reason });
      for (const tab of [...chan.peers]) {
        const peer = this.peers.get(tab);
        const sub = peer?.subs.get(ch);
        if (!peer || !sub || sub.acked) continue;
        if (status === "live") this.ack(peer, chan);
        else if (status === "error" && error) {
          this.reply(tab, { op: "err", id: sub.id, code: error.code, reason: error.reason });
          this.unregister(peer, ch); // as on the edge: a refused subscription does not exist
        }
      }
    });
    engine.events.on("recovery", (event) => {
      const chan = this.channels.get(event.ch);
      if (!chan) return;
      // What the log holds no longer continues into what arrives next: start it again.
      chan.log = [];
      chan.from = undefined;
      const to = this.acked(chan);
      if (to.length) this.post(to, { t: "recovery", ...event, epoch: engine.position(event.ch).epoch });
    });
    engine.events.on("error", (err) => this.post("*", { t: "error", code: err.code, reason: err.reason }));
    engine.events.on("membership", ({ topic, status, error }) => {
      if (status !== "error" || !error) return;
      // The edge ended a membership tabs hold (access revoked): tell each, as the edge would.
      for (const peer of this.peers.values()) {
        if (!peer.joins.get(topic)?.answered) continue;
        peer.joins.delete(topic);
        this.post(peer.id, { t: "frame", frame: { op: "leave", topic, code: error.code, reason: error.reason } });
      }
    });
  }

  private upstream(): Upstream {
    const engine = this.engine;
    if (!engine) return { state: "connecting", reason: "starting the shared connection" };
    return { state: engine.state, reason: "", transport: engine.transportName, session: engine.session };
  }

  // --- tokens -------------------------------------------------------------------------------

  /** The upstream's token source: the joining tab's token first, then any tab's `getToken`. */
  private getToken(request: TokenRequest): Promise<string> {
    if (request.reason === "connect" && this.joinToken) {
      const token = this.joinToken;
      this.joinToken = undefined;
      return Promise.resolve(token);
    }
    return new Promise((resolve, reject) => {
      const ask: TokenAsk = { id: ++this.tokenSeq, reason: request.reason, resolve, reject, asked: new Set() };
      this.tokenAsks.set(ask.id, ask);
      this.askNext(ask);
    });
  }

  private askNext(ask: TokenAsk): void {
    clearTimeout(ask.timer);
    if (!this.tokenAsks.has(ask.id)) return;
    const tab = [...this.peers.keys()].reverse().find((t) => !ask.asked.has(t)); // newest tab first
    if (!tab) {
      this.tokenAsks.delete(ask.id);
      ask.reject(new Error("no tab could give a token"));
      return;
    }
    ask.asked.add(tab);
    ask.current = tab;
    ask.timer = setTimeout(() => this.askNext(ask), this.options.tokenTimeoutMs ?? 5000);
    this.post(tab, { t: "token?", id: ask.id, reason: ask.reason });
  }

  private onToken(tab: TabId, id: number, token: string | undefined, error: string | undefined): void {
    const ask = this.tokenAsks.get(id);
    if (!ask || ask.current !== tab) return;
    if (token !== undefined && tokenSubject(token) === this.options.subject) {
      clearTimeout(ask.timer);
      this.tokenAsks.delete(id);
      ask.resolve(token);
      return;
    }
    if (token !== undefined) {
      // This tab now belongs to someone else: it must not stay on this user's connection.
      this.post(tab, { t: "refused", reason: "the token names another user than this shared connection's" });
      this.leave(tab); // asks the next tab
      return;
    }
    void error; // that tab's getToken failed: another tab may do better
    this.askNext(ask);
  }

  // --- posting ------------------------------------------------------------------------------

  private reply(to: TabId, frame: OkFrame | { op: "err"; id: number | string; code: number; reason: string }): void {
    this.post(to, { t: "frame", frame });
  }

  private post(to: Recipients, body: DistributiveOmit<HubMessage, "hub" | "to">): void {
    this.options.post({ ...body, hub: this.id, to } as HubMessage);
  }
}

/** A cached message as a frame for a tab; history the upstream replayed stays marked as such. */
function msgFrame(m: CachedMessage): MsgFrame {
  return m.history ? { op: "msg", ch: m.ch, seq: m.seq, data: m.data, history: true } : { op: "msg", ch: m.ch, seq: m.seq, data: m.data };
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
