import type { BackoffOptions } from "./backoff.js";
import type { Codec } from "./codec.js";
import type { ClientOptions } from "./options.js";
import type { ClientFrame, Position, ServerFrame, WelcomeFrame } from "./frames.js";
import type { ConnectionState } from "./state.js";
import type { ChannelStatus } from "./subscriptions.js";
import type { TransportName } from "./transport.js";

/**
 * What the tabs of one user and the hub that holds their shared connection say to each other.
 * Everything here is structured-cloneable: it crosses a `MessagePort` (SharedWorker) or a
 * `BroadcastChannel` (leader election). Data frames are the wire protocol's own (`sub`, `cmd`,
 * `ok`, `msg`...), so a tab keeps its own positions, dedupe and command retries exactly as on a
 * direct connection; the rest mirrors the hub's upstream connection.
 */

/** A tab's random id, unique per client instance. */
export type TabId = string;

/** Who a hub message is for: one tab, a list of tabs, or every tab joined to that hub. */
export type Recipients = TabId | TabId[] | "*";

/** Connection settings a tab proposes for the shared connection (the first tab's win). */
export interface EngineSettings {
  url: string;
  transports?: TransportName[];
  /** The codec's WebSocket subprotocol (`tickmesh.v1.json` or `tickmesh.v1.msgpack`). */
  codec?: string;
  backoff?: Omit<BackoffOptions, "random">;
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  connectTimeoutMs?: number;
  refreshLeadMs?: number;
  staleAfterMs?: number;
  upgradeIntervalMs?: number;
  commandTimeoutMs?: number;
  historyLimit?: number;
  priceHistory?: number;
}

/** The hub's connection to the edge, as tabs mirror it. */
export interface Upstream {
  state: ConnectionState;
  reason: string;
  transport?: TransportName;
  session?: WelcomeFrame;
}

export type TabMessage =
  /** Join the hub (any hub, when `hub` is absent). The token's subject must be the hub's. */
  | { t: "join"; tab: TabId; hub?: string; token: string; settings: EngineSettings }
  /** A wire frame for the edge (`sub`, `unsub`, `cmd`, `ping`): the hub answers as an edge would. */
  | { t: "frame"; tab: TabId; hub: string; frame: ClientFrame }
  /** The answer to a `token?` request. */
  | { t: "token"; tab: TabId; hub: string; id: number; token?: string; error?: string }
  | { t: "leave"; tab: TabId; hub: string }
  /** Switch the shared connection to this codec (a feature flag moved the user): one reconnect
   * of the hub's connection, every tab resumes. Tabs of one user get the same flag values. */
  | { t: "codec"; tab: TabId; hub: string; codec: string };

export type HubMessage = { hub: string; to: Recipients } & (
  /** A hub is ready (a new leader): tabs not joined to it join now. */
  | { t: "hello" }
  | { t: "joined"; subject: string; upstream: Upstream }
  /** This tab may not use this hub (another subject, or the hub is unusable): connect directly. */
  | { t: "refused"; reason: string }
  | { t: "frame"; frame: ServerFrame }
  | { t: "upstream"; upstream: Upstream }
  | { t: "chan"; ch: string; status: ChannelStatus; code?: number; reason?: string }
  | { t: "recovery"; ch: string; reason: string; replayed: number; firstSeq?: number; epoch?: string }
  | { t: "error"; code: number; reason: string }
  /** The upstream connection ended with a "do not reconnect" code. */
  | { t: "fatal"; code: number; reason: string }
  | { t: "token?"; id: number; reason: "connect" | "refresh" | "expired" }
  /** The hub is going away (its leader tab leaves): join the next one. */
  | { t: "bye" }
);

export function isFor(msg: HubMessage, tab: TabId): boolean {
  const to = msg.to;
  return to === "*" || to === tab || (Array.isArray(to) && to.includes(tab));
}

/**
 * The name tabs of one origin share a connection under: the edge's URL and the user (the
 * token's subject). Tabs of different users never meet, whatever else they have in common.
 */
export function shareKey(url: string, subject: string): string {
  return `tickmesh:${JSON.stringify([url, subject])}`;
}

export function subjectOfKey(key: string): string | undefined {
  try {
    const parsed = JSON.parse(key.slice("tickmesh:".length)) as unknown;
    return Array.isArray(parsed) && typeof parsed[1] === "string" ? parsed[1] : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `since` is at or before `other` in the same stream (an older resume point). */
export function isBefore(since: Position, other: Position | undefined): boolean {
  return other === undefined || (since.epoch === other.epoch && since.seq < other.seq);
}

export const randomId = (): string =>
  globalThis.crypto?.randomUUID?.() ?? `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;

/** What a tab proposes for the shared connection: its options, less what cannot be cloned. */
export function engineSettingsOf(url: string, codec: Codec, backoff: BackoffOptions | undefined, resolved: Required<Pick<ClientOptions,
  "transports" | "pingIntervalMs" | "pongTimeoutMs" | "connectTimeoutMs" | "refreshLeadMs" | "staleAfterMs" | "upgradeIntervalMs" | "commandTimeoutMs" | "historyLimit" | "priceHistory">>): EngineSettings {
  const { pingIntervalMs, pongTimeoutMs, connectTimeoutMs, refreshLeadMs, staleAfterMs, upgradeIntervalMs, commandTimeoutMs, historyLimit, priceHistory } = resolved;
  return {
    url, pingIntervalMs, pongTimeoutMs, connectTimeoutMs, refreshLeadMs, staleAfterMs, upgradeIntervalMs, commandTimeoutMs, historyLimit, priceHistory,
    transports: [...resolved.transports],
    codec: codec.subprotocol,
    backoff: backoff && { baseMs: backoff.baseMs, maxMs: backoff.maxMs },
  };
}
