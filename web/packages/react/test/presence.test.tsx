// @vitest-environment jsdom
import { TickmeshClient, type Watchlist } from "@tickmesh/client";
import { act, createElement, StrictMode, type ReactNode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, describe, expect, it } from "vitest";
import { fakeEnvironment, fakeNetwork, flush } from "../../client/test/fakes.js";
import { applyOps, TickmeshProvider, usePresence, useWatchlist, type WatchlistView } from "../src/index.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const ID = "AbCdEfGhIjKlMnOpQrStU1";
const T = 1_795_630_000_000_000;
let root: Root | undefined;

async function setup(children: ReactNode) {
  const net = fakeNetwork();
  const client = new TickmeshClient({ url: "http://x", getToken: () => "t", environment: fakeEnvironment(), transportFactories: net.factories, share: false });
  const container = document.createElement("div");
  document.body.append(container);
  const r = (root = createRoot(container));
  await act(async () => r.render(createElement(StrictMode, null, createElement(TickmeshProvider, { client }, children))));
  await act(async () => {
    await flush();
    net.last().welcome();
  });
  for (const sub of net.last().frames("sub")) await act(async () => net.last().receive({ op: "ok", id: sub.id }));
  return { net, client, container };
}

afterEach(async () => {
  await act(async () => root?.unmount());
  root = undefined;
});

const doc = (version: number, symbols: string[], extra: Partial<Watchlist> = {}): Watchlist => ({
  id: ID, name: "Tech", owner: "alice", version, created_ts: T,
  items: symbols.map((symbol) => ({ symbol, placed: 1, noted: 1 })),
  members: [{ user: "alice", role: "owner" }, { user: "bob", role: "editor" }, { user: "carol", role: "viewer" }],
  change: { version, user: "alice", ts: T, action: "edit", ops: [] }, ...extra,
});

describe("applyOps", () => {
  it("places relative to a symbol, skips what is already true, and sets notes", () => {
    const items = doc(1, ["AAPL", "MSFT"]).items;
    const out = applyOps(items, [
      { op: "add", symbol: "NVDA", before: "MSFT" }, { op: "add", symbol: "AAPL" }, { op: "move", symbol: "AAPL" },
      { op: "note", symbol: "MSFT", text: "earnings" }, { op: "remove", symbol: "TSLA" },
    ]);
    expect(out.map((i) => i.symbol)).toEqual(["NVDA", "MSFT", "AAPL"]);
    expect(out[1]!.note).toBe("earnings");
  });
});

describe("useWatchlist", () => {
  it("shows an edit at once, confirms it, and rolls a refused one back to the current list", async () => {
    let view: WatchlistView | undefined;
    function List() {
      view = useWatchlist(ID);
      return createElement("p", null, view.symbols.join(","));
    }
    const { net, container } = await setup(createElement(List));
    const t = net.last();
    await act(async () => t.receive({ op: "msg", ch: `watchlist:${ID}`, seq: 2, data: doc(2, ["AAPL", "MSFT"]) }));
    expect(container.textContent).toBe("AAPL,MSFT");
    expect(view!.editors).toEqual(["alice", "bob"]);
    let done: Promise<unknown>;
    await act(async () => void (done = view!.edit([{ op: "add", symbol: "NVDA", before: "AAPL" }])));
    expect(container.textContent).toBe("NVDA,AAPL,MSFT"); // optimistic
    expect(view!.pending).toBe(1);
    const cmd = t.frames("cmd").at(-1)!;
    expect(cmd).toMatchObject({ name: "watchlist.edit", data: { id: ID, base: 2 } });
    await act(async () => t.receive({ op: "ok", id: cmd.id, data: { watchlist: doc(3, ["NVDA", "AAPL", "MSFT"]), merged: false } }));
    await done!;
    expect(view!.version).toBe(3);
    expect(view!.pending).toBe(0);
    let refused: unknown;
    await act(async () => void view!.edit([{ op: "move", symbol: "MSFT", before: "NVDA" }]).catch((e) => (refused = e)));
    expect(container.textContent).toBe("MSFT,NVDA,AAPL");
    const lost = t.frames("cmd").at(-1)!;
    await act(async () => t.receive({ op: "err", id: lost.id, code: 610, reason: "MSFT was moved by someone else", data: { watchlist: doc(4, ["AAPL", "MSFT", "NVDA"]) } }));
    await act(flush);
    expect(container.textContent).toBe("AAPL,MSFT,NVDA"); // rolled back onto the current version
    expect((refused as { code: number }).code).toBe(610);
    expect(view!.error?.code).toBe(610);
    expect(view!.version).toBe(4);
  });
});

describe("usePresence", () => {
  it("joins while mounted with its data, and lists who is there", async () => {
    let snap: ReturnType<typeof usePresence> | undefined;
    function Watchers() {
      snap = usePresence("symbol.AAPL", { data: { viewing: "detail" } });
      return createElement("p", null, snap.members.map((m) => m.name).join(","));
    }
    const { net, container } = await setup(createElement(Watchers));
    const t = net.last();
    const [join] = t.frames("join");
    expect(join).toMatchObject({ topic: "symbol.AAPL", data: { viewing: "detail" } });
    expect(t.frames("join")).toHaveLength(1); // StrictMode's remount did not join twice
    await act(async () => t.receive({ op: "ok", id: join!.id }));
    await act(async () => t.receive({ op: "msg", ch: "presence:symbol.AAPL", seq: 1, data: { type: "snapshot", count: 2, conns: 2, limit: 100,
      members: [{ user: "alice", name: "Alice", conns: 1, since: T }, { user: "bob", name: "Bob", conns: 1, since: T + 1 }] } }));
    expect(container.textContent).toBe("Alice,Bob");
    expect(snap!.me?.user).toBe("alice");
    expect(snap!.membership).toBe("joined");
    await act(async () => root!.unmount());
    root = undefined;
    await act(flush);
    expect(t.frames("leave")).toMatchObject([{ topic: "symbol.AAPL" }]);
  });
});
