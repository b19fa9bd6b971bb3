// Validates an AsyncAPI document with the official parser (@asyncapi/parser): every
// diagnostic of severity error fails; warnings are printed. Exit 0 valid, 1 invalid, 2 usage.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate.mjs <asyncapi.yaml>");
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"), { source: path });
const name = (d) => ["error", "warning", "info", "hint"][d.severity] ?? String(d.severity);
for (const d of diagnostics) {
  if (d.severity <= DiagnosticSeverity.Warning) {
    console.log(`${name(d)} ${d.code}: ${d.message} at ${d.path.join(".")}`);
  }
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
if (!document || errors.length) {
  console.error(`${path}: INVALID (${errors.length} errors)`);
  process.exit(1);
}
const counts = `${document.channels().length} channels, ${document.operations().length} operations, ` +
  `${document.components().messages().length} messages`;
console.log(`${path}: valid AsyncAPI ${document.version()} (${counts})`);
