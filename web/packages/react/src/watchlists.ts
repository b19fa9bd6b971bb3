import { ErrorCode, TickmeshError, type ChannelStatus, type TickmeshClient, type Watchlist, type WatchlistChange, type WatchlistItem, type WatchlistMember, type WatchlistOp } from "@tickmesh/client";
import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { useTickmeshClient } from "./provider.js";

/** Apply `ops` to `items` as the server does (PROTOCOL.md, "Editing"): the optimistic view. */
export function applyOps(items: readonly WatchlistItem[], ops: readonly WatchlistOp[]): WatchlistItem[] {
  const out = items.map((i) => ({ ...i }));
  const at = (s: string) => out.findIndex((i) => i.symbol === s);
  const place = (item: WatchlistItem, before?: string) => {
    const b = before !== undefined && before !== item.symbol ? at(before) : -1;
    if (b >= 0) out.splice(b, 0, item);
    else out.push(item);
  };
  for (const op of ops) {
    const i = at(op.symbol);
    if (op.op === "add") {
      if (i < 0) place({ symbol: op.symbol, placed: 0 }, op.before);
    } else if (op.op === "remove") {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0 && op.op === "move") {
      if (op.before !== op.symbol) place(out.splice(i, 1)[0]!, op.before);
    } else if (i >= 0) {
      const item = out[i]!;
      if (op.text) item.note = op.text;
      else delete item.note;
    }
  }
  return out;
}

export interface WatchlistView {
  /** The list as shown: the last version from the server with this view's pending edits on top. */
  watchlist: Watchlist | undefined;
  symbols: readonly string[];
  notes: Readonly<Record<string, string>>;
  /** The server's version the view is based on. */
  version: number | undefined;
  /** Who may edit (the owner and the editors). */
  editors: readonly string[];
  members: readonly WatchlistMember[];
  /** This user's role, once the list has arrived. */
  role: WatchlistMember["role"] | undefined;
  /** The last change: who did what, when. */
  change: WatchlistChange | undefined;
  /** Edits sent and not yet confirmed. */
  pending: number;
  status: ChannelStatus;
  /** The subscription's error, else the last edit's (a 610 conflict, rolled back). */
  error: TickmeshError | undefined;
  /** Apply `ops` at once, send them, roll them back if refused. Resolves with the stored list. */
  edit(ops: WatchlistOp[]): Promise<Watchlist>;
}

interface Pending {
  ops: WatchlistOp[];
}

/**
 * One watch-list as one component edits it: the server's versions (from `watchlist:<id>` and
 * from command replies, whichever is newer) plus the edits in flight. An edit shows at once,
 * is sent on the server version the view had (`base`: the server merges what does not conflict),
 * and is rolled back when refused; a 610 conflict brings the current list with it.
 */
export class WatchlistModel {
  private server: Watchlist | undefined;
  private readonly pending: Pending[] = [];
  private readonly listeners = new Set<() => void>();
  private error: TickmeshError | undefined;
  private snapshot: Omit<WatchlistView, "edit" | "status">;

  constructor(private readonly client: TickmeshClient, readonly id: string) {
    this.snapshot = this.build();
  }

  readonly subscribe = (onChange: () => void) => {
    this.listeners.add(onChange);
    return () => void this.listeners.delete(onChange);
  };

  readonly getSnapshot = () => this.snapshot;

  /** A version from the server (channel or reply): kept if newer than what the view has. */
  onServer(doc: Watchlist | undefined): void {
    if (!doc || doc.id !== this.id || (this.server && doc.version <= this.server.version)) return;
    this.server = doc;
    this.emit();
  }

  edit(ops: WatchlistOp[]): Promise<Watchlist> {
    const base = this.server?.version;
    if (base === undefined) return Promise.reject(new TickmeshError(ErrorCode.UNAVAILABLE, "the list has not arrived yet", "watchlist.edit"));
    const entry: Pending = { ops };
    this.pending.push(entry);
    this.error = undefined;
    this.emit();
    const done = () => this.pending.splice(this.pending.indexOf(entry), 1);
    return this.client.command("watchlist.edit", { id: this.id, base, ops }).then(
      (reply) => {
        done();
        this.onServer(reply.watchlist as Watchlist);
        this.emit();
        return (reply.watchlist as Watchlist) ?? this.server!;
      },
      (err: unknown) => {
        done();
        const e = err instanceof TickmeshError ? err : new TickmeshError(ErrorCode.INTERNAL, String(err));
        this.error = e;
        const current = (e.data as { watchlist?: Watchlist } | undefined)?.watchlist;
        this.onServer(current);
        this.emit();
        throw e;
      },
    );
  }

  private build(): Omit<WatchlistView, "edit" | "status"> {
    const doc = this.server;
    const user = this.client.session?.user;
    const items = doc ? applyOps(doc.items, this.pending.flatMap((p) => p.ops)) : [];
    const shown = doc ? { ...doc, items } : undefined;
    return {
      watchlist: shown,
      symbols: items.map((i) => i.symbol),
      notes: Object.fromEntries(items.filter((i) => i.note).map((i) => [i.symbol, i.note!])),
      version: doc?.version,
      editors: doc ? doc.members.filter((m) => m.role !== "viewer").map((m) => m.user) : [],
      members: doc?.members ?? [],
      role: doc?.members.find((m) => m.user === user)?.role,
      change: doc?.change,
      pending: this.pending.length,
      error: this.error,
    };
  }

  private emit(): void {
    this.snapshot = this.build();
    for (const listener of [...this.listeners]) listener();
  }
}

/**
 * A shared watch-list, live and editable: `{symbols, notes, version, editors, edit(ops), status}`.
 * `edit` is optimistic with rollback, like `useSubmitOrder`.
 */
export function useWatchlist(id: string | undefined): WatchlistView {
  const client = useTickmeshClient();
  const model = useMemo(() => (id ? new WatchlistModel(client, id) : undefined), [client, id]);
  const ch = id ? `watchlist:${id}` : undefined;
  const [status, setStatus] = useState<{ status: ChannelStatus; error?: TickmeshError }>({ status: "idle" });
  useEffect(() => {
    if (!model || !ch) return;
    const update = () => setStatus(client.channelStatus(ch));
    const off = client.subscribe(ch, (m) => model.onServer(m.data as Watchlist));
    const offStatus = client.events.on("subscription", (e) => e.ch === ch && update());
    update();
    return () => (off(), offStatus());
  }, [client, model, ch]);
  const empty = useCallback(() => () => {}, []);
  const none = useCallback(() => undefined, []);
  const snap = useSyncExternalStore(model?.subscribe ?? empty, model?.getSnapshot ?? none, model?.getSnapshot ?? none);
  const edit = useCallback((ops: WatchlistOp[]) => model ? model.edit(ops) : Promise.reject(new TickmeshError(ErrorCode.INVALID_FIELD, "no list")), [model]);
  return useMemo(() => ({
    watchlist: undefined, symbols: [], notes: {}, version: undefined, editors: [], members: [], role: undefined,
    change: undefined, pending: 0, ...snap, error: status.error ?? snap?.error, status: status.status, edit,
  }), [snap, status, edit]);
}
