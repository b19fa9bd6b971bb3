// Presence and shared watch-lists in the browser: two users in two browser profiles, on two
// edges (the stack's own, and a second one on the same NATS), the built dashboard.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, openSync, readFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { login, openBrowser } from "./support/browser.mjs";
import { freePort, PYTHON, REPO, RESULTS, startStack, t } from "./support/stack.mjs";

// Short presence timings, so the scenarios wait seconds rather than tens of seconds.
const PRESENCE = { EDGE_PRESENCE_HEARTBEAT_S: "3", EDGE_PRESENCE_GRACE_S: "3", EDGE_PRESENCE_FLUSH_MS: "100", EDGE_ALLOWED_ORIGINS: "*" };

let stack;
let second;
let proxy;

/** A second edge on the stack's NATS, with the stack's signing key. */
async function startEdge() {
  const port = await freePort();
  const log = join(RESULTS, "collab-edge-b.log");
  // The edge's own NATS identity, as `tickmesh up` gives its edge (ops/natsauth.py).
  const passwords = JSON.parse(readFileSync(join(stack.home, "nats", "credentials.json"), "utf8"));
  const env = {
    ...process.env, ...PRESENCE, EDGE_PORT: String(port), EDGE_DEV_MODE: "on",
    NATS_URL: `nats://127.0.0.1:${stack.natsPort}`, NATS_USER: "edge", NATS_PASSWORD: passwords.edge,
    NATS_INBOX_PREFIX: "_INBOX_edge", TICKMESH_STREAMS_MANAGE: "off",
    TICKMESH_JWT_SECRET: readFileSync(join(stack.home, "jwt-secret"), "utf8").trim(), TICKMESH_LOG_FORMAT: "text",
  };
  const proc = spawn(PYTHON, ["-m", "tickmesh", "edge"], { cwd: REPO, env, stdio: ["ignore", openSync(log, "w"), openSync(log, "a")] });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + t(30000);
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      /* starting */
    }
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`second edge did not start: ${readFileSync(log, "utf8").slice(-2000)}`);
    await sleep(200);
  }
  return { proc, url, port, stop: () => proc.exitCode === null && proc.kill("SIGTERM") };
}

/** A load balancer in miniature: new TCP connections go to `target` (switchable). */
async function startProxy(target) {
  const port = await freePort();
  const state = { target };
  const server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: state.target });
    client.pipe(upstream).pipe(client);
    const end = () => (client.destroy(), upstream.destroy());
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { url: `http://127.0.0.1:${port}`, state, close: () => server.close() };
}

before(async () => {
  if (!existsSync(join(REPO, "web/apps/dashboard/dist/index.html"))) throw new Error("the dashboard is not built: run `npm run build` in web/ first");
  stack = await startStack("collab", PRESENCE);
  second = await startEdge();
});
after(async () => {
  proxy?.close();
  second?.stop();
  await stack?.stop();
});

async function user(name, baseUrl) {
  const b = await openBrowser();
  await login(b.page, baseUrl, name);
  return b;
}

async function guarded(browsers, name, fn) {
  try {
    await fn();
  } catch (err) {
    for (const [i, b] of browsers.entries()) {
      await b.screenshot(`${name}-${i}-failure`).catch(() => {});
      err.message += `\n--- browser ${i} console (last 15) ---\n${b.consoleLines.slice(-15).join("\n")}`;
    }
    throw err;
  } finally {
    for (const b of browsers) await b.close();
  }
}

const symbolsOf = (page) => page.locator('[data-testid="wl-item"]').evaluateAll((rows) => rows.map((r) => r.dataset.symbol).join(","));

async function until(fn, what, ms = 15000) {
  const deadline = Date.now() + t(ms);
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("presence and shared watch-lists, two users on two edges", { timeout: t(240000) }, () => {
  it("Alice shares a list with Bob, both edit it at once, and both converge, seeing who changed what", async () => {
    const alice = await user("alice", stack.url);
    const bob = await user("bob", second.url);
    await guarded([alice, bob], "collab-shared-list", async () => {
      const listName = `Team ${Date.now() % 100000}`;
      await alice.page.getByTestId("wl-create-name").fill(listName);
      await alice.page.getByTestId("wl-create").click();
      await alice.page.locator(`[data-testid="wl-tab"][data-name="${listName}"]`).click();
      await alice.page.getByTestId("wl-add-symbol").fill("AAPL");
      await alice.page.getByTestId("wl-add").click();
      await alice.page.locator('[data-testid="wl-item"][data-symbol="AAPL"]').waitFor();
      await alice.page.getByTestId("wl-share-user").selectOption("bob");
      await alice.page.getByTestId("wl-share").click();
      // Bob's page learns of the list by itself, and opens it.
      await bob.page.locator(`[data-testid="wl-tab"][data-name="${listName}"]`).click({ timeout: t(20000) });
      await bob.page.locator('[data-testid="wl-item"][data-symbol="AAPL"]').waitFor();
      // Both add a symbol at the same moment, each on the version they see.
      await alice.page.getByTestId("wl-add-symbol").fill("MSFT");
      await bob.page.getByTestId("wl-add-symbol").fill("NVDA");
      await Promise.all([alice.page.getByTestId("wl-add").click(), bob.page.getByTestId("wl-add").click()]);
      const converged = await until(async () => {
        const [a, b] = [await symbolsOf(alice.page), await symbolsOf(bob.page)];
        return a === b && a.split(",").length === 3 ? a : undefined;
      }, "both pages to show the same three symbols");
      assert.deepEqual(converged.split(",").sort(), ["AAPL", "MSFT", "NVDA"]);
      // Bob notes a symbol; Alice sees the note and that it was Bob.
      await bob.page.getByTestId("wl-note-NVDA").fill("earnings Tuesday");
      await bob.page.getByTestId("wl-note-NVDA").press("Enter");
      await until(async () => (await alice.page.getByTestId("wl-note-NVDA").inputValue()) === "earnings Tuesday", "Alice to see Bob's note");
      const change = await alice.page.getByTestId("wl-last-change").textContent();
      assert.match(change, /Bob.*noted NVDA/);
      // Both show who has the list open.
      await alice.page.locator('[data-testid="wl-presence"] [data-user="bob"]').waitFor();
      await bob.page.locator('[data-testid="wl-presence"] [data-user="alice"]').waitFor();
      await alice.screenshot("collab-alice-list");
      await bob.screenshot("collab-bob-list");
    });
  });

  it("Bob closes his tab and his avatar goes away from Alice's page", async () => {
    const alice = await user("alice", stack.url);
    const bob = await user("bob", second.url);
    await guarded([alice, bob], "collab-close-tab", async () => {
      const bobAvatar = alice.page.locator('[data-testid="watchers"] [data-user="bob"]');
      await bobAvatar.waitFor({ timeout: t(15000) });
      assert.equal(await alice.page.locator('[data-testid="support-online"]').getAttribute("data-count"), "0");
      await bob.close();
      // After the grace period (3 s here), the membership ends.
      await bobAvatar.waitFor({ state: "detached", timeout: t(15000) });
      await alice.screenshot("collab-bob-gone");
    });
  });

  it("an edge killed under Bob: he comes back through the other edge with no leave and join in between", async () => {
    proxy = await startProxy(stack.edgePort);
    const alice = await user("alice", second.url);
    const bob = await user("bob", proxy.url);
    await guarded([alice, bob], "collab-edge-killed", async () => {
      await alice.page.locator('[data-testid="watchers"] [data-user="bob"]').waitFor({ timeout: t(15000) });
      // Record every moment Bob's avatar is missing from Alice's page.
      await alice.page.evaluate(() => {
        window.__bobGone = 0;
        new MutationObserver(() => {
          if (!document.querySelector('[data-testid="watchers"] [data-user="bob"]')) window.__bobGone += 1;
        }).observe(document.body, { subtree: true, childList: true });
      });
      proxy.state.target = second.port; // the "load balancer" sends new connections to the other edge
      stack.killEdge(); // SIGKILL: Bob's edge dies without a word
      await bob.page.locator('[data-testid="connection"][data-state="reconnecting"]').waitFor({ timeout: t(15000) }).catch(() => {});
      await bob.page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: t(30000) });
      // The dead edge's lease runs out (2 heartbeats: 6 s here) and its records stop counting:
      // wait past that, then Bob must still be there, and never have been missing.
      await sleep(t(9000));
      assert.equal(await alice.page.locator('[data-testid="watchers"] [data-user="bob"]').count(), 1, "Bob is not back");
      assert.equal(await alice.page.evaluate(() => window.__bobGone), 0, "Bob's avatar flickered");
      await alice.screenshot("collab-after-edge-kill");
    });
  });
});
