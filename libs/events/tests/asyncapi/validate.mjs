// Validate an AsyncAPI document with the AsyncAPI Initiative's own parser (@asyncapi/parser).
// Usage: node validate.mjs <document.json>; prints the diagnostics; exit 1 on any error.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(process.argv[2], "utf8"));
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  console.log(`${["error", "warning", "info", "hint"][d.severity]} ${d.code} ${d.path.join("/")}: ${d.message}`);
}
console.log(`${errors.length} errors, ${diagnostics.length - errors.length} other diagnostics, document ${document ? "parsed" : "rejected"}`);
process.exit(errors.length || !document ? 1 : 0);
