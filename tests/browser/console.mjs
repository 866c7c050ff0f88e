// The web console in Debian's Chromium, against a real skyport with real brokers.
// Started by tests/tests/console_browser.rs, which creates the project and the users and
// passes them in the environment:
//   SKYPORT_URL, PROJECT_ID, OWNER_EMAIL, VIEWER_EMAIL, PASSWORD,
//   TLS_CERT_FILE + TLS_OTHER_KEY_FILE (a certificate and a key that does not match it),
//   WORK_DIR (scratch), SCREENSHOT_DIR (optional: writes the docs' screenshots there).
// Exits non-zero on the first failed expectation.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
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
const launchOptions = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
};
const browser = await chromium.launch(launchOptions);

const pageErrors = [];
// Chromium logs every 4xx/5xx answer as "Failed to load resource"; the flows below make
// the API refuse things on purpose, so only other console errors count.
const NETWORK_STATUS = /^Failed to load resource: the server responded with a status of \d+/;
async function newPage(width = 1280, height = 800, on = browser) {
  const context = await on.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(err.message));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !NETWORK_STATUS.test(msg.text())) pageErrors.push(`console: ${msg.text()}`);
  });
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

// The Rust test answers "@harness …" lines on stdout with "ok" on stdin, once done.
const harnessInput = createInterface({ input: process.stdin });
const harnessReplies = harnessInput[Symbol.asyncIterator]();
async function harness(request) {
  console.log(`@harness ${request}`);
  const reply = await harnessReplies.next();
  assert.equal(reply.value, "ok", `harness request ${request}`);
}

/** Polls `check` (returning a value or null) until it gives a value. */
async function eventually(what, check, timeoutMs = LONG) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== null && value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
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
const wss = await endpoint("wss");
assert.match(await page.locator("pre").first().textContent(), new RegExp(`-p ${mqtts.port}`),
  "snippets carry the real port");

// ---------------------------------------------------------------------------------------
// 3. A built-in MQTT user, through the deployment API.

await page.getByRole("link", { name: "Security" }).click();
await page.getByText(/No built-in users yet/).waitFor({ timeout: LONG });
const addUser = page.locator('form[aria-label="Add a built-in user"]');
await addUser.getByLabel("Username").fill("device1");
await addUser.getByLabel("Password").fill("device-pass-1");
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
//    the console's online test publishes over wss. The online test runs in a Chromium
//    that trusts the downloaded CA as a user who imported it would: its own HOME, whose
//    NSS database (certutil) holds ca.pem. No certificate check is switched off.

const payload = `hello-from-the-console-${Date.now()}`;
const sub = mosquittoSub(["-h", mqtts.hostname, "-p", mqtts.port, "--cafile", caFile,
  "-u", "device1", "-P", "device-pass-1", "-i", "outside-sub", "-t", "test/#", "-C", "1", "-W", "60", "-d", "-V", "mqttv311"]);
await sub.subscribed;

const home = join(WORK, "home");
const nssdb = `sql:${join(home, ".pki", "nssdb")}`;
mkdirSync(join(home, ".pki", "nssdb"), { recursive: true });
execFileSync("certutil", ["-d", nssdb, "-N", "--empty-password"]);
execFileSync("certutil", ["-d", nssdb, "-A", "-t", "C,,", "-n", "skyport-ca", "-i", caFile]);
const trusting = await chromium.launch({ ...launchOptions, env: { ...process.env, HOME: home } });
const { page: tpage } = await newPage(1280, 800, trusting);
await signIn(tpage, env("OWNER_EMAIL"));
await tpage.goto(`${BASE}/#/d/${depId}/test`);
await tpage.getByLabel("Endpoint").selectOption(wss);
await tpage.getByLabel("Username").fill("device1");
await tpage.getByLabel("Password").fill("device-pass-1");
await tpage.getByRole("button", { name: "Connect", exact: true }).click();
await tpage.locator("#mqtt-status", { hasText: "Connected as" }).waitFor();
await tpage.getByRole("button", { name: "Subscribe" }).click();
await tpage.locator("#mqtt-log", { hasText: "subscribed to test/#" }).waitFor();
await tpage.getByLabel("Topic", { exact: true }).fill("test/console");
await tpage.getByLabel("Payload").fill(payload);
await tpage.getByRole("button", { name: "Publish" }).click();
await tpage.locator("#mqtt-log", { hasText: "published to test/console" }).waitFor();
const got = await sub.done;
assert.equal(got.code, 0, `${got.out}\nconsole log: ${await tpage.locator("#mqtt-log").textContent()}`);
assert.ok(got.out.includes(payload), `mosquitto_sub did not receive the payload: ${got.out}`);
// The console's own subscription sees it too.
await tpage.locator("#mqtt-log .payload", { hasText: payload }).waitFor();
await shots(tpage, "online-test");

// ---------------------------------------------------------------------------------------
// 4b. Monitoring: real MQTT traffic from mosquitto_pub, counted by the broker, reported to
//     the control plane; the page shows the number the metrics API reports.

const mqtt = new URL(await (async () => {
  const dep = await apiFromPage(page, "GET", `/deployments/${depId}`);
  return dep.body.endpoints.mqtt;
})());
const metrics = async (from, to, step) => {
  const q = new URLSearchParams({ from, to, step });
  const r = await apiFromPage(page, "GET", `/deployments/${depId}/metrics?${q}`);
  assert.equal(r.status, 200, JSON.stringify(r));
  return r.body.points;
};
const total = (points, field) => points.reduce((a, p) => a + p[field], 0);
const lastHour = () => [new Date(Date.now() - 3600_000).toISOString(), new Date().toISOString(), "1m"];
const before = total(await metrics(...lastHour()), "messages_in");
const PUBLISHED = 7;
const pub = spawn("mosquitto_pub", ["-h", mqtt.hostname, "-p", mqtt.port, "-u", "device1", "-P", "device-pass-1",
  "-i", "metering-pub", "-t", "metering/console", "-m", "counted", "-q", "1", "--repeat", String(PUBLISHED), "-V", "mqttv311"],
{ stdio: ["ignore", "pipe", "pipe"] });
let pubOut = "";
pub.stdout.on("data", (d) => { pubOut += d; });
pub.stderr.on("data", (d) => { pubOut += d; });
assert.equal(await new Promise((r) => pub.on("exit", r)), 0, `mosquitto_pub failed: ${pubOut}`);
// Wait until the API has every published message, and nothing more arrives.
let seen = -1;
await eventually("the metrics API to report the published messages", async () => {
  const now = total(await metrics(...lastHour()), "messages_in");
  const stable = now === seen && now >= before + PUBLISHED;
  seen = now;
  return stable ? now : null;
});
await page.getByRole("link", { name: "Monitoring" }).click();
const shown = await page.locator("dl.totals").evaluate((dl) => ({
  from: dl.dataset.from, to: dl.dataset.to, step: dl.dataset.step,
  messages: dl.querySelector("[data-total=messages]").dataset.value,
  messagesIn: dl.querySelector("[data-total=messages_in]").dataset.value,
  text: dl.querySelector("[data-total=messages]").textContent,
}));
const reported = await metrics(shown.from, shown.to, shown.step);
assert.equal(Number(shown.messages), total(reported, "messages"), JSON.stringify(shown));
assert.equal(Number(shown.messagesIn), total(reported, "messages_in"), JSON.stringify(shown));
assert.ok(Number(shown.messagesIn) >= before + PUBLISHED, JSON.stringify({ shown, before }));
assert.equal(shown.text, shown.messages, "small counts are shown exactly");
assert.equal(await page.locator("svg.chart").count(), 3, "sessions, TPS and traffic charts");
// Keyboard: each chart is one tab stop after the range buttons; the arrow keys (Home,
// End) move between its points, and a polite live region reads the point's values.
await page.getByRole("button", { name: "Refresh" }).focus();
await page.keyboard.press("Tab");
assert.equal(await page.evaluate(() => document.activeElement.closest("figure")?.dataset.chart), "sessions",
  "Tab reaches the sessions chart");
const readout = page.locator("[data-readout=sessions]");
assert.equal(await readout.getAttribute("aria-live"), "polite");
const pointAt = async () => ({ ts: await readout.getAttribute("data-ts"), index: Number(await readout.getAttribute("data-index")),
  text: await readout.textContent() });
const shownPoints = await metrics(shown.from, shown.to, shown.step);
await page.keyboard.press("Home");
let point = await pointAt();
assert.equal(point.index, 0, JSON.stringify(point));
assert.equal(Date.parse(point.ts), Date.parse(shownPoints[0].ts), JSON.stringify(point));
assert.match(point.text, new RegExp(`sessions \\(max\\) ${shownPoints[0].sessions_max}\\b`), point.text);
await page.keyboard.press("ArrowRight");
assert.equal((await pointAt()).index, 1);
await page.keyboard.press("End");
point = await pointAt();
assert.equal(point.index, shownPoints.length - 1, JSON.stringify(point));
// The online test's client is still connected: the latest point counts it.
assert.ok(Number(point.text.match(/sessions \(max\) (\d+)/)[1]) >= 1, point.text);
await page.keyboard.press("ArrowLeft");
point = await pointAt();
assert.equal(point.index, shownPoints.length - 2, JSON.stringify(point));
assert.equal(Date.parse(point.ts), Date.parse(shownPoints[shownPoints.length - 2].ts), JSON.stringify(point));
assert.equal(await page.locator("figure[data-chart=sessions] .cursor").getAttribute("visibility"), "visible",
  "the point is marked on the chart");
await shots(page, "monitoring");
// The 24 h range asks the API for 15-minute buckets and shows the same total.
await page.getByRole("button", { name: "24 hours" }).click();
await page.locator("dl.totals[data-step='15m']").waitFor();
const day = await page.locator("dl.totals").evaluate((dl) => ({
  from: dl.dataset.from, to: dl.dataset.to, messages: dl.querySelector("[data-total=messages]").dataset.value,
}));
assert.equal(Number(day.messages), total(await metrics(day.from, day.to, "15m"), "messages"));
await page.getByRole("button", { name: "1 hour" }).click();

// The project's monthly usage counts them too.
await page.getByRole("link", { name: "Usage" }).click();
const usageRow = page.locator("table[data-month] tr", { hasText: "console-demo" });
await usageRow.waitFor();
await shots(page, "usage");
await page.getByRole("link", { name: "console-demo" }).click();

// ---------------------------------------------------------------------------------------
// 4c. Clients and subscriptions from the deployment API: the console's own MQTT client
//     (still connected from the online test) is listed, with its subscription, and kicked.

await page.getByRole("link", { name: "Clients" }).click();
const consoleClient = page.locator("tr[data-client^=console-]");
await consoleClient.waitFor();
await page.locator("[data-list=subscriptions] td", { hasText: "test/#" }).first().waitFor();
await page.getByLabel("Search").fill("no-such-client");
await page.getByText("No client matches.").waitFor();
await page.getByLabel("Search").fill("console-");
await consoleClient.waitFor();
await shots(page, "clients");
await consoleClient.getByRole("button", { name: "Kick" }).click();
await consoleClient.waitFor({ state: "detached" });

// ---------------------------------------------------------------------------------------
// 4d. Networking: a custom domain goes from pending_dns to active on screen once the DNS
//     record the page asks for exists (the test's DNS server on loopback); NAT gateway and
//     internal endpoint.

await page.getByRole("link", { name: "Networking" }).click();
await page.getByText("No custom domains").waitFor();
await page.getByLabel("Domain", { exact: true }).fill("mqtt.console.test");
await page.getByRole("button", { name: "Add domain" }).click();
const domainRow = page.locator('tr[data-domain="mqtt.console.test"]');
await domainRow.locator("[data-status=pending_dns]").waitFor();
const record = (await domainRow.locator("[data-record]").textContent()).split(" ");
assert.equal(record[0], "mqtt.console.test");
assert.equal(record[1], "A", "the default host is an address, so the record is an A record");
// Verifying before the record exists leaves it pending, with what DNS answered.
await domainRow.getByRole("button", { name: "Verify" }).click();
await domainRow.locator("td", { hasText: /lookup failed|no record/ }).waitFor();
assert.equal(await domainRow.locator("[data-status=pending_dns]").count(), 1);
await shots(page, "networking");
await harness(`dns-a ${record[0]} ${record[2]}`);
await domainRow.getByRole("button", { name: "Verify" }).click();
await domainRow.locator("[data-status=active]").waitFor();
await domainRow.locator("[data-apply=applied]").waitFor({ timeout: LONG });
const domainApi = await apiFromPage(page, "GET", `/deployments/${depId}/domains/mqtt.console.test`);
assert.equal(domainApi.body.status, "active", JSON.stringify(domainApi));

await page.getByRole("button", { name: "Create NAT gateway" }).click();
await page.locator("[data-nat] code", { hasText: "127.0.0.2" }).waitFor();
// A range with host bits set: the API's words next to the field, nothing created.
await page.getByLabel(/Allowed source ranges/).fill("10.0.0.1/8");
await page.getByRole("button", { name: "Save internal endpoint" }).click();
await page.locator('form[aria-label="Internal endpoint ranges"] .field-error, form[aria-label="Internal endpoint ranges"] .error').waitFor();
assert.equal((await apiFromPage(page, "GET", `/deployments/${depId}/internal-endpoint`)).status, 404);
await page.getByLabel(/Allowed source ranges/).fill("10.0.0.0/8");
await page.getByRole("button", { name: "Save internal endpoint" }).click();
// Both show as active once the broker has applied them (the page polls).
await page.locator("[data-nat=active]").waitFor({ timeout: LONG });
await page.locator("[data-internal=active]").waitFor({ timeout: LONG });
await page.evaluate(() => window.scrollTo(0, 0));
await shots(page, "networking-active");

// ---------------------------------------------------------------------------------------
// 4e. Security: ACL rules and bans through the deployment API, chains with an external
//     HTTP source, app keys (secret once), session settings.

await page.getByRole("link", { name: "Security" }).click();
const aclForm = page.locator('form[aria-label="Add an ACL rule"]');
await aclForm.getByLabel("Topic filter").fill("secret/#");
await aclForm.getByLabel("Action").selectOption("pub");
await aclForm.getByLabel("Access").selectOption("deny");
await aclForm.getByRole("button", { name: "Add rule" }).click();
await page.locator("[data-list=acl] tr", { hasText: "secret/#" }).waitFor();
const banForm = page.locator('form[aria-label="Ban a client"]');
await banForm.getByLabel("Who").fill("bad-device");
await banForm.getByLabel("Reason").fill("testing bans");
await banForm.getByRole("button", { name: "Ban" }).click();
await page.locator("[data-list=bans] tr", { hasText: "bad-device" }).waitFor();
await shots(page, "deployment-security");
await page.locator("[data-list=bans] tr", { hasText: "bad-device" }).getByRole("button", { name: "Lift" }).click();
await page.getByText("Nobody is banned.").waitFor();

await page.getByRole("link", { name: "Auth chains" }).click();
const authn = page.locator('form[aria-label="Save the authentication chain"]');
await authn.locator("[data-source=built_in]").waitFor();
await authn.getByRole("button", { name: "Add external HTTP" }).click();
await authn.getByLabel("URL").fill("ftp://127.0.0.1/auth");
await authn.getByRole("button", { name: "Save authentication" }).click();
const urlError = authn.locator('[data-field="sources[1].url"] + .field-error');
await urlError.waitFor();
const authnApi = await apiFromPage(page, "GET", `/deployments/${depId}/authentication`);
assert.equal(authnApi.body.sources.length, 1, "the refused chain changed nothing");
await authn.getByLabel("URL").fill("http://127.0.0.1:9/auth?u=%u");
await authn.getByRole("button", { name: "Save authentication" }).click();
await authn.locator("[data-apply]").waitFor();
const saved = await apiFromPage(page, "GET", `/deployments/${depId}/authentication`);
assert.equal(saved.body.sources[1].url, "http://127.0.0.1:9/auth?u=%u", JSON.stringify(saved.body));
await shots(page, "auth-chains");

await page.getByRole("link", { name: "App keys" }).click();
await page.locator("tr[data-app-key='web console']").waitFor();
await page.getByLabel("Name").fill("backend");
await page.getByRole("button", { name: "Create app key" }).click();
const appSecret = await page.locator("#new-app-secret").textContent();
const appId = await page.locator("#new-app-id").textContent();
await page.locator("tr[data-app-key=backend]").waitFor();
await shots(page, "app-keys");
const viaKey = await eventually("the new app key to work on the broker", async () => {
  const r = await fetch(`${(await apiFromPage(page, "GET", `/deployments/${depId}`)).body.endpoints.api}/api/v4/clients`,
    { headers: { authorization: "Basic " + Buffer.from(`${appId}:${appSecret}`).toString("base64") } });
  return r.status === 200 ? r.status : null;
});
assert.equal(viaKey, 200);
await page.locator("tr[data-app-key=backend]").getByRole("button", { name: "Delete" }).click();
await page.locator("tr[data-app-key=backend]").waitFor({ state: "detached" });
assert.equal(await page.getByText(appSecret).count(), 1, "the secret stays only in the banner that showed it");
await page.reload();
await page.locator("tr[data-app-key='web console']").waitFor();
assert.equal(await page.getByText(appSecret).count(), 0, "the secret is not shown again");

await page.getByRole("link", { name: "Session settings" }).click();
await page.getByLabel("MQTT 3.1.1 session expiry (seconds)").fill("3600");
// The form already shows the stored settings' apply badge: wait for the PUT's answer.
await Promise.all([
  page.waitForResponse((r) => r.url().includes(`/deployments/${depId}/sessions`) && r.request().method() === "PUT"),
  page.getByRole("button", { name: "Save session settings" }).click(),
]);
await page.locator('form[aria-label="Session settings"] [data-apply]').waitFor();
const sessions = await apiFromPage(page, "GET", `/deployments/${depId}/sessions`);
assert.equal(sessions.body.session_expiry_secs, 3600);
await shots(page, "session-settings");
await page.getByRole("link", { name: "Overview" }).click();

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

// 7a. The viewer reads what the deployment API holds (clients, subscriptions, users, ACL
//     rules) through a read-only key bound to its sign-in; every change is disabled, and
//     the deployment API refuses the key's writes with 403 forbidden_role.
const watcher = mosquittoSub(["-h", mqtt.hostname, "-p", mqtt.port, "-u", "device1", "-P", "device-pass-1",
  "-i", "seen-by-viewer", "-t", "viewer/#", "-W", "120", "-d", "-V", "mqttv311"]);
await watcher.subscribed;
await vpage.getByRole("link", { name: "Clients" }).click();
const watched = vpage.locator("tr[data-client=seen-by-viewer]");
await watched.waitFor({ timeout: LONG });
assert.equal(await watched.getByRole("button", { name: "Kick" }).isDisabled(), true);
await vpage.locator("[data-list=subscriptions] td", { hasText: "viewer/#" }).first().waitFor();
await vpage.getByRole("link", { name: "Security" }).click();
await vpage.getByRole("cell", { name: "device1" }).waitFor();
await vpage.locator("[data-list=acl] tr", { hasText: "secret/#" }).waitFor();
assert.equal(await vpage.getByRole("button", { name: "Add user" }).isDisabled(), true);
assert.equal(await vpage.getByRole("button", { name: "Add rule" }).isDisabled(), true);
await shots(vpage, "viewer-security");
const viewerKey = await vpage.evaluate((dep) => JSON.parse(sessionStorage.getItem(`appkey:${dep}:read`)), depId);
assert.ok(viewerKey, "the viewer's console holds a read-only key");
const brokerApiUrl = (await apiFromPage(vpage, "GET", `/deployments/${depId}`)).body.endpoints.api;
const sneaky = await fetch(`${brokerApiUrl}/api/v4/auth_username`, {
  method: "POST",
  headers: { authorization: "Basic " + Buffer.from(`${viewerKey.id}:${viewerKey.secret}`).toString("base64") },
  body: JSON.stringify({ username: "sneaky", password: "sneaky-pass" }),
});
assert.equal(sneaky.status, 403);
assert.match((await sneaky.json()).message, /^forbidden_role:/);
const fullKey = await apiFromPage(vpage, "POST", `/deployments/${depId}/app-keys`, { name: "viewer-wants-more" });
assert.equal(fullKey.status, 403, JSON.stringify(fullKey));
assert.equal(fullKey.body.code, "forbidden_role");
const keysNow = (await apiFromPage(vpage, "GET", `/deployments/${depId}/app-keys`)).body.items;
assert.deepEqual(keysNow.filter((k) => k.name === "web console").map((k) => k.read_only).sort(), [false, true],
  "the owner's console key and the viewer's read-only one, nothing else");
watcher.child.kill();

// ---------------------------------------------------------------------------------------
// 7b. The owner changes the tier on the overview; the broker restarts with it.

await page.getByRole("link", { name: "Deployments" }).click();
await page.getByRole("link", { name: "console-demo" }).click();
await page.getByLabel("Max sessions").fill("2000");
await page.getByRole("button", { name: "Change plan or tier" }).click();
await page.locator("td", { hasText: "2000 sessions" }).waitFor();
const changed = await eventually("the tier change to be rolled out", async () => {
  const d = (await apiFromPage(page, "GET", `/deployments/${depId}`)).body;
  return d.status === "running" && d.observed_generation === d.generation ? d : null;
});
assert.equal(changed.tier.max_sessions, 2000, JSON.stringify(changed));
await page.locator("h1 [data-status=running]").waitFor({ timeout: LONG });
// A plan that cannot keep the attached custom domain: the API's words, nothing changed.
await page.getByLabel("New plan").selectOption("serverless");
await page.getByRole("button", { name: "Change plan or tier" }).click();
await page.locator('form[aria-label="Change plan or tier"] [role=alert]').waitFor();
assert.equal((await apiFromPage(page, "GET", `/deployments/${depId}`)).body.plan, "dedicated");
await shots(page, "deployment-overview");

// ---------------------------------------------------------------------------------------
// 8. Sign-out ends the session on the server and deletes the app key the console made
//    for itself.

const consoleKeys = async (p) => (await apiFromPage(p, "GET", `/deployments/${depId}/app-keys`)).body.items
  .filter((k) => k.name === "web console" && !k.read_only).length;
assert.equal(await consoleKeys(vpage), 1, "the owner's console made one app key");
await page.getByRole("button", { name: "Sign out" }).click();
await page.getByText("Signed out.").waitFor();
assert.equal(await consoleKeys(vpage), 0, "signing out deleted it");
const gone = await fetch(`${BASE}/api/v1/session`, { headers: { cookie: `skyport_session=${session.value}` } });
assert.equal(gone.status, 401, "the old cookie no longer works");

assert.deepEqual(pageErrors, [], "no uncaught errors in the pages");
await trusting.close();
await browser.close();
harnessInput.close(); // stdin would keep node running
process.stdin.destroy();
console.log("console browser test: 1 passed, 0 failed");
