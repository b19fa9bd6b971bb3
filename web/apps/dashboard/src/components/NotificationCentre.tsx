import type { Notification } from "@tickmesh/client";
import { useNotifications } from "@tickmesh/react";
import { useEffect, useRef, useState } from "react";
import { clock } from "../format";

const TOAST_MS = 6000;

/**
 * A bell with the unread count, a panel with every notification (each exactly once, also across
 * reconnects), and toasts for the ones that arrive while the page is open.
 */
export function NotificationCentre() {
  const { items } = useNotifications();
  const [open, setOpen] = useState(false);
  const [readCount, setReadCount] = useState(0);
  const [toasts, setToasts] = useState<Notification[]>([]);
  const known = useRef<Set<string> | null>(null);

  useEffect(() => {
    // The first batch (what was there when we mounted) is history, not news: no toasts for it.
    if (known.current === null) {
      known.current = new Set(items.map((n) => n.id));
      return;
    }
    const fresh = items.filter((n) => !known.current!.has(n.id));
    if (!fresh.length) return;
    for (const n of fresh) known.current.add(n.id);
    setToasts((t) => [...fresh, ...t].slice(0, 4));
    for (const n of fresh) setTimeout(() => setToasts((t) => t.filter((x) => x.id !== n.id)), TOAST_MS);
  }, [items]);

  const unread = Math.max(0, items.length - readCount);
  return (
    <>
      <div className="notif-centre">
        <button
          className={`bell ${unread ? "has-unread" : ""}`}
          onClick={() => {
            setOpen(!open);
            setReadCount(items.length);
          }}
          data-testid="bell"
          title="Notifications"
        >
          <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
            <path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z" />
          </svg>
          {unread > 0 && <span className="badge" data-testid="unread">{unread}</span>}
        </button>
        {open && (
          <div className="notif-panel" data-testid="notif-panel">
            <NotificationList items={items} />
          </div>
        )}
      </div>
      <div className="toasts" aria-live="polite">
        {toasts.map((n) => (
          <div key={n.id} className={`toast ${n.severity}`} data-testid="toast">
            <div className="toast-title">{n.title}</div>
            {n.body && <div className="toast-body">{n.body}</div>}
          </div>
        ))}
      </div>
    </>
  );
}

export function NotificationList({ items }: { items: readonly Notification[] }) {
  if (!items.length) return <div className="empty">No notifications.</div>;
  return (
    <ul className="notif-list" data-testid="notifications">
      {items.map((n) => (
        <li key={n.id} className={`notif ${n.severity}`} data-testid="notification" data-id={n.id}>
          <span className={`kind ${n.kind}`}>{n.kind}</span>
          <span className="notif-title">{n.title}</span>
          <span className="num muted">{clock(n.ts)}</span>
        </li>
      ))}
    </ul>
  );
}

/** The notifications as a docked feed (the dashboard's right column). */
export function NotificationFeed() {
  const { items } = useNotifications();
  return (
    <section className="panel feed" data-testid="notification-feed">
      <header className="panel-head">
        <h2>Notifications</h2>
        <span className="muted small">{items.length}</span>
      </header>
      <div className="scroll">
        <NotificationList items={items} />
      </div>
    </section>
  );
}
