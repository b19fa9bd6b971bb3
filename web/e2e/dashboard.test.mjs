// Browser end-to-end tests: the built dashboard, served by a real edge under `tickmesh up`,
// in headless Debian Chromium. Run with `npm run e2e` (after `npm run build`).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { execFileSync, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { BLOCK_WEBSOCKET, login, UNCONSTRUCTIBLE_TRANSPORTS, openBrowser, waitForChange } from "./support/browser.mjs";
import { edgeHas, PYTHON, REPO, startStack, t } from "./support/stack.mjs";

// Set to 1 to skip (instead of fail) scenarios whose edge endpoints do not exist yet.
const ALLOW_MISSING = process.env.TICKMESH_E2E_ALLOW_MISSING === "1";

let stack;
before(async () => {
  if (!existsSync(join(REPO, "web/apps/dashboard/dist/index.html"))) {
    throw new Error("the dashboard is not built: run `npm run build` in web/ first");
  }
  stack = await startStack("dashboard");
});
after(async () => {
  await stack?.stop();
});

async function withBrowser(name, fn) {
  const b = await openBrowser();
  try {
    await fn(b);
  } catch (err) {
    await b.screenshot(`${name}-failure`).catch(() => {});
    err.message += `\n--- browser console (last 20) ---\n${b.consoleLines.slice(-20).join("\n")}`;
    throw err;
  } finally {
    await b.close();
  }
}

/** Records every status each order row shows, from the moment it is rendered. */
// Records every status each new order row shows. Rows already on screen (the recent orders a
// freshly loaded page starts with) are not this test's orders and are left out.
const WATCH_ORDERS = `
  window.__orders = [];
  window.__oldOrders = new Set([...document.querySelectorAll('tr[data-testid^="order-web-"]')].map((r) => r.dataset.testid));
  new MutationObserver(() => {
    for (const row of document.querySelectorAll('tr[data-testid^="order-web-"]')) {
      const id = row.dataset.testid, status = row.dataset.status;
      if (window.__oldOrders.has(id)) continue;
      const seen = window.__orders.filter((o) => o.id === id);
      if (!seen.length || seen[seen.length - 1].status !== status) window.__orders.push({ id, status, t: performance.now() });
    }
  }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
`;

describe("trading dashboard against the real stack", { timeout: t(240000) }, () => {
  it("shows prices moving on screen, and the announcements in force", async () => {
    // An administrator announces something through POST /cmd; a new connection replays it.
    const text = `Scheduled maintenance window at ${new Date().toISOString().slice(11, 16)} UTC: order entry may pause briefly.`;
    const { token } = await (await fetch(`${stack.url}/dev/token`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user: "admin" }) })).json();
    const published = await fetch(`${stack.url}/cmd`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "announcement.publish", key: `ann-${Date.now()}`, data: { severity: "warning", text } }),
    });
    assert.equal(published.status, 200, await published.text());
    await withBrowser("prices", async ({ page, screenshot }) => {
      await login(page, stack.url);
      await page.getByTestId("announcement").filter({ hasText: text }).waitFor({ timeout: t(15000) });
      const aapl = page.getByTestId("last-AAPL");
      await aapl.filter({ hasText: /\d/ }).waitFor({ timeout: t(15000) });
      const first = (await aapl.textContent()).trim();
      await waitForChange(aapl, first, t(20000));
      assert.equal(await page.getByTestId("connection").getAttribute("data-transport"), "websocket");
      await sleep(1500); // let a few flashes and the portfolio arrive for the screenshot
      await screenshot("dashboard-live");
    });
  });

  it("works over the MessagePack subprotocol", async () => {
    await withBrowser("msgpack", async ({ page }) => {
      await page.goto(stack.url + "/?codec=msgpack");
      await page.getByTestId("login-bob").click();
      await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: t(20000) });
      assert.equal(await page.evaluate(() => window.tickmesh.session.proto), "tickmesh.v1.msgpack");
      const aapl = page.getByTestId("last-AAPL");
      await aapl.filter({ hasText: /\d/ }).waitFor();
      await waitForChange(aapl, (await aapl.textContent()).trim(), t(20000));
    });
  });

  it("shows an optimistic order at once, then its fill", async () => {
    await withBrowser("order-fill", async ({ page, screenshot }) => {
      await login(page, stack.url);
      await page.getByTestId("last-AAPL").filter({ hasText: /\d/ }).waitFor();
      await page.evaluate(WATCH_ORDERS);
      await page.getByTestId("ticket-symbol").fill("AAPL");
      await page.getByTestId("ticket-qty").fill("1");
      await page.getByTestId("ticket-submit").click();
      const row = page.locator('tr[data-testid^="order-web-"]').first();
      await row.waitFor({ timeout: t(2000) });
      await page.locator('tr[data-testid^="order-web-"][data-status="filled"]').waitFor({ timeout: t(15000) });
      const log = await page.evaluate(() => window.__orders);
      assert.equal(log[0].status, "pending", `first status shown: ${JSON.stringify(log)}`);
      assert.equal(log.at(-1).status, "filled");
      await screenshot("order-filled");
    });
  });

  it("rests a limit order, then cancels it", async () => {
    await withBrowser("order-cancel", async ({ page, screenshot }) => {
      await login(page, stack.url);
      await page.getByTestId("last-AAPL").filter({ hasText: /\d/ }).waitFor();
      await page.getByTestId("ticket-symbol").fill("AAPL");
      await page.getByTestId("ticket-type").selectOption("limit");
      await page.getByTestId("ticket-qty").fill("2");
      await page.getByTestId("ticket-limit").fill("1.00"); // far below the market: it rests
      await page.getByTestId("ticket-submit").click();
      const resting = page.locator('tr[data-testid^="order-web-"][data-status="accepted"]');
      await resting.waitFor({ timeout: t(15000) });
      await screenshot("order-resting");
      await resting.getByTitle("Cancel order").click();
      await page.locator('tr[data-testid^="order-web-"][data-status="cancelled"]').waitFor({ timeout: t(15000) });
    });
  });

  it("rolls back a rejected order and shows why", async () => {
    await withBrowser("order-rejected", async ({ page, screenshot }) => {
      await login(page, stack.url);
      await page.getByTestId("last-AAPL").filter({ hasText: /\d/ }).waitFor();
      await page.evaluate(WATCH_ORDERS);
      await page.getByTestId("ticket-symbol").fill("AAPL");
      await page.getByTestId("ticket-qty").fill("100000000");
      await page.getByTestId("ticket-submit").click();
      const rejection = page.getByTestId("rejection");
      await rejection.waitFor({ timeout: t(15000) });
      assert.match(await rejection.textContent(), /insufficient_funds · 603/);
      const log = await page.evaluate(() => window.__orders);
      const rows = await page.evaluate(() => [...document.querySelectorAll('tr[data-testid^="order-web-"]')]
        .map((r) => r.dataset.testid).filter((id) => !window.__oldOrders.has(id)));
      assert.deepEqual(rows, [], "the rejected order is rolled back");
      assert.equal(log[0]?.status, "pending", "it was shown at once before the rejection");
      await screenshot("order-rejected");
    });
  });

  it("works over SSE when WebSockets are blocked, then over long polling when SSE is too, and upgrades back", async (ctx) => {
    if (!(await edgeHas(stack, "/ticket", { method: "POST" }))) {
      if (ALLOW_MISSING) return ctx.skip("the edge has no /ticket, /sse or /poll yet");
      assert.fail("the edge has no /ticket yet (SSE and long polling need it)");
    }
    await withBrowser("fallback", async ({ page, context, screenshot }) => {
      await context.addInitScript(BLOCK_WEBSOCKET);
      await login(page, stack.url, "alice", "?upgrade_ms=2000");
      const conn = page.getByTestId("connection");
      assert.equal(await conn.getAttribute("data-transport"), "sse");
      const aapl = page.getByTestId("last-AAPL");
      await aapl.filter({ hasText: /\d/ }).waitFor();
      await waitForChange(aapl, (await aapl.textContent()).trim(), t(20000));
      await screenshot("fallback-sse");

      await context.route(/\/sse\?/, (route) => route.abort("blockedbyclient"));
      await page.reload();
      await page.locator('[data-testid="connection"][data-state="connected"][data-transport="polling"]').waitFor({ timeout: t(30000) });
      await aapl.filter({ hasText: /\d/ }).waitFor();
      await waitForChange(aapl, (await aapl.textContent()).trim(), t(30000));
      await screenshot("fallback-polling");

      // The proxy goes away: the client probes and moves back to the WebSocket by itself.
      await page.evaluate(() => (window.__blockWebSocket = false));
      await page.locator('[data-testid="connection"][data-state="connected"][data-transport="websocket"]').waitFor({ timeout: t(20000) });
      await waitForChange(aapl, (await aapl.textContent()).trim(), t(20000));
    });
  });

  it("goes Live over long polling when WebSocket throws on construction and EventSource does not exist", async () => {
    await withBrowser("no-websocket-no-eventsource", async ({ page, context, screenshot }) => {
      // As in a page whose CSP refuses ws: (the constructor throws a SecurityError) inside a
      // WebView without EventSource: the client must skip SSE up front and fall back at once.
      await context.addInitScript(UNCONSTRUCTIBLE_TRANSPORTS);
      await login(page, stack.url);
      const conn = page.getByTestId("connection");
      assert.equal(await conn.getAttribute("data-transport"), "polling");
      const client = await page.evaluate(() => ({ skipped: window.tickmesh.skippedTransports, tried: window.__webSocketsTried }));
      assert.deepEqual(client.skipped, { sse: "no EventSource in this environment" });
      assert.ok(client.tried >= 1, "the WebSocket was tried (and threw)");
      const aapl = page.getByTestId("last-AAPL");
      await aapl.filter({ hasText: /\d/ }).waitFor();
      await waitForChange(aapl, (await aapl.textContent()).trim(), t(20000));

      await page.evaluate(WATCH_ORDERS);
      await page.getByTestId("ticket-symbol").fill("AAPL");
      await page.getByTestId("ticket-qty").fill("1");
      await page.getByTestId("ticket-submit").click();
      await page.locator('tr[data-testid^="order-web-"][data-status="filled"]').waitFor({ timeout: t(30000) });
      const log = await page.evaluate(() => window.__orders);
      assert.equal(log[0].status, "pending", `first status shown: ${JSON.stringify(log)}`);
      assert.equal(await conn.getAttribute("data-transport"), "polling");
      await screenshot("no-websocket-no-eventsource-polling");
    });
  });

  it("shows reconnecting when the edge dies, comes back live, and shows every notification sent meanwhile once", async () => {
    await withBrowser("reconnect", async ({ page, screenshot }) => {
      await login(page, stack.url);
      await page.getByTestId("last-AAPL").filter({ hasText: /\d/ }).waitFor();
      await sleep(500); // the notifications subscription is confirmed (its position known)

      const pub = spawn(PYTHON, ["web/e2e/support/publish.py", stack.natsUrl, "alice", `gap${Date.now()}`, "3"], { cwd: REPO, stdio: ["pipe", "pipe", "inherit"] });
      const lines = createInterface({ input: pub.stdout });
      const ids = [];
      const ready = new Promise((ok) => lines.on("line", (l) => (l === "ready" ? ok() : ids.push(l))));
      const exited = new Promise((ok) => pub.on("exit", ok));
      try {
        await ready;
        stack.killEdge();
        pub.stdin.write("go\n"); // published while no edge is running
        const conn = page.getByTestId("connection");
        // The supervisor restarts the edge quickly; kill the new one too until the outage is
        // longer than the indicator's grace period.
        const deadline = Date.now() + t(20000);
        while ((await conn.getAttribute("data-state")) !== "reconnecting") {
          if (Date.now() > deadline) throw new Error("the indicator never showed reconnecting");
          if (stack.edgePids().length && (await conn.getAttribute("data-state")) === "connected") stack.killEdge();
          await sleep(100);
        }
        await screenshot("reconnecting");
        await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: t(40000) });
        await exited;
        assert.equal(ids.length, 3);
        for (const id of ids) await page.locator(`[data-testid="notification-feed"] [data-id="${id}"]`).waitFor({ timeout: t(15000) });
        await sleep(1500); // a duplicate would arrive by now
        for (const id of ids) {
          assert.equal(await page.locator(`[data-testid="notification-feed"] [data-id="${id}"]`).count(), 1, `${id} shown once`);
        }
        await screenshot("reconnected");
      } finally {
        pub.kill();
      }
    });
  });

  it("stops, and says why, when the user is revoked (a do-not-reconnect close code)", async () => {
    await withBrowser("revoked", async ({ page, screenshot }) => {
      await login(page, stack.url, "carol");
      execFileSync(PYTHON, ["web/e2e/support/revoke.py", stack.natsUrl, "carol"], { cwd: REPO });
      await page.locator('[data-testid="connection"][data-state="disconnected"]').waitFor({ timeout: t(10000) });
      assert.match(await page.getByTestId("fatal").textContent(), /forbidden \(4102\)/);
      await sleep(3000); // backoff would have retried by now
      assert.equal(await page.evaluate(() => window.tickmesh.state), "disconnected");
      await screenshot("revoked");
    });
  });
});
