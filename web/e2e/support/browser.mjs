// Headless Debian Chromium driven by playwright-core: never a downloaded browser.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { RESULTS, t } from "./stack.mjs";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--disable-quic", "--no-first-run",
];

/** A fresh browser profile and page; `close()` removes both. `extraArgs` go to Chromium. */
export async function openBrowser(extraArgs = []) {
  const profile = mkdtempSync(join(tmpdir(), "tickmesh-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...ARGS, ...extraArgs],
    viewport: { width: 1440, height: 900 },
    timeout: t(30000),
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(t(15000));
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
  return {
    context, page, consoleLines,
    async screenshot(name) {
      await page.screenshot({ path: join(RESULTS, `${name}.png`) });
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Log in as a demo user and wait for the trading screen to be live. */
export async function login(page, baseUrl, user = "alice", query = "") {
  await page.goto(baseUrl + "/" + query);
  await page.getByTestId(`login-${user}`).click();
  await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: t(20000) });
}

/** Wait until the text of `locator` differs from `before`. */
export async function waitForChange(locator, before, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const now = (await locator.textContent())?.trim();
    if (now && now !== "—" && now !== before) return now;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`text stayed ${JSON.stringify(before)} for ${timeoutMs} ms`);
}

/**
 * A real proxy or CSP would refuse the SharedWorker's connections as well, but a page cannot
 * patch the worker's globals: scripts that patch the page's transports also take SharedWorker
 * away, so the client shares through leader election and connects from the page itself.
 */
const NO_SHARED_WORKER = "delete window.SharedWorker;";

/**
 * Make WebSockets fail the way a blocking proxy makes them fail: error, then close 1006.
 * `window.__blockWebSocket = false` lets new ones through again (the proxy went away).
 */
export const BLOCK_WEBSOCKET = `
  ${NO_SHARED_WORKER}
  window.__blockWebSocket = true;
  const RealWebSocket = window.WebSocket;
  window.WebSocket = class BlockedWebSocket extends EventTarget {
    constructor(url, protocols) {
      if (!window.__blockWebSocket) return new RealWebSocket(url, protocols);
      super();
      this.url = url; this.readyState = 0; this.protocol = ""; this.binaryType = "blob";
      this.onopen = this.onmessage = this.onerror = this.onclose = null;
      setTimeout(() => {
        this.readyState = 3;
        const err = new Event("error"); this.onerror && this.onerror(err); this.dispatchEvent(err);
        const close = new CloseEvent("close", { code: 1006, reason: "", wasClean: false });
        this.onclose && this.onclose(close); this.dispatchEvent(close);
      }, 20);
    }
    send() { throw new Error("blocked"); }
    close() {}
  };
`;

/**
 * A host where no streaming transport can even be constructed: `new WebSocket()` throws a
 * `SecurityError` (a CSP `connect-src` without ws:) and `EventSource` does not exist (React
 * Native, some embedded WebViews). `window.__webSocketsTried` counts the attempts.
 */
export const UNCONSTRUCTIBLE_TRANSPORTS = `
  ${NO_SHARED_WORKER}
  window.__webSocketsTried = 0;
  window.WebSocket = class RefusedWebSocket {
    constructor(url) {
      window.__webSocketsTried += 1;
      throw new DOMException("Refused to connect to '" + url + "' because it violates the Content Security Policy directive: connect-src 'self'", "SecurityError");
    }
  };
  delete window.EventSource;
`;
