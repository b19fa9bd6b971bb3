import type { CachedMessage } from "./cache.js";
import type { TickmeshError } from "./errors.js";
import type { Presence, PresenceMember } from "./generated/contracts.js";

/** Who is in a presence topic, as assembled from the channel's snapshot and deltas. */
export interface PresenceState {
  /** The listed members (at most `limit`), in order of `since`, then user id. */
  members: PresenceMember[];
  /** Members in the topic, listed or not. */
  count: number;
  /** Their open connections. */
  conns: number;
  limit: number;
  /** The version of the edge's view (`seq` of the last frame applied). */
  version: number;
}

interface List {
  members: Map<string, PresenceMember>;
  count: number;
  conns: number;
  limit: number;
  version: number;
}

const order = (a: PresenceMember, b: PresenceMember) => a.since - b.since || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0);

/**
 * Member lists of `presence:<topic>` channels. A snapshot replaces a list; a delta applies only
 * on top of the version just before it. Anything else is a gap the caller resolves by
 * subscribing again (the edge then starts from a fresh snapshot).
 */
export class PresenceBook {
  private readonly lists = new Map<string, List>();

  /** Apply one `msg` of a presence channel; false when it cannot be applied (a gap). */
  apply(ch: string, seq: number, data: Presence): boolean {
    if (data.type === "snapshot") {
      const members = new Map((data.members ?? []).map((m) => [m.user, m] as const));
      this.lists.set(ch, { members, count: data.count, conns: data.conns, limit: data.limit, version: seq });
      return true;
    }
    const list = this.lists.get(ch);
    if (!list || seq !== list.version + 1) return false;
    for (const user of data.leaves ?? []) list.members.delete(user);
    for (const m of [...(data.joins ?? []), ...(data.updates ?? [])]) list.members.set(m.user, m);
    Object.assign(list, { count: data.count, conns: data.conns, limit: data.limit, version: seq });
    return true;
  }

  state(ch: string): PresenceState | undefined {
    const list = this.lists.get(ch);
    if (!list) return undefined;
    return { members: [...list.members.values()].sort(order), count: list.count, conns: list.conns, limit: list.limit, version: list.version };
  }

  /** The current list as a snapshot message: what a new listener (or a late tab) starts from. */
  snapshot(ch: string, receivedAt: number): CachedMessage<Presence> | undefined {
    const s = this.state(ch);
    if (!s) return undefined;
    return { ch, seq: s.version, receivedAt, data: { type: "snapshot", count: s.count, conns: s.conns, limit: s.limit, members: s.members } };
  }

  forget(ch: string): void {
    this.lists.delete(ch);
  }
}

/**
 * `pending` (wanted, not connected), `joining` (sent), `joined`, `error` (refused or ended by the
 * server: see the error's code; not retried until {@link Membership.update} or a new join).
 */
export type MembershipStatus = "pending" | "joining" | "joined" | "error";

/** This client's membership of a presence topic (see `TickmeshClient.join`). */
export interface Membership {
  readonly topic: string;
  /** Set the data other members see (at most 256 bytes of JSON). */
  update(data: unknown): void;
  /** Leave (when no other holder in this client still wants the topic). Idempotent. */
  leave(): void;
}

/** One topic's membership, shared by every holder in this client (counted like listeners). */
export interface MembershipRecord {
  topic: string;
  data: unknown;
  holders: number;
  status: MembershipStatus;
  error?: TickmeshError;
}
