// The web console in Debian's Chromium, against a real skyport with real brokers.
// Started by tests/tests/console_browser.rs, which creates the project and the users and
// passes them in the environment:
//   SKYPORT_URL, PROJECT_ID, OWNER_EMAIL, VIEWER_EMAIL, PASSWORD,
//   TLS_CERT_FILE + TLS_OTHER_KEY_FILE (a certificate and a key that does not match it),
//   WORK_DIR (scratch), SCREENSHOT_DIR (optional: writes the docs' screenshots there).
// Exits non-zero on the first failed expectation.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env("SKYPORT_URL");
const PROJECT = env("PROJECT_ID");
const PASSWORD = env("PASSWORD");
const WORK = env("WORK_DIR");
const SHOTS = process.env.SCREENSHOT_DIR;
const LONG = 120_000;

// launch() starts Chromium on a new, empty temporary profile (its --user-data-dir) every
// run; Playwright refuses the flag itself. Each user below gets its own context.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

const pageErrors = [];
async function newPage(width = 1280, height = 800) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(err.message));
  page.on("dialog", (d) => d.accept());
  page.setDefaultTimeout(30_000);
  return { context, page };
}

async function shot(page, name) {
  if (!SHOTS) return;
  const size = page.viewportSize();
  await page.screenshot({ path: join(SHOTS, `${name}-${size.width}.png`), fullPage: false });
}

/** Screenshots of the current page at desktop and phone widths. */
async function shots(page, name) {
  if (!SHOTS) return;
  await shot(page, name);
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, name);
  await page.setViewportSize({ width: 1280, height: 800 });
}

async function signIn(page, email) {
  await page.goto(`${BASE}/`);
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Deployments" }).waitFor();
}

/** Calls the API from the page, as the console itself would (cookie, CSRF, project). */
async function apiFromPage(page, method, path, body, { csrf = true } = {}) {
  return page.evaluate(async ({ method, path, body, csrf, project }) => {
    const s = await (await fetch("/api/v1/session")).json();
    const headers = { "x-skyport-project": project };
    if (csrf) headers["x-csrf-token"] = s.csrf_token;
    if (body) headers["content-type"] = "application/json";
    const r = await fetch(`/api/v1${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, { method, path, body, csrf, project: PROJECT });
}

/** mosquitto_sub with line-buffered output, so its SUBACK is seen as it happens. */
function mosquittoSub(args) {
  const child = spawn("stdbuf", ["-oL", "-eL", "mosquitto_sub", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => { out += d; });
  child.stderr.on("data", (d) => { out += d; });
  const subscribed = new Promise((resolve, reject) => {
    const t = setInterval(() => { if (/SUBACK/.test(out)) { clearInterval(t); resolve(); } }, 100);
    child.on("exit", (code) => {
      if (/SUBACK/.test(out)) return;
      clearInterval(t);
      reject(new Error(`mosquitto_sub exited (${code}) before subscribing: ${out}`));
    });
  });
  const done = new Promise((resolve) => child.on("exit", (code) => resolve({ code, out })));
  return { child, subscribed, done, output: () => out };
}

// ---------------------------------------------------------------------------------------
// 1. The owner signs in, creates a deployment and waits for it to run.

const { context: owner, page } = await newPage();
await page.goto(`${BASE}/`);
await page.getByRole("heading", { name: "Sign in to Skyport" }).waitFor();
await shots(page, "sign-in");

// A wrong password shows the API's words.
await page.getByLabel("E-mail").fill(env("OWNER_EMAIL"));
await page.getByLabel("Password").fill("not the password");
await page.getByRole("button", { name: "Sign in" }).click();
await page.getByText("wrong e-mail address or password").waitFor();

await signIn(page, env("OWNER_EMAIL"));
await page.getByText("No deployments yet").waitFor();
await page.getByLabel("Name").fill("console-demo");
await page.getByLabel("Plan").selectOption("dedicated");
await page.getByRole("button", { name: "Create deployment" }).click();
await page.getByRole("heading", { name: /console-demo/ }).waitFor();
const depId = page.url().split("#/d/")[1].split("/")[0];
await page.locator("h1 [data-status=running]").waitFor({ timeout: LONG });
await shots(page, "deployment-overview");

// The list shows it running too (polled, no reload).
await page.getByRole("link", { name: "Deployments" }).click();
await page.locator('tr[data-deployment="console-demo"] [data-status=running]').waitFor();
await shots(page, "deployments");
await page.getByRole("link", { name: "console-demo" }).click();
await page.locator("h1 [data-status=running]").waitFor();

// ---------------------------------------------------------------------------------------
// 2. CA download and endpoints.

const [download] = await Promise.all([
  page.waitForEvent("download"),
  page.getByRole("button", { name: "Download CA certificate" }).click(),
]);
const caFile = join(WORK, "ca.pem");
await download.saveAs(caFile);
assert.match(readFileSync(caFile, "utf8"), /^-----BEGIN CERTIFICATE-----/);
const endpoint = async (k) => page.locator(`[data-endpoint=${k}]`).textContent();
const mqtts = new URL(await endpoint("mqtts"));
const ws = await endpoint("ws");
assert.match(await page.locator("pre").first().textContent(), new RegExp(`-p ${mqtts.port}`),
  "snippets carry the real port");

// ---------------------------------------------------------------------------------------
// 3. A built-in MQTT user, through the deployment API.

await page.getByRole("link", { name: "Security" }).click();
await page.getByText(/No built-in users yet/).waitFor({ timeout: LONG });
await page.getByLabel("Username").fill("device1");
await page.locator('input[name=password]').fill("device-pass-1");
await page.getByRole("button", { name: "Add user" }).click();
await page.getByRole("cell", { name: "device1" }).waitFor();

// A TLS upload with a key that does not match the certificate: the API's error next to
// the key field, and nothing changes.
const cert = readFileSync(env("TLS_CERT_FILE"), "utf8");
const otherKey = readFileSync(env("TLS_OTHER_KEY_FILE"), "utf8");
const direct = await apiFromPage(page, "PUT", `/deployments/${depId}/tls`,
  { tls_type: "one-way", cert, key: otherKey });
assert.equal(direct.status, 422, JSON.stringify(direct));
assert.equal(direct.body.field, "key", JSON.stringify(direct));
await page.locator("textarea[name=cert]").fill(cert);
await page.locator("textarea[name=key]").fill(otherKey);
await page.getByRole("button", { name: "Upload certificate" }).click();
const keyError = page.locator("textarea[name=key] + .field-error");
await keyError.waitFor();
assert.equal(await keyError.textContent(), direct.body.detail);
assert.equal(await page.locator("textarea[name=cert] + .field-error").count(), 0);
await page.locator("[data-tls-source=skyport]").waitFor();
const tlsAfter = await apiFromPage(page, "GET", `/deployments/${depId}/tls`);
assert.equal(tlsAfter.body.source, "skyport", "the failed upload changed nothing");
await shots(page, "deployment-security");

// ---------------------------------------------------------------------------------------
// 4. mosquitto_sub, outside the browser, over mqtts with the downloaded CA, receives what
//    the console's online test publishes over WebSocket.

const payload = `hello-from-the-console-${Date.now()}`;
const sub = mosquittoSub(["-h", mqtts.hostname, "-p", mqtts.port, "--cafile", caFile,
  "-u", "device1", "-P", "device-pass-1", "-i", "outside-sub", "-t", "test/#", "-C", "1", "-W", "60", "-d", "-V", "mqttv311"]);
await sub.subscribed;

await page.getByRole("link", { name: "Online test" }).click();
await page.getByLabel("Endpoint").selectOption(ws);
await page.getByLabel("Username").fill("device1");
await page.getByLabel("Password").fill("device-pass-1");
await page.getByRole("button", { name: "Connect", exact: true }).click();
await page.locator("#mqtt-status", { hasText: "Connected as" }).waitFor();
await page.getByRole("button", { name: "Subscribe" }).click();
await page.locator("#mqtt-log", { hasText: "subscribed to test/#" }).waitFor();
await page.getByLabel("Topic", { exact: true }).fill("test/console");
await page.getByLabel("Payload").fill(payload);
await page.getByRole("button", { name: "Publish" }).click();
await page.locator("#mqtt-log", { hasText: "published to test/console" }).waitFor();
const got = await sub.done;
assert.equal(got.code, 0, `${got.out}\nconsole log: ${await page.locator("#mqtt-log").textContent()}`);
assert.ok(got.out.includes(payload), `mosquitto_sub did not receive the payload: ${got.out}`);
// The console's own subscription sees it too.
await page.locator("#mqtt-log .payload", { hasText: payload }).waitFor();
await shots(page, "online-test");

// ---------------------------------------------------------------------------------------
// 5. CSRF: a page on another origin posts a form to stop the deployment. The browser
//    attaches the session cookie (same site: 127.0.0.1 on another port), the API refuses
//    for want of the CSRF token, and the deployment keeps running.

const cookies = await owner.cookies(BASE);
const session = cookies.find((c) => c.name === "skyport_session");
assert.ok(session, "the session cookie is set");
assert.equal(session.httpOnly, true);
assert.equal(session.sameSite, "Strict");
assert.equal(await page.evaluate(() => document.cookie.includes("skyport_session")), false,
  "scripts cannot read the session cookie");

const attacker = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  res.end(`<!doctype html><form id=f method=POST enctype="text/plain"
    action="${BASE}/api/v1/deployments/${depId}/stop"><input name='{"a":"' value='"}'></form>
    <script>document.getElementById("f").submit()</script>`);
});
await new Promise((r) => attacker.listen(0, "127.0.0.1", r));
const evil = await owner.newPage();
const [refused] = await Promise.all([
  evil.waitForResponse((r) => r.url().endsWith(`/deployments/${depId}/stop`)),
  evil.goto(`http://127.0.0.1:${attacker.address().port}/`),
]);
assert.equal(refused.status(), 403);
assert.equal((await refused.json()).code, "csrf_failed");
assert.match((await refused.request().allHeaders()).cookie || "", /skyport_session=/,
  "the browser did send the session cookie with the forged form");
attacker.close();
await evil.close();
const still = await apiFromPage(page, "GET", `/deployments/${depId}`);
assert.equal(still.body.desired_state, "running", JSON.stringify(still.body));

// ---------------------------------------------------------------------------------------
// 6. Members and API keys: a key's secret is shown once.

await page.getByRole("link", { name: "Members & keys" }).click();
await page.getByRole("cell", { name: env("VIEWER_EMAIL") }).waitFor();
await page.locator('form[aria-label="Create an API key"] input[name=name]').fill("ci");
await page.getByRole("button", { name: "Create key" }).click();
const secret = await page.locator("#new-secret").textContent();
assert.match(secret, /^skp_/);
await page.getByRole("cell", { name: "ci" }).waitFor();
await shots(page, "project-members-keys");
await page.reload();
await page.getByRole("cell", { name: "ci" }).waitFor();
assert.equal(await page.getByText(secret).count(), 0, "the secret is not shown again");

// ---------------------------------------------------------------------------------------
// 7. A viewer: the stop button is disabled, and the API refuses the stop outright.

const { page: vpage } = await newPage();
await signIn(vpage, env("VIEWER_EMAIL"));
assert.equal(await vpage.getByRole("button", { name: "Create deployment" }).isDisabled(), true);
await vpage.getByRole("link", { name: "console-demo" }).click();
await vpage.locator("h1 [data-status=running]").waitFor();
assert.equal(await vpage.getByRole("button", { name: "Stop" }).isDisabled(), true);
assert.equal(await vpage.getByRole("button", { name: "Delete" }).isDisabled(), true);
const stop = await apiFromPage(vpage, "POST", `/deployments/${depId}/stop`);
assert.equal(stop.status, 403, JSON.stringify(stop));
assert.equal(stop.body.code, "forbidden_role");
await shots(vpage, "viewer-overview");
const after = await apiFromPage(vpage, "GET", `/deployments/${depId}`);
assert.equal(after.body.desired_state, "running");

// ---------------------------------------------------------------------------------------
// 8. Sign-out ends the session on the server.

await page.getByRole("button", { name: "Sign out" }).click();
await page.getByText("Signed out.").waitFor();
const gone = await fetch(`${BASE}/api/v1/session`, { headers: { cookie: `skyport_session=${session.value}` } });
assert.equal(gone.status, 401, "the old cookie no longer works");

assert.deepEqual(pageErrors, [], "no uncaught errors in the pages");
await browser.close();
console.log("console browser test: 1 passed, 0 failed");
