// Renders contracts/asyncapi.yaml as HTML documentation with the official generator and its
// HTML template: `npm run html` (installs both on demand; not part of `make test`).
import { fileURLToPath } from "node:url";
import path from "node:path";
import Generator from "@asyncapi/generator";

const here = path.dirname(fileURLToPath(import.meta.url));
const spec = path.join(here, "..", "..", "contracts", "asyncapi.yaml");
const out = path.resolve(process.argv[2] ?? path.join(here, "..", "..", "build", "asyncapi-html"));
const generator = new Generator("@asyncapi/html-template", out, {
  forceWrite: true,
  templateParams: { singleFile: "true" },
});
await generator.generateFromFile(spec);
console.log(`HTML documentation written to ${out}/index.html`);
