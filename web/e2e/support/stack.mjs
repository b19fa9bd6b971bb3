// The real stack for browser tests: `tickmesh up` (NATS, every service, one edge in dev mode)
// on free ports in a temporary home, started by the test and always stopped by it.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, readdirSync, mkdirSync } from "node:fs";
import { get as httpsGet } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const REPO = resolve(import.meta.dirname, "../../..");
export const PYTHON = process.env.TICKMESH_PYTHON ?? join(REPO, ".venv/bin/python");
export const RESULTS = resolve(import.meta.dirname, "../../test-results");
/** Scales every wait on slow machines (CI, two shared cores). */
export const TIMEOUT_FACTOR = Number(process.env.TICKMESH_TIMEOUT_FACTOR ?? "1");
export const t = (ms) => Math.round(ms * TIMEOUT_FACTOR);

export async function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** GET over HTTPS trusting the PEM CA `ca` (Node's fetch takes no per-request CA). */
export function httpsStatus(url, ca) {
  return new Promise((ok, fail) => {
    httpsGet(url, { ca }, (resp) => {
      resp.resume();
      ok(resp.statusCode);
    }).on("error", fail);
  });
}

async function waitReady(url, proc, timeoutMs, failed = () => undefined, ca = undefined) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const err = failed();
    if (err) throw new Error(`could not start ${PYTHON} -m tickmesh up: ${err.message}`);
    if (proc.exitCode !== null) throw new Error(`tickmesh up exited with ${proc.exitCode} while starting`);
    try {
      if (ca ? (await httpsStatus(url, ca)) === 200 : (await fetch(url)).ok) return;
    } catch {
      /* not listening yet */
    }
    await sleep(200);
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms`);
}

function childrenOf(pid) {
  try {
    return execFileSync("pgrep", ["-P", String(pid)], { encoding: "utf8" }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

/**
 * `options.ca`: the PEM of the CA that signed the edge's certificate, when `extraEnv` turns TLS
 * on (EDGE_TLS_CERT_FILE); the stack's `url` is then https.
 */
export async function startStack(name, extraEnv = {}, options = {}) {
  mkdirSync(RESULTS, { recursive: true });
  const home = mkdtempSync(join(tmpdir(), "tickmesh-e2e-"));
  const edgePort = await freePort();
  const natsPort = await freePort();
  const log = join(RESULTS, `${name}-stack.log`);
  const out = openSync(log, "w");
  const env = {
    ...process.env,
    TICKMESH_HOME: home,
    EDGE_PORT: String(edgePort),
    TICKMESH_NATS_PORT: String(natsPort),
    TICKMESH_LOG_FORMAT: "text",
    ...extraEnv,
  };
  const proc = spawn(PYTHON, ["-m", "tickmesh", "up"], { cwd: REPO, env, stdio: ["ignore", out, out] });
  // Never leave a stack behind, even if the test runner dies without running `after` hooks:
  // `tickmesh up` stops its children on SIGTERM (and they die with it anyway).
  let spawnError;
  proc.on("error", (err) => (spawnError = err)); // e.g. no .venv: reported by waitReady
  const onExit = () => proc.exitCode === null && proc.kill("SIGTERM");
  process.once("exit", onExit);
  for (const sig of ["SIGINT", "SIGTERM"]) process.once(sig, () => (onExit(), process.exit(130)));
  const stack = {
    proc, home, edgePort, natsPort, log,
    url: `${extraEnv.EDGE_TLS_CERT_FILE ? "https" : "http"}://127.0.0.1:${edgePort}`,
    natsUrl: `nats://127.0.0.1:${natsPort}`,
    /** PIDs of the edge processes `tickmesh up` runs. */
    edgePids: () => childrenOf(proc.pid).filter((pid) => / -m tickmesh edge/.test(cmdline(pid))),
    /** SIGKILL the edge: the supervisor restarts it after its backoff. */
    killEdge() {
      const pids = stack.edgePids();
      if (!pids.length) throw new Error("no edge process found");
      for (const pid of pids) process.kill(pid, "SIGKILL");
      return pids;
    },
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill("SIGTERM");
      const deadline = Date.now() + t(20000);
      while (proc.exitCode === null && Date.now() < deadline) await sleep(100);
      if (proc.exitCode === null) {
        for (const pid of childrenOf(proc.pid)) process.kill(pid, "SIGKILL");
        proc.kill("SIGKILL");
      }
    },
  };
  try {
    await waitReady(`${stack.url}/readyz`, proc, t(60000), () => spawnError, options.ca);
  } catch (err) {
    await stack.stop();
    throw new Error(`${err.message}; log: ${log}\n${readFileSync(log, "utf8").slice(-3000)}`);
  }
  // Test helpers (publish.py, revoke.py) act as the stack's NATS admin: `tickmesh up` gives every
  // component its own user with only its permissions (contracts/permissions.toml), and only the
  // admin may, e.g., revoke a user.
  const { admin } = JSON.parse(readFileSync(join(home, "nats", "credentials.json"), "utf8"));
  stack.natsUrl = `nats://admin:${encodeURIComponent(admin)}@127.0.0.1:${natsPort}`;
  return stack;
}

/** Does the edge answer `path` (other than 404)? Lets a test say what the edge lacks today. */
export async function edgeHas(stack, path, init) {
  try {
    const resp = await fetch(stack.url + path, init);
    return resp.status !== 404 && resp.status !== 405;
  } catch {
    return false;
  }
}

export const listResults = () => readdirSync(RESULTS);
