// Fails when the web console's first load (every asset skyport embeds) exceeds its
// budget gzipped. Run by tests/tests/console_browser.rs; prints the sizes.
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

const BUDGET = 500 * 1024;
const dir = new URL("../../control-plane/console/", import.meta.url).pathname;
let total = 0;
for (const name of readdirSync(dir).sort()) {
  const raw = readFileSync(join(dir, name));
  const gz = gzipSync(raw, { level: 9 }).length;
  total += gz;
  console.log(`${name}: ${raw.length} bytes, ${gz} gzipped`);
}
console.log(`total: ${total} bytes gzipped (budget ${BUDGET})`);
if (total > BUDGET) {
  console.error(`the console is over its budget: ${total} > ${BUDGET} bytes gzipped`);
  process.exit(1);
}
