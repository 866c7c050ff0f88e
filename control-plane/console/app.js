// Skyport web console: a single page over the documented APIs only — the control plane's
// /api/v1 (session cookie + CSRF token + X-Skyport-Project) and each deployment's own
// /api/v4 (HTTP Basic with an app key the console creates for itself).

import { MqttClient } from "./mqtt.js";

const main = document.getElementById("main");
const state = { session: null, projects: [], projectId: null, poll: null, mqtt: null };

// ---------- DOM helpers ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

/** A timestamp in the reader's local time, with UTC on hover. */
function time(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return h("time", { datetime: ts, title: d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") },
    d.toLocaleString());
}

function statusBadge(status) {
  return h("span", { class: `status status-${status}`, "data-status": status }, status);
}

function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err.detail || err.message || String(err));
}

function copyButton(text, label = "Copy") {
  return h("button", {
    type: "button", class: "secondary", "aria-label": `${label}: ${text}`,
    onclick: async (ev) => {
      try {
        await navigator.clipboard.writeText(text);
        ev.target.textContent = "Copied";
      } catch {
        ev.target.textContent = "Select and copy";
      }
      setTimeout(() => { ev.target.textContent = label; }, 1500);
    },
  }, label);
}

function role() {
  const p = state.projects.find((p) => p.id === state.projectId);
  return p ? p.role : "viewer";
}
const canWrite = () => role() !== "viewer";
const isOwner = () => role() === "owner";
function roleNote(needed) {
  return `Your role in this project (${role()}) cannot do this; it needs ${needed}.`;
}

// ---------- API clients ----------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code;
    this.detail = problem.detail || problem.message || `HTTP ${status}`;
    this.field = problem.field;
  }
}

async function api(method, path, body, { project = true, raw = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && state.session) headers["x-csrf-token"] = state.session.csrf_token;
  if (project && state.projectId) headers["x-skyport-project"] = state.projectId;
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { detail: `cannot reach the control plane: ${e.message}` });
  }
  if (resp.status === 401 && path !== "/session") {
    state.session = null;
    renderSignIn("Your session has ended; sign in again.");
    throw new ApiError(401, await resp.json().catch(() => ({})));
  }
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
  if (raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

/** App key of the console for a deployment's own API, created on first use. */
async function appKey(dep) {
  const stored = sessionStorage.getItem(`appkey:${dep.id}`);
  if (stored) return { ...JSON.parse(stored), fresh: false };
  if (!canWrite()) throw new ApiError(403, { detail: roleNote("developer") + " (the deployment API needs an app key)" });
  const key = await api("POST", `/deployments/${dep.id}/app-keys`, { name: "web console" });
  const value = { id: key.app_id, secret: key.app_secret };
  sessionStorage.setItem(`appkey:${dep.id}`, JSON.stringify(value));
  return { ...value, fresh: true };
}

/** Calls the deployment's EMQX-v4-shaped API. A just-created key may take a moment to
 *  reach the broker, so a 401 with a fresh key is retried for a while. */
async function broker(dep, method, path, body) {
  const key = await appKey(dep);
  const auth = "Basic " + btoa(`${key.id}:${key.secret}`);
  for (let attempt = 0; ; attempt++) {
    let resp;
    try {
      resp = await fetch(`${dep.endpoints.api}/api/v4${path}`, {
        method,
        headers: { authorization: auth, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch (e) {
      throw new ApiError(0, { detail: `cannot reach the deployment API at ${dep.endpoints.api}: ${e.message}` });
    }
    const json = await resp.json().catch(() => ({}));
    if (resp.status === 401 && attempt < 30) {
      if (!key.fresh && attempt === 0) {
        sessionStorage.removeItem(`appkey:${dep.id}`);
        return broker(dep, method, path, body);
      }
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!resp.ok || (json.code && json.code !== 0)) {
      throw new ApiError(resp.status, { detail: json.message || `HTTP ${resp.status}` });
    }
    return json;
  }
}

// ---------- forms ----------

/** Wires a form: disables it while `action` runs, shows the API's error, next to the
 *  field it names when there is one. */
function form(attrs, children, action) {
  const general = h("div", { class: "form-error", "aria-live": "polite" });
  const el = h("form", {
    ...attrs,
    onsubmit: async (ev) => {
      ev.preventDefault();
      for (const e of el.querySelectorAll(".field-error")) e.remove();
      general.replaceChildren();
      const submit = el.querySelector("button[type=submit]");
      if (submit) submit.disabled = true;
      try {
        await action(new FormData(el), el);
      } catch (err) {
        const field = err.field && el.querySelector(`[name="${err.field.split(".")[0]}"]`);
        const msg = h("p", { class: "field-error", role: "alert", id: `err-${err.field}` }, err.detail || err.message);
        if (field) {
          field.setAttribute("aria-describedby", msg.id);
          field.insertAdjacentElement("afterend", msg);
        } else {
          general.replaceChildren(errorBox(err));
        }
      } finally {
        if (submit && submit.isConnected) submit.disabled = attrs.disabled || false;
      }
    },
  }, ...children, general);
  if (attrs.disabled) for (const c of el.querySelectorAll("input, select, textarea, button")) c.disabled = true;
  return el;
}

function field(label, input) {
  const id = input.id || `f-${input.getAttribute("name")}`;
  input.id = id;
  return [h("label", { for: id }, label), input];
}

// ---------- sign-in and chrome ----------

function renderSignIn(message) {
  stopPolling();
  document.getElementById("nav").hidden = true;
  show(h("div", { class: "card signin" },
    h("h1", {}, "Sign in to Skyport"),
    message ? h("p", { class: "notice" }, message) : null,
    form({ "aria-label": "Sign in" }, [
      ...field("E-mail", h("input", { name: "email", type: "email", autocomplete: "username", required: true })),
      ...field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
      h("div", { class: "row" }, h("button", { type: "submit" }, "Sign in")),
    ], async (data) => {
      state.session = await api("POST", "/session",
        { email: data.get("email"), password: data.get("password") }, { project: false });
      await start();
    })));
  main.querySelector("input")?.focus();
}

async function loadProjects() {
  const page = await api("GET", "/projects?limit=100", undefined, { project: false });
  state.projects = page.items;
  const saved = localStorage.getItem("project");
  state.projectId = state.projects.some((p) => p.id === saved) ? saved : state.projects[0]?.id || null;
  const sel = document.getElementById("project-switcher");
  sel.replaceChildren(...state.projects.map((p) =>
    h("option", { value: p.id, selected: p.id === state.projectId }, `${p.name} (${p.role})`)));
}

async function start() {
  try {
    state.session = await api("GET", "/session", undefined, { project: false });
  } catch (err) {
    if (err.status === 401) return renderSignIn();
    return show(errorBox(err));
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("whoami").textContent = state.session.user.email;
  await loadProjects();
  route();
}

document.getElementById("project-switcher").addEventListener("change", (ev) => {
  state.projectId = ev.target.value;
  localStorage.setItem("project", state.projectId);
  location.hash = "#/";
  route();
});

document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await api("DELETE", "/session", undefined, { project: false });
  } catch { /* the session is gone either way */ }
  state.session = null;
  sessionStorage.clear();
  renderSignIn("Signed out.");
});

function stopPolling() {
  clearInterval(state.poll);
  state.poll = null;
}

function route() {
  stopPolling();
  if (!state.session) return;
  if (!state.projectId) {
    return show(h("h1", {}, "No project yet"),
      h("p", { class: "notice" }, "You are not a member of any project. Ask an owner or the administrator to add you."));
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (parts[0] === "project") return renderProject();
  if (parts[0] === "d" && parts[1]) return renderDeployment(parts[1], parts[2] || "overview");
  return renderDeployments();
}
window.addEventListener("hashchange", route);

// ---------- deployments ----------

const PLANS = {
  serverless: "Serverless: shared capacity, TLS ports only (mqtts, wss); no custom domains, NAT gateway or internal endpoint.",
  dedicated: "Dedicated: its own broker, every port (mqtt, mqtts, ws, wss); custom domains, NAT gateway and internal endpoint available.",
  premium: "Premium: like dedicated, with larger tiers; every networking add-on available.",
};

async function renderDeployments() {
  const list = h("div", { class: "card", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading deployments…"));
  const planHelp = h("p", { class: "muted", id: "plan-help" }, PLANS.dedicated);
  const disabled = !canWrite();
  const create = form({ "aria-label": "Create a deployment", disabled }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Name", h("input", { name: "name", required: true, maxlength: 64, placeholder: "e.g. factory-sensors" }))),
      h("div", {}, ...field("Plan", h("select", {
        name: "plan", "aria-describedby": "plan-help",
        onchange: (ev) => { planHelp.textContent = PLANS[ev.target.value]; },
      }, ...Object.keys(PLANS).map((p) => h("option", { value: p, selected: p === "dedicated" }, p))))),
      h("div", {}, ...field("Max sessions (optional)", h("input", { name: "max_sessions", type: "number", min: 1, placeholder: "plan's smallest tier" }))),
      h("div", {}, ...field("Max TPS (optional)", h("input", { name: "max_tps", type: "number", min: 1, placeholder: "plan's smallest tier" })))),
    planHelp,
    h("p", { class: "muted" }, "A tier sets the session quota and the messages per second (TPS) the broker accepts; leave both empty for the plan's smallest tier, or fill in both."),
    disabled ? h("p", { class: "notice" }, roleNote("developer")) : null,
    h("div", { class: "row" }, h("button", { type: "submit" }, "Create deployment")),
  ], async (data) => {
    const body = { name: data.get("name"), plan: data.get("plan") };
    if (data.get("max_sessions") || data.get("max_tps")) {
      body.tier = { max_sessions: Number(data.get("max_sessions")), max_tps: Number(data.get("max_tps")) };
    }
    const dep = await api("POST", "/deployments", body);
    location.hash = `#/d/${dep.id}`;
  });
  show(h("h1", {}, "Deployments"), list, h("h2", {}, "New deployment"), h("div", { class: "card" }, create));

  const refresh = async () => {
    try {
      const page = await api("GET", "/deployments?limit=100");
      if (!page.items.length) {
        list.replaceChildren(h("p", { class: "muted" }, "No deployments yet. Create one below."));
        return;
      }
      list.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Plan"), h("th", {}, "Status"),
          h("th", { class: "hide-narrow" }, "Created"))),
        h("tbody", {}, ...page.items.map((d) => h("tr", { "data-deployment": d.name },
          h("td", {}, h("a", { href: `#/d/${d.id}` }, d.name)),
          h("td", {}, d.plan),
          h("td", {}, statusBadge(d.status), d.status_reason ? h("div", { class: "muted" }, d.status_reason) : null),
          h("td", { class: "hide-narrow" }, time(d.created_at)))))));
    } catch (err) {
      if (err.status !== 401) list.replaceChildren(errorBox(err));
    }
  };
  await refresh();
  state.poll = setInterval(refresh, 2000);
}

function tabs(dep, current) {
  const t = [["overview", "Overview"], ["security", "Security"], ["test", "Online test"], ["events", "Events"]];
  return h("nav", { class: "tabs", "aria-label": "Deployment" }, ...t.map(([id, label]) =>
    h("a", { href: `#/d/${dep.id}/${id}`, "aria-current": id === current ? "page" : false }, label)));
}

async function renderDeployment(id, tab) {
  show(h("p", { class: "muted" }, "Loading deployment…"));
  let dep;
  try {
    dep = await api("GET", `/deployments/${id}`);
  } catch (err) {
    return show(h("h1", {}, "Deployment"), errorBox(err), h("a", { href: "#/" }, "Back to deployments"));
  }
  const header = h("div", {}, h("h1", {}, dep.name, " ", statusBadge(dep.status)), tabs(dep, tab));
  const body = h("div", {});
  show(header, body);
  const pages = { overview: overview, security: security, test: onlineTest, events: events };
  await (pages[tab] || overview)(dep, body, header);
}

function endpointRows(dep) {
  const e = dep.endpoints || {};
  return ["mqtt", "mqtts", "ws", "wss"].filter((k) => e[k]).map((k) =>
    h("tr", {}, h("th", {}, k), h("td", {}, h("code", { "data-endpoint": k }, e[k])), h("td", {}, copyButton(e[k]))));
}

function hostPort(url) {
  const u = new URL(url);
  return { host: u.hostname, port: u.port };
}

function snippets(dep) {
  const e = dep.endpoints || {};
  const out = [];
  const tls = e.mqtts ? hostPort(e.mqtts) : null;
  const plain = e.mqtt ? hostPort(e.mqtt) : null;
  const t = tls || plain;
  if (!t) return out;
  const tlsArgs = tls ? " --cafile ca.pem" : "";
  out.push(["mosquitto", `mosquitto_sub -h ${t.host} -p ${t.port}${tlsArgs} -u USER -P PASSWORD -t 'hello/#' -V mqttv5 &\nmosquitto_pub -h ${t.host} -p ${t.port}${tlsArgs} -u USER -P PASSWORD -t hello/world -m hi -q 1`]);
  out.push(["paho (Python)", `import paho.mqtt.client as mqtt\n\nc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)\nc.username_pw_set("USER", "PASSWORD")\n${tls ? 'c.tls_set(ca_certs="ca.pem")\n' : ""}c.on_message = lambda c, u, m: print(m.topic, m.payload)\nc.connect("${t.host}", ${t.port})\nc.subscribe("hello/#")\nc.publish("hello/world", "hi", qos=1)\nc.loop_forever()`]);
  out.push(["MQTTX CLI", `mqttx sub -h ${t.host} -p ${t.port}${tls ? " -l mqtts --ca ca.pem" : ""} -u USER -P PASSWORD -t 'hello/#'\nmqttx pub -h ${t.host} -p ${t.port}${tls ? " -l mqtts --ca ca.pem" : ""} -u USER -P PASSWORD -t hello/world -m hi`]);
  return out;
}

async function overview(dep, body) {
  const actions = h("div", { class: "row" });
  const actionError = h("div", { "aria-live": "polite" });
  const disabled = !canWrite();
  const act = (label, cls, confirmText, run) => h("button", {
    type: "button", class: cls, disabled, title: disabled ? roleNote("developer") : null,
    onclick: async () => {
      if (!confirm(confirmText)) return;
      actionError.replaceChildren();
      try {
        await run();
        route();
      } catch (err) {
        actionError.replaceChildren(errorBox(err));
      }
    },
  }, label);
  if (dep.status === "stopped") {
    actions.append(act("Start", "", `Start ${dep.name}?`, () => api("POST", `/deployments/${dep.id}/start`)));
  } else {
    actions.append(act("Stop", "secondary", `Stop ${dep.name}? Connected clients are disconnected.`,
      () => api("POST", `/deployments/${dep.id}/stop`)));
  }
  actions.append(act("Delete", "danger", `Delete ${dep.name}? This cannot be undone.`, async () => {
    await api("DELETE", `/deployments/${dep.id}`);
    location.hash = "#/";
  }));

  const caStatus = h("span", { class: "muted", "aria-live": "polite" });
  const ca = h("button", {
    type: "button", class: "secondary", onclick: async () => {
      try {
        const resp = await api("GET", `/deployments/${dep.id}/ca.pem`, undefined, { raw: true });
        const url = URL.createObjectURL(await resp.blob());
        const a = h("a", { href: url, download: `${dep.name}-ca.pem` });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
        caStatus.textContent = "Downloaded.";
      } catch (err) {
        caStatus.replaceChildren(errorBox(err));
      }
    },
  }, "Download CA certificate");

  body.append(
    h("div", { class: "card" },
      h("table", {}, h("tbody", {},
        h("tr", {}, h("th", {}, "Status"), h("td", { colspan: 2 }, statusBadge(dep.status),
          dep.status_reason ? h("span", { class: "muted" }, " — ", dep.status_reason) : null)),
        h("tr", {}, h("th", {}, "Plan"), h("td", { colspan: 2 }, dep.plan, ` · ${dep.tier.max_sessions} sessions · ${dep.tier.max_tps} TPS`)),
        h("tr", {}, h("th", {}, "Created"), h("td", { colspan: 2 }, time(dep.created_at))),
        ...endpointRows(dep))),
      dep.endpoints ? null : h("p", { class: "muted" }, "Endpoints appear once the broker is running."),
      h("div", { class: "row" }, ca, caStatus),
      actions, actionError,
      disabled ? h("p", { class: "muted" }, roleNote("developer")) : null),
    h("h2", {}, "Connect"),
    h("div", { class: "card" },
      h("p", { class: "muted" }, "Replace USER and PASSWORD with a built-in user (Security tab). TLS clients verify the broker with the CA certificate above."),
      ...snippets(dep).flatMap(([name, code]) => [h("h3", {}, name), h("pre", {}, code), copyButton(code)])));

  if (!["running", "stopped", "failed"].includes(dep.status)) {
    state.poll = setInterval(async () => {
      try {
        const now = await api("GET", `/deployments/${dep.id}`);
        if (now.status !== dep.status) route();
      } catch { /* shown on the next full render */ }
    }, 2000);
  }
}

async function security(dep, body) {
  const users = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading users…"));
  const disabled = !canWrite();
  const refresh = async () => {
    try {
      const list = await broker(dep, "GET", "/auth_username");
      users.replaceChildren(list.data.length
        ? h("table", {}, h("tbody", {}, ...list.data.map((u) => h("tr", {},
          h("td", {}, u.username),
          h("td", {}, h("button", {
            type: "button", class: "danger", disabled,
            onclick: async () => {
              if (!confirm(`Delete user ${u.username}?`)) return;
              try {
                await broker(dep, "DELETE", `/auth_username/${encodeURIComponent(u.username)}`);
                await refresh();
              } catch (err) { users.append(errorBox(err)); }
            },
          }, "Delete"))))))
        : h("p", { class: "muted" }, "No built-in users yet: clients cannot connect until you add one (anonymous access is off)."));
    } catch (err) {
      users.replaceChildren(errorBox(err));
    }
  };
  const addUser = form({ "aria-label": "Add a built-in user", disabled }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Username", h("input", { name: "username", required: true, autocomplete: "off" }))),
      h("div", {}, ...field("Password", h("input", { name: "password", type: "password", required: true, autocomplete: "new-password" })))),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Add user")),
  ], async (data, el) => {
    await broker(dep, "POST", "/auth_username", { username: data.get("username"), password: data.get("password") });
    el.reset();
    await refresh();
  });

  const tlsNow = h("div", { "aria-live": "polite" });
  const loadTls = async () => {
    try {
      const t = await api("GET", `/deployments/${dep.id}/tls`);
      tlsNow.replaceChildren(h("p", { "data-tls-source": t.source },
        `In use: ${t.tls_type} TLS, ${t.source === "custom" ? "custom certificate" : "issued by Skyport's CA"} (${t.status})`,
        t.expires_at ? [", expires ", time(t.expires_at)] : null,
        t.subject ? `, subject ${t.subject}` : null));
    } catch (err) { tlsNow.replaceChildren(errorBox(err)); }
  };
  const tlsForm = form({ "aria-label": "Upload a TLS certificate", disabled }, [
    ...field("TLS type", h("select", { name: "tls_type" },
      h("option", { value: "one-way" }, "one-way (server certificate)"),
      h("option", { value: "two-way" }, "two-way (clients present certificates)"))),
    ...field("Certificate chain (PEM, leaf first)", h("textarea", { name: "cert", required: true })),
    ...field("Private key (PEM, unencrypted; stored encrypted, never shown again)", h("textarea", { name: "key", required: true })),
    ...field("Client CA (PEM, two-way only)", h("textarea", { name: "ca_cert" })),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Upload certificate")),
  ], async (data, el) => {
    const body = { tls_type: data.get("tls_type"), cert: data.get("cert"), key: data.get("key") };
    if (data.get("ca_cert")) body.ca_cert = data.get("ca_cert");
    await api("PUT", `/deployments/${dep.id}/tls`, body);
    el.reset();
    await loadTls();
  });

  body.append(
    h("h2", {}, "Built-in users"),
    h("div", { class: "card" }, users, h("h3", {}, "Add a user"), addUser,
      disabled ? h("p", { class: "notice" }, roleNote("developer")) : null),
    h("h2", {}, "TLS certificate"),
    h("div", { class: "card" }, tlsNow, tlsForm));
  await Promise.all([refresh(), loadTls()]);
}

async function onlineTest(dep, body) {
  const e = dep.endpoints || {};
  const urls = ["wss", "ws"].filter((k) => e[k]);
  if (!urls.length) {
    body.append(h("p", { class: "notice" }, "The deployment has no WebSocket endpoint yet: wait until it is running."));
    return;
  }
  const log = h("ul", { class: "log", "aria-live": "polite", id: "mqtt-log" });
  const status = h("p", { class: "muted", id: "mqtt-status", "aria-live": "polite" }, "Not connected.");
  const note = (text, cls) => log.prepend(h("li", { class: cls }, `${new Date().toLocaleTimeString()} `, text));
  const connectForm = form({ "aria-label": "Connect" }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Endpoint", h("select", { name: "url" }, ...urls.map((k) => h("option", { value: e[k] }, `${k} — ${e[k]}`))))),
      h("div", {}, ...field("Client id", h("input", { name: "client_id", value: `console-${Math.random().toString(16).slice(2, 8)}` }))),
      h("div", {}, ...field("Username", h("input", { name: "username", autocomplete: "off" }))),
      h("div", {}, ...field("Password", h("input", { name: "password", type: "password", autocomplete: "off" })))),
    h("p", { class: "muted" }, "wss needs your browser to trust the deployment's certificate (Skyport's CA, or your own); ws works without."),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Connect"),
      h("button", { type: "button", class: "secondary", onclick: () => state.mqtt?.disconnect() }, "Disconnect")),
  ], async (data) => {
    state.mqtt?.disconnect();
    const client = new MqttClient({
      onMessage: (topic, text) => note(h("span", {}, "received ", h("code", {}, topic), ": ", h("code", { class: "payload" }, text))),
      onClose: (reason) => { status.textContent = `Disconnected: ${reason}`; },
    });
    status.textContent = "Connecting…";
    try {
      await client.connect(data.get("url"), {
        clientId: data.get("client_id"), username: data.get("username"), password: data.get("password"),
      });
    } catch (err) {
      status.textContent = "Not connected.";
      throw err;
    }
    state.mqtt = client;
    status.textContent = `Connected as ${data.get("client_id")}.`;
    note("connected");
  });
  const subForm = form({ "aria-label": "Subscribe" }, [
    ...field("Topic filter", h("input", { name: "filter", value: "test/#" })),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Subscribe")),
  ], async (data) => {
    if (!state.mqtt?.connected) throw new Error("connect first");
    await state.mqtt.subscribe(data.get("filter"), 0);
    note(`subscribed to ${data.get("filter")}`);
  });
  const pubForm = form({ "aria-label": "Publish" }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Topic", h("input", { name: "topic", value: "test/hello" }))),
      h("div", {}, ...field("QoS", h("select", { name: "qos" }, h("option", { value: "0" }, "0"), h("option", { value: "1" }, "1"))))),
    ...field("Payload", h("textarea", { name: "payload" }, "hello from the Skyport console")),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Publish")),
  ], async (data) => {
    if (!state.mqtt?.connected) throw new Error("connect first");
    await state.mqtt.publish(data.get("topic"), data.get("payload"), Number(data.get("qos")));
    note(`published to ${data.get("topic")}`);
  });
  body.append(h("div", { class: "card" }, connectForm, status),
    h("div", { class: "grid" }, h("div", { class: "card" }, subForm), h("div", { class: "card" }, pubForm)),
    h("h2", {}, "Messages"), h("div", { class: "card" }, log));
}

async function events(dep, body) {
  const list = h("div", { class: "card", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading events…"));
  const type = h("select", { "aria-label": "Event type", onchange: () => load(null, true) },
    h("option", { value: "" }, "all types"),
    ...["deployment.created", "deployment.provisioning", "deployment.running", "deployment.stopped",
      "deployment.started", "deployment.tier_changed", "deployment.failed", "broker.restarted",
      "tls.updated", "tls.removed", "domain.added", "domain.verified", "domain.removed"]
      .map((t) => h("option", { value: t }, t)));
  const rows = h("tbody", {});
  const more = h("div", { class: "row" });
  const load = async (cursor, reset) => {
    try {
      const q = new URLSearchParams({ limit: "50" });
      if (type.value) q.set("type", type.value);
      if (cursor) q.set("cursor", cursor);
      const page = await api("GET", `/deployments/${dep.id}/events?${q}`);
      if (reset) rows.replaceChildren();
      rows.append(...page.items.map((ev) => h("tr", {}, h("td", {}, time(ev.created_at)), h("td", {}, h("code", {}, ev.type)),
        h("td", { class: "hide-narrow" }, ev.actor))));
      list.replaceChildren(rows.children.length
        ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Event"), h("th", { class: "hide-narrow" }, "By"))), rows)
        : h("p", { class: "muted" }, "No events of this type in the last 7 days."));
      more.replaceChildren(page.next_cursor
        ? h("button", { type: "button", class: "secondary", onclick: () => load(page.next_cursor, false) }, "Older events")
        : "");
    } catch (err) { list.replaceChildren(errorBox(err)); }
  };
  body.append(h("div", { class: "row" }, h("label", {}, "Type ", type)), list, more);
  await load(null, true);
}

// ---------- project: members and API keys ----------

async function renderProject() {
  const project = state.projects.find((p) => p.id === state.projectId);
  const owner = isOwner();
  const members = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading members…"));
  const keys = h("div", { "aria-live": "polite" });
  const secret = h("div", { "aria-live": "polite" });
  const roleSelect = (value, attrs = {}) => h("select", attrs,
    ...["owner", "developer", "viewer"].map((r) => h("option", { value: r, selected: r === value }, r)));

  const loadMembers = async () => {
    try {
      const list = await api("GET", `/projects/${state.projectId}/members`, undefined, { project: false });
      members.replaceChildren(list.items.length ? h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "User"), h("th", {}, "Role"), h("th", { class: "hide-narrow" }, "Since"), h("th", {}, ""))),
        h("tbody", {}, ...list.items.map((m) => {
          const err = h("div", {});
          return h("tr", {},
            h("td", {}, m.user.email),
            h("td", {}, roleSelect(m.role, {
              "aria-label": `Role of ${m.user.email}`, disabled: !owner,
              onchange: async (ev) => {
                try { await api("PUT", `/projects/${state.projectId}/members/${m.user.id}`, { role: ev.target.value }, { project: false }); }
                catch (e) { err.replaceChildren(errorBox(e)); ev.target.value = m.role; }
              },
            }), err),
            h("td", { class: "hide-narrow" }, time(m.created_at)),
            h("td", {}, h("button", {
              type: "button", class: "danger", disabled: !owner,
              onclick: async () => {
                if (!confirm(`Remove ${m.user.email} from ${project.name}?`)) return;
                try { await api("DELETE", `/projects/${state.projectId}/members/${m.user.id}`, undefined, { project: false }); await loadMembers(); }
                catch (e) { err.replaceChildren(errorBox(e)); }
              },
            }, "Remove")));
        }))) : h("p", { class: "muted" }, "No members yet."));
    } catch (err) { members.replaceChildren(errorBox(err)); }
  };
  const loadKeys = async () => {
    if (!owner) {
      keys.replaceChildren(h("p", { class: "notice" }, roleNote("owner")));
      return;
    }
    try {
      const list = await api("GET", `/projects/${state.projectId}/api-keys`, undefined, { project: false });
      keys.replaceChildren(list.items.length ? h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Prefix"), h("th", {}, "Role"), h("th", { class: "hide-narrow" }, "Created"), h("th", {}, ""))),
        h("tbody", {}, ...list.items.map((k) => h("tr", {},
          h("td", {}, k.name), h("td", {}, h("code", {}, k.prefix, "…")), h("td", {}, k.role),
          h("td", { class: "hide-narrow" }, time(k.created_at)),
          h("td", {}, h("button", {
            type: "button", class: "danger",
            onclick: async () => {
              if (!confirm(`Revoke the key ${k.name}? Programs using it stop working at once.`)) return;
              try { await api("DELETE", `/projects/${state.projectId}/api-keys/${k.id}`, undefined, { project: false }); await loadKeys(); }
              catch (e) { keys.append(errorBox(e)); }
            },
          }, "Revoke")))))) : h("p", { class: "muted" }, "No API keys yet."));
    } catch (err) { keys.replaceChildren(errorBox(err)); }
  };

  const addMember = form({ "aria-label": "Add a member", disabled: !owner }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("E-mail of an existing user", h("input", { name: "email", type: "email", required: true }))),
      h("div", {}, ...field("Role", roleSelect("developer", { name: "role" })))),
    h("p", { class: "muted" }, "owner: everything, including members and API keys · developer: deployments and their settings · viewer: read only."),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Add member")),
  ], async (data, el) => {
    await api("POST", `/projects/${state.projectId}/members`, { email: data.get("email"), role: data.get("role") }, { project: false });
    el.reset();
    await loadMembers();
  });
  const addKey = form({ "aria-label": "Create an API key", disabled: !owner }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Name", h("input", { name: "name", required: true, maxlength: 64 }))),
      h("div", {}, ...field("Role", roleSelect("developer", { name: "role" })))),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Create key")),
  ], async (data, el) => {
    const key = await api("POST", `/projects/${state.projectId}/api-keys`, { name: data.get("name"), role: data.get("role") }, { project: false });
    el.reset();
    secret.replaceChildren(h("div", { class: "secret", role: "status" },
      h("p", {}, h("strong", {}, "Copy the secret now: it is shown only once.")),
      h("code", { id: "new-secret" }, key.secret), " ", copyButton(key.secret)));
    await loadKeys();
  });

  show(h("h1", {}, project.name, h("span", { class: "muted" }, ` · your role: ${project.role}`)),
    h("h2", {}, "Members"), h("div", { class: "card" }, members, h("h3", {}, "Add a member"), addMember),
    h("h2", {}, "API keys"), h("div", { class: "card" }, secret, keys, owner ? [h("h3", {}, "New API key"), addKey] : null));
  await Promise.all([loadMembers(), loadKeys()]);
}

start();
