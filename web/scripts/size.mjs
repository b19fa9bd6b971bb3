// The size a browser downloads for @tickmesh/client: the whole public API bundled and minified
// (tree-shaking cannot drop anything an app might import), then gzipped.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

for (const [name, entry] of [["@tickmesh/client", "packages/client/src/index.ts"], ["@tickmesh/client/msgpack", "packages/client/src/msgpack.ts"]]) {
  const out = await build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", write: false, target: "es2022" });
  const code = out.outputFiles[0].contents;
  console.log(`${name}: ${(code.length / 1024).toFixed(1)} KiB minified, ${(gzipSync(code, { level: 9 }).length / 1024).toFixed(1)} KiB gzipped`);
}
