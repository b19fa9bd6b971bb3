// One connection for all tabs (issue 14), in headless Chromium against the real stack: the tabs
// of one user share one WebSocket (counted on the edge's /metrics), through a SharedWorker and,
// without one, through leader election; closing the leader hands over without losing or
// repeating a notification; another user's tab gets its own connection and none of this
// user's data. Run with `npm run e2e` (after `npm run build`).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { login, openBrowser, waitForChange } from "./support/browser.mjs";
import { PYTHON, REPO, startStack, t } from "./support/stack.mjs";

let stack;
before(async () => {
  if (!existsSync(join(REPO, "web/apps/dashboard/dist/index.html"))) {
    throw new Error("the dashboard is not built: run `npm run build` in web/ first");
  }
  stack = await startStack("shared-connection");
});
after(async () => {
  await stack?.stop();
});

/** Sum of a metric's samples whose labels match, from the edge's Prometheus text. */
async function metric(name, labels = {}) {
  const text = await (await fetch(`${stack.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-z_]+)(?:\{([^}]*)\})? ([0-9.e+-]+)$/);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries((m[2] ?? "").split(",").filter(Boolean).map((kv) => kv.split("=")).map(([k, v]) => [k, v.replace(/"/g, "")]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

const openWebSockets = () => metric("tickmesh_edge_connections", { transport: "ws" });
const webSocketsOpened = () => metric("tickmesh_edge_connections_opened_total", { transport: "ws" });

/** Wait until `read()` returns `want`; fails with the last value seen. */
async function until(read, want, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await read();
    if (last === want) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: expected ${want}, still ${last} after ${timeoutMs} ms`);
}

async function withBrowser(name, fn, initScript) {
  const b = await openBrowser();
  const tabs = [b.page];
  try {
    if (initScript) await b.context.addInitScript(initScript);
    await fn({ ...b, tabs, newTab: async () => tabs[tabs.push(await b.context.newPage()) - 1] });
  } catch (err) {
    for (const [i, page] of tabs.entries()) {
      if (!page.isClosed()) await page.screenshot({ path: join(REPO, "web/test-results", `${name}-tab${i + 1}-failure.png`) }).catch(() => {});
    }
    err.message += `\n--- browser console (last 20) ---\n${b.consoleLines.slice(-20).join("\n")}`;
    throw err;
  } finally {
    await b.close();
  }
}

/** Open `count` tabs logged in as `user`, one after the other (the first is the leader). */
async function openTabs(ctx, user, count) {
  const pages = [];
  for (let i = 0; i < count; i++) {
    const page = i === 0 && ctx.tabs[0].url() === "about:blank" ? ctx.tabs[0] : await ctx.newTab();
    page.setDefaultTimeout(t(15000));
    await login(page, stack.url, user);
    pages.push(page);
  }
  return pages;
}

async function pricesMove(page) {
  const aapl = page.getByTestId("last-AAPL");
  await aapl.filter({ hasText: /\d/ }).waitFor();
  await waitForChange(aapl, (await aapl.textContent()).trim(), t(20000));
}

const shared = (page) => page.evaluate(() => ({ shared: window.tickmesh.shared, user: window.tickmesh.session?.user, transport: window.tickmesh.transportName }));

/** Notifications published straight to NATS at a moment the test chooses (see support/publish.py). */
function publisher(user, prefix, count) {
  const proc = spawn(PYTHON, ["web/e2e/support/publish.py", stack.natsUrl, user, prefix, String(count)], { cwd: REPO, stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: proc.stdout });
  const ids = [];
  const ready = new Promise((ok) => lines.on("line", (l) => (l === "ready" ? ok() : ids.push(l))));
  const exited = new Promise((ok) => proc.on("exit", ok));
  return { ids, ready, exited, go: () => proc.stdin.write("go\n"), kill: () => proc.kill() };
}

async function seesEachOnce(page, ids) {
  for (const id of ids) await page.locator(`[data-testid="notification-feed"] [data-id="${id}"]`).waitFor({ timeout: t(20000) });
  return Promise.all(ids.map((id) => page.locator(`[data-testid="notification-feed"] [data-id="${id}"]`).count()));
}

describe("one connection for all tabs of a user", { timeout: t(240000) }, () => {
  it("three tabs open one WebSocket (SharedWorker), all live, and a tab's pending order still shows in that tab", async () => {
    await withBrowser("shared-worker", async (ctx) => {
      const before = await openWebSockets();
      const pages = await openTabs(ctx, "alice", 3);
      for (const page of pages) {
        assert.deepEqual(await shared(page), { shared: true, user: "alice", transport: "websocket" });
        await pricesMove(page);
      }
      await until(openWebSockets, before + 1, t(10000), "open WebSockets on the edge for 3 tabs");
      assert.equal(await pages[0].evaluate(() => typeof SharedWorker), "function");

      // Per-tab optimistic state: the order shows at once as pending in the tab that sent it.
      const page = pages[1];
      await page.evaluate(() => {
        window.__orders = [];
        new MutationObserver(() => {
          for (const row of document.querySelectorAll('tr[data-testid^="order-web-"]')) {
            const seen = window.__orders.filter((o) => o.id === row.dataset.testid);
            if (!seen.length || seen.at(-1).status !== row.dataset.status) window.__orders.push({ id: row.dataset.testid, status: row.dataset.status });
          }
        }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
      });
      await page.getByTestId("ticket-symbol").fill("AAPL");
      await page.getByTestId("ticket-qty").fill("1");
      await page.getByTestId("ticket-submit").click();
      await page.locator('tr[data-testid^="order-web-"][data-status="filled"]').waitFor({ timeout: t(15000) });
      const log = await page.evaluate(() => window.__orders);
      assert.equal(log[0].status, "pending", JSON.stringify(log));
      await page.screenshot({ path: join(REPO, "web/test-results", "shared-three-tabs.png") });
      assert.equal(await openWebSockets(), before + 1, "still one WebSocket");
    });
  });

  it("without a SharedWorker, elects a leader; closing it keeps the others live and no notification is missed or repeated", async () => {
    await withBrowser("shared-leader", async (ctx) => {
      const before = await openWebSockets();
      const pages = await openTabs(ctx, "alice", 3);
      for (const page of pages) assert.equal((await shared(page)).shared, true);
      await until(openWebSockets, before + 1, t(10000), "open WebSockets on the edge for 3 tabs (leader election)");
      await pricesMove(pages[2]);
      const opened = await webSocketsOpened();

      const pub = publisher("alice", `handover${Date.now()}`, 6);
      try {
        await pub.ready;
        // The leader (the first tab, which asked for the lock first) closes while the
        // notifications are being published: some reach it, some arrive during the handover.
        const closing = pages[0].close({ runBeforeUnload: false });
        pub.go();
        await closing;
        await pub.exited;
        assert.equal(pub.ids.length, 6);
        for (const page of pages.slice(1)) {
          assert.deepEqual(await seesEachOnce(page, pub.ids), [1, 1, 1, 1, 1, 1]);
          await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: t(15000) });
        }
        // The connection moved to a new leader: one more WebSocket was opened, one is open.
        await until(openWebSockets, before + 1, t(10000), "open WebSockets after the handover");
        assert.equal(await webSocketsOpened(), opened + 1, "the next leader opened the one new WebSocket");
        for (const page of pages.slice(1)) await pricesMove(page);
        await new Promise((r) => setTimeout(r, 1000)); // a duplicate would have arrived by now
        for (const page of pages.slice(1)) {
          assert.deepEqual(await Promise.all(pub.ids.map((id) => page.locator(`[data-testid="notification-feed"] [data-id="${id}"]`).count())), [1, 1, 1, 1, 1, 1]);
        }
        await pages[1].screenshot({ path: join(REPO, "web/test-results", "shared-after-handover.png") });
      } finally {
        pub.kill();
      }
    }, "delete window.SharedWorker;");
  });

  it("a tab in another user's session gets its own connection and never sees this user's data", async () => {
    await withBrowser("shared-other-user", async (ctx) => {
      const before = await openWebSockets();
      const alice = await openTabs(ctx, "alice", 2);
      const [bob] = await openTabs(ctx, "bob", 1);
      assert.deepEqual(await shared(bob), { shared: true, user: "bob", transport: "websocket" });
      for (const page of alice) assert.equal((await shared(page)).user, "alice");
      await until(openWebSockets, before + 2, t(10000), "one WebSocket per user");

      const forAlice = publisher("alice", `private${Date.now()}`, 2);
      const forBob = publisher("bob", `bobs${Date.now()}`, 1);
      try {
        await Promise.all([forAlice.ready, forBob.ready]);
        forAlice.go();
        await forAlice.exited;
        forBob.go(); // published after alice's: once bob sees his, alice's would have leaked by now
        await forBob.exited;
        for (const page of alice) assert.deepEqual(await seesEachOnce(page, forAlice.ids), [1, 1]);
        assert.deepEqual(await seesEachOnce(bob, forBob.ids), [1]);
        for (const id of forAlice.ids) {
          assert.equal(await bob.locator(`[data-id="${id}"]`).count(), 0, `bob's tab shows alice's ${id}`);
        }
        const bobTexts = await bob.getByTestId("notification-feed").textContent();
        assert.doesNotMatch(bobTexts, /private/);
        await bob.screenshot({ path: join(REPO, "web/test-results", "shared-other-user.png") });
      } finally {
        forAlice.kill();
        forBob.kill();
      }
    });
  });
});
