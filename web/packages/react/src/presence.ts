import type { ChannelStatus, MembershipStatus, PresenceMember, TickmeshError } from "@tickmesh/client";
import { useEffect, useMemo, useRef, useState } from "react";
import { useTickmeshClient } from "./provider.js";

export interface PresenceSnapshot {
  /** The listed members (at most the edge's limit), in order of joining. */
  members: readonly PresenceMember[];
  /** Everyone in the topic, listed or not. */
  count: number;
  /** This user's entry, when listed (all their tabs and devices together). */
  me: PresenceMember | undefined;
  /** The `presence:<topic>` subscription. */
  status: ChannelStatus;
  /** This component's membership (`idle` when it only watches). */
  membership: MembershipStatus | "idle";
  /** Why the subscription or the membership was refused or ended. */
  error: TickmeshError | undefined;
}

/**
 * Who is in presence `topic` (`symbol.AAPL`, `watchlist.<id>`, `desk.support`), live. The
 * component is a member while mounted, with `data` (updated when it changes; at most 256 bytes
 * of JSON), unless `join: false` (watch only: e.g. a "support online" light for users).
 */
export function usePresence(topic: string, options: { data?: unknown; join?: boolean } = {}): PresenceSnapshot {
  const client = useTickmeshClient();
  const ch = `presence:${topic}`;
  const join = options.join !== false;
  const [version, setVersion] = useState(0);
  const bump = () => setVersion((v) => v + 1);
  useEffect(() => {
    const off = client.subscribe(ch, bump);
    const offStatus = client.events.on("subscription", (e) => e.ch === ch && bump());
    return () => (off(), offStatus());
  }, [client, ch]);
  const membership = useRef<ReturnType<typeof client.join> | undefined>(undefined);
  const dataKey = JSON.stringify(options.data ?? null);
  useEffect(() => {
    if (!join) return;
    const m = client.join(topic, options.data);
    membership.current = m;
    const off = client.events.on("membership", (e) => e.topic === topic && bump());
    return () => {
      off();
      membership.current = undefined;
      m.leave();
    };
    // `data` changes are updates of the same membership (below), not a leave and a join.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, topic, join]);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) return void (first.current = false);
    membership.current?.update(options.data);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [dataKey]);
  return useMemo(() => {
    const state = client.presence(ch);
    const sub = client.channelStatus(ch);
    const mem = join ? client.membershipStatus(topic) : { status: "idle" as const, error: undefined };
    const user = client.session?.user;
    const members = state?.members ?? [];
    return {
      members,
      count: state?.count ?? 0,
      me: members.find((m) => m.user === user),
      status: sub.status,
      membership: mem.status,
      error: sub.error ?? mem.error,
    };
  }, [client, ch, topic, join, version]);
}
