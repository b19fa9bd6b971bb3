import type { Notification } from "@tickmesh/client";
import { useNotifications } from "@tickmesh/react";
import { useEffect, useRef, useState } from "react";
import { clock } from "./format.js";

export interface NotificationCentreProps {
  /** How long a toast stays, ms (default 6000). */
  toastMs?: number;
  /** Toasts on screen at most (default 4). */
  maxToasts?: number;
}

/**
 * A bell with the unread count, a panel with every notification (each exactly once, also across
 * reconnects), and toasts for **live** notifications only: what the page loads as history fills
 * the list silently. Toasts sit at the bottom left, away from the bell's panel and from
 * {@link NotificationFeed} (the right-hand column), and are hidden while the panel is open, so
 * they never cover the list they belong to. New ones are announced politely to screen readers.
 */
export function NotificationCentre({ toastMs = 6000, maxToasts = 4 }: NotificationCentreProps) {
  const { items, replayed } = useNotifications();
  const [open, setOpen] = useState(false);
  const [readCount, setReadCount] = useState(0);
  const [toasts, setToasts] = useState<Notification[]>([]);
  const known = useRef(new Set<string>());

  useEffect(() => {
    const fresh: Notification[] = [];
    for (const n of items) {
      if (known.current.has(n.id)) continue;
      known.current.add(n.id);
      if (!replayed(n)) fresh.push(n);
    }
    if (!fresh.length) return;
    setToasts((t) => [...fresh, ...t].slice(0, maxToasts));
    const timers = fresh.map((n) => setTimeout(() => setToasts((t) => t.filter((x) => x.id !== n.id)), toastMs));
    return () => timers.forEach(clearTimeout);
  }, [items, replayed, toastMs, maxToasts]);

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
          aria-expanded={open}
          aria-label={unread ? `Notifications, ${unread} unread` : "Notifications"}
        >
          <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
            <path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z" />
          </svg>
          {unread > 0 && <span className="badge" data-testid="unread" aria-hidden="true">{unread}</span>}
        </button>
        {open && (
          <div className="notif-panel" data-testid="notif-panel">
            <NotificationList items={items} />
          </div>
        )}
      </div>
      <div className="toasts" aria-live="polite" data-testid="toasts" hidden={open}>
        {toasts.map((n) => (
          <div key={n.id} className={`toast ${n.severity}`} data-testid="toast" data-id={n.id} role="status">
            <div className="toast-title">{n.title}</div>
            {n.body && <div className="toast-body">{n.body}</div>}
          </div>
        ))}
      </div>
    </>
  );
}

export interface NotificationListProps {
  items: readonly Notification[];
}

/** Notifications, newest first: kind, title (severity as a word and a colour) and time. */
export function NotificationList({ items }: NotificationListProps) {
  if (!items.length) return <div className="empty">No notifications.</div>;
  return (
    <ul className="notif-list" data-testid="notifications">
      {items.map((n) => (
        <li key={n.id} className={`notif ${n.severity}`} data-testid="notification" data-id={n.id}>
          <span className={`kind ${n.kind}`}>{n.kind}</span>
          <span className="notif-title">{n.severity !== "info" && <span className="sr-only">{n.severity}: </span>}{n.title}</span>
          <span className="num muted">{clock(n.ts)}</span>
        </li>
      ))}
    </ul>
  );
}

/** The notifications as a docked panel (a dashboard column), with their count. */
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
