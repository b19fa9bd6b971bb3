import type { Announcement } from "@tickmesh/client";
import { useAnnouncements } from "@tickmesh/react";
import { useCallback, useState } from "react";

export interface AnnouncementBannerProps {
  /** Where dismissals are remembered (default `localStorage`; `null`: this page only). */
  storage?: Pick<Storage, "getItem" | "setItem"> | null;
  /** Non-critical announcements shown at most (default 2). */
  maxInfo?: number;
}

const KEY = "tickmesh.dismissed-announcements";
const MAX_REMEMBERED = 200;
const keyOf = (a: Announcement) => a.id ?? a.text;

function defaultStorage(): Pick<Storage, "getItem" | "setItem"> | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}

/**
 * The announcements in force. A `critical` one is a banner across the page (`role="alert"`,
 * read out at once); warnings and information sit in a quieter strip below it. Each can be
 * dismissed, and a dismissal is remembered per announcement (in `storage`), so a reload or a
 * new tab does not bring it back while a new announcement still shows.
 */
export function AnnouncementBanner({ storage = defaultStorage(), maxInfo = 2 }: AnnouncementBannerProps) {
  const { items } = useAnnouncements();
  const [dismissed, setDismissed] = useState<Set<string>>(() => {
    try {
      return new Set(JSON.parse(storage?.getItem(KEY) ?? "[]") as string[]);
    } catch {
      return new Set();
    }
  });
  const dismiss = useCallback((a: Announcement) => {
    setDismissed((d) => {
      const next = new Set(d).add(keyOf(a));
      try {
        storage?.setItem(KEY, JSON.stringify([...next].slice(-MAX_REMEMBERED)));
      } catch {
        // storage full or disabled: dismissed for this page only
      }
      return next;
    });
  }, [storage]);
  const live = items.filter((a) => !dismissed.has(keyOf(a)));
  const critical = live.filter((a) => a.severity === "critical");
  const rest = live.filter((a) => a.severity !== "critical").sort((a, b) => (a.severity === "warning" ? -1 : 0) - (b.severity === "warning" ? -1 : 0)).slice(0, maxInfo);
  if (!critical.length && !rest.length) return null;
  return (
    <div className="announcements" data-testid="announcements">
      {critical.map((a) => (
        <div key={keyOf(a)} className="announcement critical banner" data-testid="announcement" data-severity="critical" role="alert">
          <span className="sev">critical</span>
          <span className="text">{a.text}</span>
          <button className="icon-btn" aria-label="Dismiss this announcement" title="Dismiss" onClick={() => dismiss(a)} data-testid="dismiss-announcement">×</button>
        </div>
      ))}
      {rest.map((a) => (
        <div key={keyOf(a)} className={`announcement ${a.severity}`} data-testid="announcement" data-severity={a.severity} role="status">
          <span className="sev">{a.severity}</span>
          <span className="text">{a.text}</span>
          <button className="icon-btn" aria-label="Dismiss this announcement" title="Dismiss" onClick={() => dismiss(a)} data-testid="dismiss-announcement">×</button>
        </div>
      ))}
    </div>
  );
}
