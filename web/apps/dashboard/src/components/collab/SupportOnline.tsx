import { usePresence } from "@tickmesh/react";

/**
 * "Support online": how many support staff are at the desk. Users only watch the desk; support
 * staff (`staff`) are counted there while the page is open.
 */
export function SupportOnline(props: { staff: boolean }) {
  const p = usePresence("desk.support", { join: props.staff, data: props.staff ? { status: "available" } : undefined });
  const online = p.count > 0;
  return (
    <span
      className={`support ${online ? "on" : "off"}`}
      data-testid="support-online"
      data-count={p.count}
      title={p.members.map((m) => m.name).join(", ") || "nobody at the support desk right now"}
    >
      <span className="dot" aria-hidden="true" />
      {online ? `Support online (${p.count})` : "Support offline"}
    </span>
  );
}
