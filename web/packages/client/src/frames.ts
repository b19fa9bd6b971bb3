/** Frames of the wire protocol (contracts/PROTOCOL.md). Messages' `data` types are generated. */

export type RequestId = number | string;

/** An event channel's position: positions from another epoch mean nothing. */
export interface Position {
  epoch: string;
  seq: number;
}

export type ClientFrame =
  | { op: "auth"; id: RequestId; token: string }
  | { op: "refresh"; id: RequestId; token: string }
  | { op: "sub"; id: RequestId; ch: string; max_hz?: number; since?: Position; history?: number }
  | { op: "unsub"; id: RequestId; ch: string }
  | { op: "ping"; id: RequestId }
  | { op: "pong" }
  | { op: "cmd"; id: RequestId; name: string; key?: string; data: unknown }
  | { op: "join"; id: RequestId; topic: string; data?: unknown }
  | { op: "leave"; id: RequestId; topic: string }
  | { op: "ack"; id?: RequestId; ch: string; seqs: number[] };

export interface WelcomeFrame {
  op: "welcome";
  id?: RequestId | null;
  conn_id?: string;
  user?: string;
  roles?: string[];
  proto?: string;
  heartbeat_ms?: number;
  expires_at?: number;
  limits?: Record<string, number>;
}

export interface OkFrame {
  op: "ok";
  id?: RequestId | null;
  /** Event subscriptions: the stream's epoch and how recovery went. */
  epoch?: string;
  recovered?: boolean;
  reason?: "position_expired" | "epoch_changed" | string;
  replayed?: number;
  first_seq?: number;
  /** Event subscriptions: the position the subscription continues from (the edge sends it). */
  seq?: number;
  /** Refresh replies. */
  expires_at?: number;
  /** Command replies. */
  data?: unknown;
  /** Some transports name the channel a reply is for. */
  ch?: string;
}

export interface ErrFrame {
  op: "err";
  id?: RequestId | null;
  code: number;
  reason: string;
  /** Command errors: what the client needs to act on it (610: `{watchlist}`). */
  data?: unknown;
  ch?: string;
}

export interface MsgFrame {
  op: "msg";
  ch: string;
  seq: number;
  data: unknown;
  /** Replayed history, not news: set by a shared connection's hub (edges mark it by `replayed`). */
  history?: boolean;
}

export type ServerFrame =
  | WelcomeFrame
  | OkFrame
  | ErrFrame
  | MsgFrame
  | { op: "pong"; id?: RequestId | null }
  | { op: "ping" }
  | { op: "status"; state: "ok" | "degraded"; reason?: string }
  | { op: "reconnect"; after_ms?: number }
  /** The server ended a subscription (access revoked: 301; the list was deleted: 201). */
  | { op: "unsub"; ch: string; code: number; reason: string }
  /** The server ended this connection's membership of a presence topic. */
  | { op: "leave"; topic: string; code: number; reason: string }
  /** HTTP transports only: the edge ended the stream with this close code. */
  | { op: "close"; code: number; reason?: string };

/** A server message is one frame or a batch of frames, in order. */
export function framesOf(decoded: unknown): ServerFrame[] {
  const list = Array.isArray(decoded) ? decoded : [decoded];
  // Anything that is not an object with an `op` is dropped: the server never sends it, and a
  // broken proxy must not crash the client.
  return list.filter((f): f is ServerFrame => typeof f === "object" && f !== null && typeof (f as { op?: unknown }).op === "string");
}
