// The dashboard over HTTPS and WSS, served by the edge itself (EDGE_TLS_CERT_FILE) with a
// certificate made for this test, in headless Chromium that trusts exactly that key
// (--ignore-certificate-errors-spki-list), under the edge's Content-Security-Policy.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { login, openBrowser, waitForChange } from "./support/browser.mjs";
import { PYTHON, REPO, startStack, t } from "./support/stack.mjs";

// Collects every CSP violation the page or its workers report.
const WATCH_CSP = `
  window.__csp = [];
  document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
`;

let stack, certs, folder;
before(async () => {
  folder = mkdtempSync(join(tmpdir(), "tickmesh-tls-"));
  certs = JSON.parse(execFileSync(PYTHON, ["-m", "tests.support.certs", folder], { cwd: REPO, encoding: "utf8" }));
  stack = await startStack("tls", { EDGE_TLS_CERT_FILE: certs.cert, EDGE_TLS_KEY_FILE: certs.key },
    { ca: readFileSync(certs.ca) });
});
after(async () => {
  await stack?.stop();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

describe("the dashboard over TLS", { timeout: t(120000) }, () => {
  it("loads over https, streams over wss, and breaks no rule of its CSP", async () => {
    assert.match(stack.url, /^https:/);
    const b = await openBrowser([`--ignore-certificate-errors-spki-list=${certs.spki}`]);
    try {
      const { page, consoleLines } = b;
      await page.addInitScript(WATCH_CSP);
      const sockets = [];
      page.on("websocket", (ws) => sockets.push(ws.url()));
      const doc = await page.goto(stack.url + "/");
      const headers = doc.headers();
      assert.match(headers["content-security-policy"], /script-src 'self';/);
      assert.doesNotMatch(headers["content-security-policy"], /unsafe-inline|unsafe-eval/);
      assert.equal(headers["strict-transport-security"], "max-age=31536000");
      await login(page, stack.url);
      const aapl = page.getByTestId("last-AAPL");
      await aapl.filter({ hasText: /\d/ }).waitFor({ timeout: t(15000) });
      await waitForChange(aapl, (await aapl.textContent()).trim(), t(20000));
      assert.equal(await page.getByTestId("connection").getAttribute("data-transport"), "websocket");
      // The edge's port speaks only TLS, so a live WebSocket to it is wss (usually opened by the
      // SharedWorker, which the page's "websocket" event does not see; any the page opens is checked).
      for (const url of sockets) assert.match(url, new RegExp(`^wss://127\\.0\\.0\\.1:${stack.edgePort}/ws`));
      assert.deepEqual(await page.evaluate(() => window.__csp), []);
      const refused = consoleLines.filter((l) => /Content Security Policy|Refused to/i.test(l));
      assert.deepEqual(refused, [], refused.join("\n"));
    } catch (err) {
      await b.screenshot("tls-failure").catch(() => {});
      err.message += `\n--- browser console ---\n${b.consoleLines.slice(-20).join("\n")}`;
      throw err;
    } finally {
      await b.close();
    }
  });
});
