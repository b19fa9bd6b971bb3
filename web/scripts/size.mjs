// The size a browser downloads for @tickmesh/client: the whole public API bundled and minified
// (tree-shaking cannot drop anything an app might import), then gzipped. Code the client loads
// only when needed is measured apart: the hub a leader tab runs (a dynamic import), and the
// SharedWorker script that holds the shared connection (its own file, never in the page).
import { build } from "esbuild";
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
