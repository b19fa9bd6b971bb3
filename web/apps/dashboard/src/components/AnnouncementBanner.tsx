import { useAnnouncements } from "@tickmesh/react";
import { useState } from "react";

/** The announcements in force, most severe first; each can be dismissed for this session. */
export function AnnouncementBanner() {
  const { items } = useAnnouncements();
  const [dismissed, setDismissed] = useState<Set<string>>(() => new Set());
  const rank = { critical: 0, warning: 1, info: 2 } as const;
  const shown = items.filter((a) => !dismissed.has(a.id ?? a.text)).sort((a, b) => rank[a.severity] - rank[b.severity]);
  if (!shown.length) return null;
  return (
    <div className="announcements" data-testid="announcements">
      {shown.slice(0, 2).map((a) => (
        <div key={a.id ?? a.text} className={`announcement ${a.severity}`} data-testid="announcement">
          <span className="sev">{a.severity}</span>
          <span className="text">{a.text}</span>
          <button className="icon-btn" title="Dismiss" onClick={() => setDismissed(new Set(dismissed).add(a.id ?? a.text))}>×</button>
        </div>
      ))}
    </div>
  );
}
