import type { PresenceMember } from "@tickmesh/client";
import { usePresence } from "@tickmesh/react";

const initials = (m: PresenceMember) =>
  m.name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]!.toUpperCase()).join("") || m.user.slice(0, 1).toUpperCase();

/** A stable colour per user, so the same person looks the same everywhere. */
function hue(user: string): number {
  let h = 0;
  for (const c of user) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

/**
 * Who is here: the members of presence `topic` as avatars (this user included, while mounted,
 * with `data`), and a count of the rest when the topic is larger than what the edge lists.
 */
export function PresenceAvatars(props: { topic: string; data?: unknown; label: string; testId?: string }) {
  const p = usePresence(props.topic, { data: props.data });
  const others = p.count - p.members.length;
  return (
    <div className="presence" data-testid={props.testId ?? "presence"} data-count={p.count} data-status={p.status} aria-label={props.label}>
      <span className="muted small">{props.label}</span>
      <span className="avatars">
        {p.members.map((m) => (
          <span
            key={m.user}
            className={`avatar small${m.user === p.me?.user ? " me" : ""}`}
            style={{ background: `hsl(${hue(m.user)} 45% 32%)` }}
            title={`${m.name}${m.conns > 1 ? ` (${m.conns} tabs or devices)` : ""}`}
            data-user={m.user}
          >
            {initials(m)}
          </span>
        ))}
        {others > 0 && <span className="avatar small more" title={`${others} more`}>+{others}</span>}
      </span>
    </div>
  );
}
