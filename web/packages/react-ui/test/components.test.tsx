// @vitest-environment jsdom
// The components' behaviour a user relies on, rendered with React against a fake network (the
// real browser, edge and charts are exercised end to end in web/e2e).
import { TickmeshClient } from "@tickmesh/client";
import { TickmeshProvider } from "@tickmesh/react";
import { act, createElement, type ReactNode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fakeEnvironment, fakeNetwork, flush } from "../../client/test/fakes.js";
import { AnnouncementBanner, NotificationCentre, NotificationFeed, OrderTicket, PriceCell } from "../src/index.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let root: Root;
let net: ReturnType<typeof fakeNetwork>;

async function mount(children: ReactNode) {
  net = fakeNetwork();
  const client = new TickmeshClient({ url: "http://x", getToken: () => "t", environment: fakeEnvironment(), transportFactories: net.factories });
  const container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
  await act(async () => root.render(createElement(TickmeshProvider, { client }, children)));
  await act(async () => {
    await flush();
    net.last().welcome();
  });
  return client;
}

const sub = (ch: string) => net.last().frames("sub").find((f) => f.ch === ch)!;
const receive = (...frames: object[]) => act(async () => net.last().receive(...(frames as never[])));
const note = (id: string, title: string) => ({ id, user: "alice", kind: "trade", severity: "info", title, ts: 1_795_630_850_000_000 });
const $ = (sel: string) => document.querySelector(sel);
const $$ = (sel: string) => [...document.querySelectorAll(sel)];

beforeEach(() => {
  document.body.innerHTML = "";
  localStorage.clear();
});
afterEach(async () => {
  await act(async () => root.unmount());
});

describe("NotificationCentre", () => {
  it("fills the list silently with history and toasts only live notifications", async () => {
    await mount([createElement(NotificationCentre, { key: "c" }), createElement(NotificationFeed, { key: "f" })]);
    await receive({ op: "ok", id: sub("notifications").id, epoch: "e", seq: 2, replayed: 2 });
    await receive({ op: "msg", ch: "notifications", seq: 1, data: note("n1", "Old fill") }, { op: "msg", ch: "notifications", seq: 2, data: note("n2", "Older alert") });
    expect($$('[data-testid="notification"]')).toHaveLength(2);
    expect($$('[data-testid="toast"]')).toHaveLength(0);
    await receive({ op: "msg", ch: "notifications", seq: 3, data: note("n3", "Bought 10 AAPL") });
    expect($$('[data-testid="toast"]').map((t) => t.getAttribute("data-id"))).toEqual(["n3"]);
    expect($('[data-testid="toasts"]')!.getAttribute("aria-live")).toBe("polite");
    // The bell's panel open: toasts step aside rather than cover it.
    await act(async () => ($('[data-testid="bell"]') as HTMLButtonElement).click());
    expect(($('[data-testid="toasts"]') as HTMLElement).hidden).toBe(true);
  });
});

describe("AnnouncementBanner", () => {
  it("shows critical announcements as an alert banner, and remembers each dismissal", async () => {
    const ann = (id: string, severity: string, text: string) => ({ id, severity, text, starts_at: 1, ts: 1 });
    await mount(createElement(AnnouncementBanner));
    await receive({ op: "ok", id: sub("announcements").id, epoch: "e", seq: 2, replayed: 2 });
    await receive({ op: "msg", ch: "announcements", seq: 1, data: ann("a1", "critical", "Trading halted") },
      { op: "msg", ch: "announcements", seq: 2, data: ann("a2", "info", "New feature") });
    expect($('[role="alert"]')!.textContent).toContain("Trading halted");
    await act(async () => ($('[data-severity="critical"] button') as HTMLButtonElement).click());
    expect($('[role="alert"]')).toBeNull();
    expect($$('[data-testid="announcement"]').map((a) => a.getAttribute("data-severity"))).toEqual(["info"]);
    expect(JSON.parse(localStorage.getItem("tickmesh.dismissed-announcements")!)).toEqual(["a1"]);
  });

  it("keeps a dismissed announcement hidden after a reload", async () => {
    localStorage.setItem("tickmesh.dismissed-announcements", JSON.stringify(["a1"]));
    await mount(createElement(AnnouncementBanner));
    await receive({ op: "ok", id: sub("announcements").id, epoch: "e", seq: 1, replayed: 1 });
    await receive({ op: "msg", ch: "announcements", seq: 1, data: { id: "a1", severity: "critical", text: "Trading halted", ts: 1 } });
    expect($('[data-testid="announcements"]')).toBeNull();
  });
});

describe("OrderTicket from the keyboard", () => {
  it("switches side with arrows and B/S, submits with Enter, clears with Escape", async () => {
    await mount(createElement(OrderTicket, { symbol: "AAPL", onSymbolChange: () => {} }));
    const buy = $('[data-testid="side-buy"]') as HTMLButtonElement;
    expect(buy.getAttribute("role")).toBe("radio");
    expect(buy.getAttribute("aria-checked")).toBe("true");
    buy.focus();
    await act(async () => buy.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true })));
    expect($('[data-testid="side-sell"]')!.getAttribute("aria-checked")).toBe("true");
    expect(document.activeElement).toBe($('[data-testid="side-sell"]'));
    await act(async () => document.activeElement!.dispatchEvent(new KeyboardEvent("keydown", { key: "b", bubbles: true })));
    expect(buy.getAttribute("aria-checked")).toBe("true");
    const qty = $('[data-testid="ticket-qty"]') as HTMLInputElement;
    await act(async () => qty.dispatchEvent(new KeyboardEvent("keydown", { key: "s", bubbles: true })));
    expect(buy.getAttribute("aria-checked")).toBe("true"); // letters in a field are the field's
    await act(async () => qty.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true })));
    expect(qty.value).toBe("");
    await act(async () => ($('[data-testid="ticket-submit"]') as HTMLButtonElement).click());
    expect($('[role="alert"]')!.textContent).toBe("Quantity must be a positive number");
  });
});

describe("PriceCell", () => {
  it("says up or down with an arrow and in words, not by colour alone", async () => {
    await mount(createElement(PriceCell, { symbol: "AAPL" }));
    await receive({ op: "ok", id: sub("prices:AAPL").id });
    const tick = (seq: number, last: string) => receive({ op: "msg", ch: "prices:AAPL", seq, data: { symbol: "AAPL", last, ts: seq, ingest_ts: seq, provider: "t" } });
    await tick(1, "187.20");
    await tick(2, "187.25");
    const cell = $(".tm-price")!;
    expect(cell.getAttribute("data-direction")).toBe("up");
    expect(cell.textContent).toBe("▲187.25");
    expect(cell.getAttribute("aria-label")).toBe("AAPL last 187.25, up");
    await tick(3, "187.10");
    expect($(".tm-price")!.getAttribute("aria-label")).toBe("AAPL last 187.10, down");
  });
});
