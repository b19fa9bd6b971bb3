// The size a browser downloads for @tickmesh/client: the whole public API bundled and minified
// (tree-shaking cannot drop anything an app might import), then gzipped. Code the client loads
// only when needed is measured apart: the hub a leader tab runs (a dynamic import), and the
// SharedWorker script that holds the shared connection (its own file, never in the page).
// The other packages: peer dependencies (React, the OpenFeature SDK) are the app's and left out,
// and so are the workspace packages a package builds on: each line is what that package adds
// (lightweight-charts is in @tickmesh/react-ui/charts). Last, the dashboard as built.
import { build } from "esbuild";
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

/** Bundle `entry`; returns what the page loads with it and what it loads later (dynamic imports). */
async function measure(entry, splitting) {
  const out = await build({
    entryPoints: [entry], bundle: true, minify: true, format: "esm", write: false, target: "es2022",
    splitting, outdir: "size-out", metafile: true, // nothing is written: `write: false`
  });
  const code = new Map(out.outputFiles.map((f) => [f.path.slice(f.path.indexOf("size-out/")), f.contents]));
  const outputs = out.metafile.outputs;
  const entryOut = Object.keys(outputs).find((k) => outputs[k].entryPoint);
  const statically = new Set();
  const visit = (file) => {
    if (statically.has(file)) return;
    statically.add(file);
    for (const i of outputs[file].imports) if (i.kind === "import-statement") visit(i.path);
  };
  visit(entryOut);
  const join = (files) => Buffer.concat(files.map((f) => code.get(f)));
  const later = Object.keys(outputs).filter((k) => k.endsWith(".js") && !statically.has(k));
  return { now: join([...statically]), later: join(later) };
}

const line = (name, code) =>
  console.log(`${name}: ${kib(code.length)} minified, ${kib(gzipSync(code, { level: 9 }).length)} gzipped`);

const client = await measure("packages/client/src/index.ts", true);
line("@tickmesh/client", client.now);
line("  + the hub a leader tab loads on demand", client.later);
line("@tickmesh/client/msgpack", (await measure("packages/client/src/msgpack.ts", false)).now);
const worker = await measure("packages/client/src/shared-worker.ts", true);
line("shared-worker.js (the SharedWorker's own script, never in the page)", worker.now);
line("  + MessagePack, when a tab asks for it", worker.later);

const PEERS = ["react", "react-dom", "react/jsx-runtime", "@openfeature/web-sdk", "@openfeature/core", "@openfeature/react-sdk"];
const OWN = (...pkgs) => pkgs.flatMap((p) => [p, `${p}/*`]);
for (const [name, entry, workspace] of [
  ["@tickmesh/react", "packages/react/src/index.ts", OWN("@tickmesh/client")],
  ["@tickmesh/openfeature", "packages/openfeature/src/index.ts", OWN("@tickmesh/client")],
  ["@tickmesh/react-ui", "packages/react-ui/src/index.ts", OWN("@tickmesh/client", "@tickmesh/react")],
  ["@tickmesh/react-ui/charts (lightweight-charts included)", "packages/react-ui/src/charts.ts", OWN("@tickmesh/client", "@tickmesh/react")],
]) {
  const out = await build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", write: false, target: "es2022",
    external: [...PEERS, ...workspace], jsx: "automatic", logLevel: "error" });
  line(name, out.outputFiles[0].contents);
}

// The dashboard as built (`npm run build`): its first load and the chunks it loads later.
try {
  const dir = "apps/dashboard/dist/assets";
  for (const file of readdirSync(dir).filter((f) => /\.(js|css)$/.test(f)).sort()) {
    line(`dashboard ${file.replace(/-[A-Za-z0-9_-]{8}\./, ".")}`, readFileSync(`${dir}/${file}`));
  }
} catch {
  console.log("dashboard: not built (npm run build)");
}
