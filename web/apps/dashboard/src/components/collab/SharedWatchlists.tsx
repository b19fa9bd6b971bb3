import { TickmeshError, type WatchlistChange, type WatchlistOp } from "@tickmesh/client";
import { useConnectionStatus, useTickmeshClient, useWatchlist } from "@tickmesh/react";
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { PresenceAvatars } from "./Avatars";

interface Summary {
  id: string;
  name: string;
  owner: string;
  role: "owner" | "editor" | "viewer";
  version: number;
  size: number;
}

export interface Person {
  id: string;
  name: string;
}

const VERB: Record<WatchlistOp["op"], string> = { add: "added", remove: "removed", move: "moved", note: "noted" };

/** "bob added NVDA, moved AAPL": who did what, in words. */
export function describeChange(change: WatchlistChange | undefined, names: Record<string, string> = {}): string {
  if (!change) return "";
  const who = names[change.user] ?? change.user;
  if (change.action === "create") return `${who} created the list`;
  if (change.action === "share") return `${who} shared it with ${names[change.target!] ?? change.target} (${change.role})`;
  if (change.action === "unshare") return change.target === change.user ? `${who} left` : `${who} removed ${names[change.target!] ?? change.target}`;
  const parts = (change.ops ?? []).map((op) => `${VERB[op.op]} ${op.symbol}${op.op === "note" ? (op.text ? `: “${op.text}”` : " (cleared)") : ""}`);
  return `${who} ${parts.join(", ") || "edited"}${change.merged ? " (merged)" : ""}`;
}

function ago(tsUs: number): string {
  const s = Math.max(0, Math.round((Date.now() - tsUs / 1000) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

const message = (err: unknown) => (err instanceof TickmeshError ? `${err.reason} (${err.code})` : String(err));

/**
 * Shared watch-lists: the user's lists (own and shared with them), creating one, and the open
 * one edited together live. Self-contained: give it the people a list can be shared with.
 */
export function SharedWatchlists(props: { people: Person[]; onPick?(symbol: string): void }) {
  const client = useTickmeshClient();
  const [lists, setLists] = useState<Summary[]>([]);
  const [open, setOpen] = useState<string | undefined>();
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const live = useConnectionStatus().live;
  const refresh = useCallback(async () => {
    try {
      const reply = (await client.command("watchlist.list", {})) as { watchlists: Summary[] };
      setError(null);
      setLists(reply.watchlists);
      setOpen((cur) => (cur && reply.watchlists.some((l) => l.id === cur) ? cur : reply.watchlists[0]?.id));
    } catch (err) {
      setError(message(err));
    }
  }, [client]);
  useEffect(() => {
    if (!live) return;
    void refresh();
    // Lists shared with this user appear without a reload (there is no channel of "my lists").
    const timer = setInterval(() => void refresh(), 5000);
    return () => clearInterval(timer);
  }, [refresh, live]);
  const create = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return;
    try {
      const reply = (await client.command("watchlist.create", { name: name.trim(), symbols: [] })) as { watchlist: { id: string } };
      setName("");
      setError(null);
      setOpen(reply.watchlist.id);
      await refresh();
    } catch (err) {
      setError(message(err));
    }
  };
  return (
    <section className="panel shared-watchlists" data-testid="shared-watchlists">
      <header className="panel-head">
        <h2>Shared watch-lists</h2>
        <form className="add-symbol" onSubmit={create}>
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="New list…" aria-label="New list name" data-testid="wl-create-name" maxLength={64} />
          <button type="submit" className="btn-ghost" data-testid="wl-create">Create</button>
        </form>
      </header>
      {error && <div className="form-error">{error}</div>}
      <nav className="wl-tabs">
        {lists.map((l) => (
          <button key={l.id} className={l.id === open ? "active" : ""} onClick={() => setOpen(l.id)} data-testid="wl-tab" data-name={l.name}>
            {l.name} <span className="muted small">{l.role === "owner" ? "" : `· ${l.owner}`}</span>
          </button>
        ))}
        {lists.length === 0 && <span className="muted small">No shared lists yet: create one and share it.</span>}
      </nav>
      {open && <SharedWatchlist key={open} id={open} people={props.people} onPick={props.onPick} onGone={() => void refresh()} />}
    </section>
  );
}

function SharedWatchlist(props: { id: string; people: Person[]; onPick?(symbol: string): void; onGone(): void }) {
  const wl = useWatchlist(props.id);
  const client = useTickmeshClient();
  const [symbol, setSymbol] = useState("");
  const [shareWith, setShareWith] = useState("");
  const [role, setRole] = useState<"editor" | "viewer">("editor");
  const [problem, setProblem] = useState<string | null>(null);
  const [history, setHistory] = useState<WatchlistChange[] | null>(null);
  const names = Object.fromEntries(props.people.map((p) => [p.id, p.name]));
  const canEdit = wl.role === "owner" || wl.role === "editor";
  const items = wl.watchlist?.items ?? [];
  useEffect(() => {
    if (wl.status === "error") props.onGone(); // revoked or deleted: the list of lists changes
  }, [wl.status]); // eslint-disable-line react-hooks/exhaustive-deps
  const edit = (ops: WatchlistOp[]) => {
    setProblem(null);
    wl.edit(ops).catch((err) => setProblem(err instanceof TickmeshError && err.code === 610
      ? `Someone changed this meanwhile, so your change was undone: ${err.reason}`
      : message(err)));
  };
  const add = (e: FormEvent) => {
    e.preventDefault();
    const s = symbol.trim().toUpperCase();
    if (s) edit([{ op: "add", symbol: s }]);
    setSymbol("");
  };
  const share = async (e: FormEvent) => {
    e.preventDefault();
    if (!shareWith) return;
    try {
      await client.command("watchlist.share", { id: props.id, user: shareWith, role });
      setShareWith("");
    } catch (err) {
      setProblem(message(err));
    }
  };
  const showHistory = async () => {
    if (history) return setHistory(null);
    try {
      setHistory(((await client.command("watchlist.history", { id: props.id })) as { changes: WatchlistChange[] }).changes);
    } catch (err) {
      setProblem(message(err));
    }
  };
  if (wl.status === "error") return <div className="form-error" data-testid="wl-error">{wl.error?.reason ?? "unavailable"}</div>;
  const members = wl.members.map((m) => m.user);
  return (
    <div className="wl" data-testid="wl" data-version={wl.version ?? 0}>
      <div className="wl-bar">
        <PresenceAvatars topic={`watchlist.${props.id}`} label="Open now" testId="wl-presence" data={{ viewing: "list" }} />
        <span className="muted small" data-testid="wl-last-change">
          {describeChange(wl.change, names)}{wl.change ? ` · ${ago(wl.change.ts)}` : ""}
        </span>
        <button className="btn-ghost small" onClick={() => void showHistory()} data-testid="wl-history">{history ? "Hide history" : "History"}</button>
      </div>
      {problem && <div className="form-error" data-testid="wl-problem">{problem}</div>}
      <table className="grid">
        <tbody>
          {items.map((item, i) => (
            <tr key={item.symbol} data-testid="wl-item" data-symbol={item.symbol}>
              <td className="sym" onClick={() => props.onPick?.(item.symbol)}>{item.symbol}</td>
              <td>
                {canEdit ? (
                  <input className="wl-note" defaultValue={item.note ?? ""} key={item.note ?? ""} placeholder="note" maxLength={140}
                    aria-label={`Note for ${item.symbol}`} data-testid={`wl-note-${item.symbol}`}
                    onKeyDown={(e) => e.key === "Enter" && (e.target as HTMLInputElement).blur()}
                    onBlur={(e) => e.target.value !== (item.note ?? "") && edit([{ op: "note", symbol: item.symbol, text: e.target.value }])} />
                ) : (
                  <span className="muted">{item.note}</span>
                )}
              </td>
              {canEdit && (
                <td className="wl-actions">
                  <button className="icon-btn" title="Move up" disabled={i === 0} data-testid={`wl-up-${item.symbol}`}
                    onClick={() => edit([{ op: "move", symbol: item.symbol, before: items[i - 1]!.symbol }])}>↑</button>
                  <button className="icon-btn" title="Move down" disabled={i === items.length - 1} data-testid={`wl-down-${item.symbol}`}
                    onClick={() => edit([{ op: "move", symbol: item.symbol, ...(items[i + 2] ? { before: items[i + 2]!.symbol } : {}) }])}>↓</button>
                  <button className="icon-btn" title="Remove" data-testid={`wl-remove-${item.symbol}`} onClick={() => edit([{ op: "remove", symbol: item.symbol }])}>✕</button>
                </td>
              )}
            </tr>
          ))}
          {items.length === 0 && <tr><td className="empty">Empty list</td></tr>}
        </tbody>
      </table>
      {canEdit && (
        <form className="add-symbol wl-form" onSubmit={add}>
          <input value={symbol} onChange={(e) => setSymbol(e.target.value)} placeholder="Add symbol…" aria-label="Add symbol to the shared list" data-testid="wl-add-symbol" spellCheck={false} />
          <button type="submit" className="btn-ghost" data-testid="wl-add">Add</button>
        </form>
      )}
      {wl.role === "owner" && (
        <form className="add-symbol wl-form" onSubmit={(e) => void share(e)}>
          <select value={shareWith} onChange={(e) => setShareWith(e.target.value)} aria-label="Share with" data-testid="wl-share-user">
            <option value="">Share with…</option>
            {props.people.filter((p) => !members.includes(p.id)).map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
          </select>
          <select value={role} onChange={(e) => setRole(e.target.value as "editor" | "viewer")} aria-label="Role" data-testid="wl-share-role">
            <option value="editor">can edit</option>
            <option value="viewer">can view</option>
          </select>
          <button type="submit" className="btn-ghost" data-testid="wl-share">Share</button>
        </form>
      )}
      <div className="muted small wl-members" data-testid="wl-members">
        {wl.members.map((m) => `${names[m.user] ?? m.user} (${m.role})`).join(" · ")}
      </div>
      {history && (
        <ol className="wl-history small" data-testid="wl-history-list">
          {history.map((c) => <li key={c.version}>v{c.version} · {describeChange(c, names)} · {ago(c.ts)}</li>)}
        </ol>
      )}
    </div>
  );
}
