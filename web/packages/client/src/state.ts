import { Emitter } from "./emitter.js";

/**
 * The connection's states. Exactly one place changes them ({@link StateMachine.set}), and every
 * change is an event, so a UI never has to guess.
 *
 * - `disconnected`: not connected and not trying (before `connect()`, after `disconnect()`, or
 *   after a "do not reconnect" close code: see `error`).
 * - `connecting`: the first attempt(s) of this session, before anything worked.
 * - `connected`: authenticated and live.
 * - `degraded`: connected, but the edge reports trouble behind it (`status: degraded`, e.g.
 *   NATS unavailable): subscriptions are kept and resume by themselves.
 * - `reconnecting`: was connected, lost it, retrying with backoff.
 * - `offline`: the browser says there is no network; waiting for its `online` event.
 */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "degraded" | "offline" | "disconnected";

export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  /** Why, for logs and people. */
  reason: string;
}

/** States in which frames flow. */
export const isLive = (state: ConnectionState): boolean => state === "connected" || state === "degraded";

export class StateMachine {
  private current: ConnectionState = "disconnected";
  readonly events = new Emitter<{ change: StateChange }>();

  get state(): ConnectionState {
    return this.current;
  }

  /** The single place where the state changes. Returns whether it did. */
  set(to: ConnectionState, reason: string): boolean {
    const from = this.current;
    if (from === to) return false;
    this.current = to;
    this.events.emit("change", { from, to, reason });
    return true;
  }
}
