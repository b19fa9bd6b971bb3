// @vitest-environment jsdom
import { TickmeshClient } from "@tickmesh/client";
import { act, createElement, StrictMode, type ReactNode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { fakeEnvironment, fakeNetwork, flush } from "../../client/test/fakes.js";
import { TickmeshProvider, useConnectionStatus, usePrice, useSubmitOrder } from "../src/index.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let root: Root;
let container: HTMLElement;

async function mount(client: TickmeshClient, children: ReactNode) {
  container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
  // StrictMode: effects run, clean up and run again, as in development builds.
  await act(async () => root.render(createElement(StrictMode, null, createElement(TickmeshProvider, { client }, children))));
}

async function connectedClient() {
  const net = fakeNetwork();
  const client = new TickmeshClient({ url: "http://x", getToken: () => "t", environment: fakeEnvironment(), transportFactories: net.factories });
  return { net, client };
}

async function welcome(net: ReturnType<typeof fakeNetwork>) {
  await act(async () => {
    await flush();
    net.last().welcome();
  });
  for (const sub of net.last().frames("sub")) await act(async () => net.last().receive({ op: "ok", id: sub.id }));
}

const tick = (net: ReturnType<typeof fakeNetwork>, symbol: string, seq: number, last: string) =>
  act(async () => net.last().receive({ op: "msg", ch: `prices:${symbol}`, seq, data: { symbol, last, ts: 1, ingest_ts: 1, provider: "t" } }));

beforeEach(() => {
  document.body.innerHTML = "";
});
afterEach(async () => {
  await act(async () => root.unmount());
  vi.useRealTimers();
});

describe("hooks", () => {
  it("re-render a component only when its own channel's data changes, sharing one subscription", async () => {
    const { net, client } = await connectedClient();
    const renders: Record<string, number> = {};
    function Price({ symbol, id }: { symbol: string; id: string }) {
      const p = usePrice(symbol);
      renders[id] = (renders[id] ?? 0) + 1;
      return createElement("span", { "data-id": id }, `${p.data?.last ?? "-"} ${p.direction} ${p.stale ? "stale" : "live"}`);
    }
    await mount(client, [
      createElement(Price, { key: 1, symbol: "AAPL", id: "a1" }),
      createElement(Price, { key: 2, symbol: "AAPL", id: "a2" }),
      createElement(Price, { key: 3, symbol: "MSFT", id: "m" }),
    ]);
    await welcome(net);
    expect(net.last().frames("sub").map((f) => f.ch).sort()).toEqual(["prices:AAPL", "prices:MSFT"]);
    await tick(net, "AAPL", 1, "187.20");
    const before = { ...renders };
    await tick(net, "MSFT", 1, "415.00");
    await tick(net, "MSFT", 2, "415.10");
    expect(renders.a1).toBe(before.a1);
    expect(renders.a2).toBe(before.a2);
    await tick(net, "AAPL", 2, "187.25");
    expect(renders.a1).toBeGreaterThan(before.a1!); // StrictMode renders twice per update
    expect(container.querySelector('[data-id="a1"]')!.textContent).toBe("187.25 up live");
    await tick(net, "AAPL", 3, "187.00");
    expect(container.querySelector('[data-id="a2"]')!.textContent).toBe("187.00 down live");
  });

  it("report the connection state and mark data stale while disconnected", async () => {
    const { net, client } = await connectedClient();
    function Status() {
      const s = useConnectionStatus();
      const p = usePrice("AAPL");
      return createElement("span", null, `${s.state}/${s.transport ?? "-"}/${p.stale ? "stale" : "fresh"}`);
    }
    await mount(client, createElement(Status));
    expect(container.textContent).toBe("connecting/-/stale");
    await welcome(net);
    await tick(net, "AAPL", 1, "1");
    expect(container.textContent).toBe("connected/websocket/fresh");
    await act(async () => net.last().drop());
    expect(container.textContent).toBe("reconnecting/-/stale");
  });

  it("show an order at once as pending, then filled from the execution", async () => {
    const { net, client } = await connectedClient();
    let submit: ReturnType<typeof useSubmitOrder>["submit"] = async () => undefined;
    function Blotter() {
      const s = useSubmitOrder();
      submit = s.submit;
      return createElement("ul", null, s.orders.map((o) => createElement("li", { key: o.client_order_id }, `${o.client_order_id}:${o.status}:${o.price ?? ""}`)));
    }
    await mount(client, createElement(Blotter));
    await welcome(net);
    await act(async () => {
      void submit({ client_order_id: "c1", symbol: "AAPL", side: "buy", type: "market", quantity: "1" }).catch(() => {});
    });
    expect(container.textContent).toBe("c1:pending:");
    await act(async () =>
      net.last().receive({
        op: "msg", ch: "trades", seq: 9,
        data: { exec_id: "e", order_id: "B-1", client_order_id: "c1", user: "u", symbol: "AAPL", side: "buy", order_type: "market", status: "filled", quantity: "1", price: "187.20", ts: 1 },
      }),
    );
    expect(container.textContent).toBe("c1:filled:187.20");
  });
});
