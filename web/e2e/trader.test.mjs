// What a trader expects of the dashboard, in headless Chromium against the real stack: charts
// filled from the retained price history, live-only toasts that never cover their list, a
// critical banner that stays dismissed, the order ticket from the keyboard with fills announced,
// and a feature flag that switches the codec of exactly the users it targets, live.
// Screenshots: test-results/trader-*.png.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { login, openBrowser } from "./support/browser.mjs";
import { PYTHON, REPO, startStack, t } from "./support/stack.mjs";

let stack;
before(async () => {
  if (!existsSync(join(REPO, "web/apps/dashboard/dist/index.html"))) {
    throw new Error("the dashboard is not built: run `npm run build` in web/ first");
  }
  stack = await startStack("trader");
});
after(async () => {
  await stack?.stop();
});

async function withBrowser(name, fn) {
  const b = await openBrowser();
  try {
    await fn(b);
  } catch (err) {
    await b.screenshot(`trader-${name}-failure`).catch(() => {});
    err.message += `\n--- browser console (last 20) ---\n${b.consoleLines.slice(-20).join("\n")}`;
    throw err;
  } finally {
    await b.close();
  }
}

async function adminCommand(name, data) {
  const { token } = await (await fetch(`${stack.url}/dev/token`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user: "admin" }) })).json();
  const resp = await fetch(`${stack.url}/cmd`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name, key: `${name}-${Date.now()}-${Math.random()}`, data }),
  });
  const body = await resp.json();
  assert.equal(resp.status, 200, JSON.stringify(body));
  return body.data;
}

/** Publish `count` notifications for `user` now, as the notifier would; their ids. */
async function publishNotifications(user, prefix, count) {
  const pub = spawn(PYTHON, ["web/e2e/support/publish.py", stack.natsUrl, user, prefix, String(count)], { cwd: REPO, stdio: ["pipe", "pipe", "inherit"] });
  const ids = [];
  const lines = createInterface({ input: pub.stdout });
  lines.on("line", (l) => (l === "ready" ? pub.stdin.write("go\n") : ids.push(l)));
  await new Promise((ok) => pub.on("exit", ok));
  assert.equal(ids.length, count);
  return ids;
}

// Every toast that ever appears, recorded from the first paint (no sampling).
const RECORD_TOASTS = `
  window.__toasts = [];
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('[data-testid="toast"]')) {
      if (!window.__toasts.includes(el.dataset.id)) window.__toasts.push(el.dataset.id);
    }
  }).observe(document, { subtree: true, childList: true });
`;

const overlap = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

describe("the dashboard a trader expects", { timeout: t(300000) }, () => {
  it("draws the price chart from the retained history, sparklines and the session's portfolio line", async () => {
    await withBrowser("charts", async ({ page, screenshot }) => {
      await login(page, stack.url, "alice");
      const chart = page.locator('[data-testid="price-chart"][data-symbol="AAPL"]');
      await chart.waitFor();
      // Filled from history at once (the feed has run a while), not tick by tick from now.
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="price-chart"]')?.dataset.points) >= 20, null, { timeout: t(20000) });
      await page.locator('[data-testid="price-chart"] canvas').first().waitFor();
      await page.locator('[data-testid="spark-AAPL"] polyline').waitFor({ timeout: t(20000) });
      assert.match(await page.getByTestId("spark-AAPL").getAttribute("aria-label"), /^AAPL recent trend: (up|down|unchanged)/);
      // Picking another symbol from the keyboard redraws the chart for it.
      await page.getByTestId("price-MSFT").focus();
      await page.keyboard.press("Enter");
      await page.locator('[data-testid="price-chart"][data-symbol="MSFT"]').waitFor();
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="price-chart"]')?.dataset.points) >= 20, null, { timeout: t(20000) });
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="portfolio-chart"]')?.dataset.points) >= 1, null, { timeout: t(30000) });
      await sleep(1000); // let the canvases paint for the screenshot
      await screenshot("trader-charts");
    });
  });

  it("fills the notification list silently on load and toasts only what arrives live, never over the list", async () => {
    const old = await publishNotifications("carol", `old${Date.now()}`, 3);
    await withBrowser("toasts", async ({ page, context, screenshot }) => {
      await context.addInitScript(RECORD_TOASTS);
      await login(page, stack.url, "carol");
      for (const id of old) await page.locator(`[data-testid="notification-feed"] [data-id="${id}"]`).waitFor({ timeout: t(15000) });
      const [live] = await publishNotifications("carol", `live${Date.now()}`, 1);
      const toast = page.locator(`[data-testid="toast"][data-id="${live}"]`);
      await toast.waitFor({ timeout: t(15000) });
      await page.locator(`[data-testid="notification-feed"] [data-id="${live}"]`).waitFor();
      // The history arrived before the live one: had any of it toasted, the recorder has it.
      assert.deepEqual(await page.evaluate(() => window.__toasts), [live]);
      const feed = await page.getByTestId("notification-feed").boundingBox();
      const box = await toast.boundingBox();
      assert.ok(!overlap(box, feed), `toast ${JSON.stringify(box)} covers the list ${JSON.stringify(feed)}`);
      await screenshot("trader-live-toast");
    });
  });

  it("shows a critical announcement as a banner, dismissed for good per announcement", async () => {
    const text = `Trading in EUR/USD is halted until further notice (${Date.now()}).`;
    await adminCommand("announcement.publish", { severity: "critical", text });
    await withBrowser("banner", async ({ page, screenshot }) => {
      await login(page, stack.url, "support1");
      const banner = page.locator('[data-testid="announcement"][data-severity="critical"]').filter({ hasText: text });
      await banner.waitFor({ timeout: t(15000) });
      assert.equal(await banner.getAttribute("role"), "alert");
      await screenshot("trader-critical-banner");
      await banner.getByRole("button", { name: "Dismiss this announcement" }).click();
      await banner.waitFor({ state: "detached" });
      await page.reload();
      await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: t(20000) });
      await page.getByTestId("notification-feed").waitFor();
      // The announcements channel has replayed (its ok precedes the feed's first render of it).
      await page.waitForFunction(() => window.tickmesh.channelStatus("announcements").status === "live", null, { timeout: t(15000) });
      assert.equal(await banner.count(), 0, "a dismissed announcement came back after a reload");
    });
  });

  it("places an order from the keyboard alone and announces the fill", async () => {
    await withBrowser("keyboard", async ({ page, screenshot }) => {
      await login(page, stack.url, "bob");
      await page.getByTestId("last-AAPL").filter({ hasText: /\d/ }).waitFor();
      await page.getByTestId("ticket-qty").focus();
      await page.keyboard.press("Escape"); // clears quantity and limit
      await page.keyboard.type("3");
      await page.keyboard.press("Shift+Tab"); // to the type select
      await page.keyboard.press("Shift+Tab"); // to the symbol
      await page.keyboard.press("Shift+Tab"); // to the side radio group (the checked one)
      await page.keyboard.press("ArrowRight");
      assert.equal(await page.getByTestId("side-sell").getAttribute("aria-checked"), "true");
      await page.keyboard.press("b");
      assert.equal(await page.getByTestId("side-buy").getAttribute("aria-checked"), "true");
      await page.getByTestId("ticket-qty").focus();
      await page.keyboard.press("Enter");
      const announcer = page.getByTestId("fill-announcer");
      assert.equal(await announcer.getAttribute("aria-live"), "polite");
      await page.waitForFunction(() => /^Filled: buy 3 AAPL at \d/.test(document.querySelector('[data-testid="fill-announcer"]').textContent), null, { timeout: t(15000) });
      await screenshot("trader-keyboard-order");
    });
  });

  it("moves exactly the targeted user to MessagePack when a flag changes, live, and back on the kill switch", async () => {
    await adminCommand("flag.update", { name: "ws.msgpack", action: "create", type: "boolean", value: false, description: "MessagePack as the WebSocket codec" }).catch(() => {});
    const a = await openBrowser();
    const b = await openBrowser();
    try {
      await login(a.page, stack.url, "alice");
      await login(b.page, stack.url, "bob");
      for (const { page } of [a, b]) await page.locator('[data-testid="codec-flag"][data-on="false"]').waitFor({ timeout: t(15000) });
      const bobConn = await b.page.evaluate(() => window.tickmesh.session.conn_id);
      await adminCommand("flag.update", { name: "ws.msgpack", action: "add_rule", users: ["alice"], value: true });
      await a.page.locator('[data-testid="codec-flag"][data-on="true"]').waitFor({ timeout: t(15000) });
      await a.page.waitForFunction(() => window.tickmesh.session?.proto === "tickmesh.v1.msgpack", null, { timeout: t(15000) });
      await a.page.getByTestId("last-AAPL").filter({ hasText: /\d/ }).waitFor();
      await a.screenshot("trader-flag-msgpack");
      // Bob's value did not change: same connection, same codec.
      assert.equal(await b.page.evaluate(() => window.tickmesh.session.conn_id), bobConn);
      assert.equal(await b.page.evaluate(() => window.tickmesh.session.proto), "tickmesh.v1.json");
      await adminCommand("flag.update", { name: "ws.msgpack", action: "kill" });
      await a.page.waitForFunction(() => window.tickmesh.session?.proto === "tickmesh.v1.json", null, { timeout: t(15000) });
      await a.page.locator('[data-testid="codec-flag"][data-on="false"]').waitFor();
      assert.equal(await b.page.evaluate(() => window.tickmesh.session.conn_id), bobConn);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
