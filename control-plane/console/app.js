// Skyport web console: a single page over the documented APIs only — the control plane's
// /api/v1 (session cookie + CSRF token + X-Skyport-Project) and each deployment's own
// /api/v4 (HTTP Basic with an app key the console creates for itself), through clients
// generated from their OpenAPI documents (api.js).

import { canWrite, hooks, isOwner, roleNote, state, stopPolling, v1 } from "./api.js";
import { clients } from "./clients.js";
import { chains } from "./chains.js";
import { appKeys } from "./keys.js";
import { monitoring, renderUsage } from "./monitoring.js";
import { networking } from "./networking.js";
import { onlineTest } from "./online.js";
import { security } from "./security.js";
import { sessionSettings } from "./sessions.js";
import { copyButton, errorBox, field, form, h, main, show, statusBadge, time } from "./ui.js";

hooks.signedOut = (message) => renderSignIn(message);

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
      state.session = await v1.signIn({ email: data.get("email"), password: data.get("password") });
      await start();
    })));
  main.querySelector("input")?.focus();
}

async function loadProjects() {
  const page = await v1.listProjects({ limit: 100 });
  state.projects = page.items;
  const saved = localStorage.getItem("project");
  state.projectId = state.projects.some((p) => p.id === saved) ? saved : state.projects[0]?.id || null;
  const sel = document.getElementById("project-switcher");
  sel.replaceChildren(...state.projects.map((p) =>
    h("option", { value: p.id, selected: p.id === state.projectId }, `${p.name} (${p.role})`)));
}

async function start() {
  try {
    state.session = await v1.getSession();
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
  // The server deletes the app keys this session made (session_bound) with it.
  try {
    await v1.signOut();
  } catch { /* the session is gone either way */ }
  state.session = null;
  sessionStorage.clear();
  renderSignIn("Signed out.");
});


function route() {
  stopPolling();
  if (!state.session) return;
  if (!state.projectId) {
    return show(h("h1", {}, "No project yet"),
      h("p", { class: "notice" }, "You are not a member of any project. Ask an owner or the administrator to add you."));
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (parts[0] === "project") return renderProject();
  if (parts[0] === "usage") return renderUsage(parts[1]);
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
    const dep = await v1.createDeployment(body);
    location.hash = `#/d/${dep.id}`;
  });
  show(h("h1", {}, "Deployments"), list, h("h2", {}, "New deployment"), h("div", { class: "card" }, create));

  const refresh = async () => {
    try {
      const page = await v1.listDeployments({ limit: 100 });
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
  const t = [["overview", "Overview"], ["monitoring", "Monitoring"], ["clients", "Clients"],
    ["security", "Security"], ["chains", "Auth chains"], ["keys", "App keys"], ["networking", "Networking"],
    ["sessions", "Session settings"], ["test", "Online test"], ["events", "Events"]];
  return h("nav", { class: "tabs", "aria-label": "Deployment" }, ...t.map(([id, label]) =>
    h("a", { href: `#/d/${dep.id}/${id}`, "aria-current": id === current ? "page" : false }, label)));
}

async function renderDeployment(id, tab) {
  show(h("p", { class: "muted" }, "Loading deployment…"));
  let dep;
  try {
    dep = await v1.getDeployment(id);
  } catch (err) {
    return show(h("h1", {}, "Deployment"), errorBox(err), h("a", { href: "#/" }, "Back to deployments"));
  }
  const header = h("div", {}, h("h1", {}, dep.name, " ", statusBadge(dep.status)), tabs(dep, tab));
  const body = h("div", {});
  show(header, body);
  const pages = {
    overview, monitoring, clients, security, chains, keys: appKeys, networking,
    sessions: sessionSettings, test: onlineTest, events,
  };
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

/** Plan and tier change (PATCH): the broker restarts with the new limits. */
function planForm(dep, disabled) {
  const help = h("p", { class: "muted", id: "plan-change-help" }, PLANS[dep.plan]);
  return form({ "aria-label": "Change plan or tier", disabled }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("New plan", h("select", {
        name: "plan", id: "change-plan", "aria-describedby": "plan-change-help",
        onchange: (ev) => { help.textContent = PLANS[ev.target.value]; },
      }, ...Object.keys(PLANS).map((p) => h("option", { value: p, selected: p === dep.plan }, p))))),
      h("div", {}, ...field("Max sessions", h("input", { name: "max_sessions", id: "change-sessions", "data-field": "tier", type: "number", min: 1, max: 1000000, required: true, value: dep.tier.max_sessions }))),
      h("div", {}, ...field("Max TPS", h("input", { name: "max_tps", id: "change-tps", type: "number", min: 1, max: 1000000, required: true, value: dep.tier.max_tps })))),
    help,
    h("p", { class: "muted" }, "Changing the tier restarts the broker with the new limits: clients reconnect, persistent sessions are kept. A plan that does not allow an attached add-on (custom domains, NAT gateway, internal endpoint) is refused until it is removed."),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Change plan or tier")),
  ], async (data) => {
    const req = {};
    if (data.get("plan") !== dep.plan) req.plan = data.get("plan");
    const tier = { max_sessions: Number(data.get("max_sessions")), max_tps: Number(data.get("max_tps")) };
    if (tier.max_sessions !== dep.tier.max_sessions || tier.max_tps !== dep.tier.max_tps) req.tier = tier;
    if (!Object.keys(req).length) throw new Error("Nothing to change: pick another plan or tier.");
    if (!confirm(`Change ${dep.name} to ${req.plan || dep.plan}, ${tier.max_sessions} sessions, ${tier.max_tps} TPS? Clients reconnect.`)) return;
    await v1.patchDeployment(dep.id, req);
    route();
  });
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
    actions.append(act("Start", "", `Start ${dep.name}?`, () => v1.startDeployment(dep.id)));
  } else {
    actions.append(act("Stop", "secondary", `Stop ${dep.name}? Connected clients are disconnected.`,
      () => v1.stopDeployment(dep.id)));
  }
  actions.append(act("Delete", "danger", `Delete ${dep.name}? This cannot be undone.`, async () => {
    await v1.deleteDeployment(dep.id);
    location.hash = "#/";
  }));

  const caStatus = h("span", { class: "muted", "aria-live": "polite" });
  const ca = h("button", {
    type: "button", class: "secondary", onclick: async () => {
      try {
        const pem = await v1.getCa(dep.id);
        const url = URL.createObjectURL(new Blob([pem], { type: "application/x-pem-file" }));
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
    h("h2", {}, "Plan and tier"),
    h("div", { class: "card" }, planForm(dep, disabled)),
    h("h2", {}, "Connect"),
    h("div", { class: "card" },
      h("p", { class: "muted" }, "Replace USER and PASSWORD with a built-in user (Security tab). TLS clients verify the broker with the CA certificate above."),
      ...snippets(dep).flatMap(([name, code]) => [h("h3", {}, name), h("pre", {}, code), copyButton(code)])));

  if (!["running", "stopped", "failed"].includes(dep.status)) {
    state.poll = setInterval(async () => {
      try {
        const now = await v1.getDeployment(dep.id);
        if (now.status !== dep.status) route();
      } catch { /* shown on the next full render */ }
    }, 2000);
  }
}

async function events(dep, body) {
  const list = h("div", { class: "card", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading events…"));
  const type = h("select", { "aria-label": "Event type", onchange: () => load(null, true) },
    h("option", { value: "" }, "all types"),
    ...["deployment.created", "deployment.provisioning", "deployment.running", "deployment.stopped",
      "deployment.started", "deployment.tier_changed", "deployment.failed", "broker.restarted",
      "tls.updated", "tls.removed", "domain.added", "domain.verified", "domain.removed",
      "nat_gateway.created", "nat_gateway.deleted", "internal_endpoint.created", "internal_endpoint.updated",
      "internal_endpoint.deleted"]
      .map((t) => h("option", { value: t }, t)));
  const rows = h("tbody", {});
  const more = h("div", { class: "row" });
  const load = async (cursor, reset) => {
    try {
      const page = await v1.listEvents(dep.id, { limit: 50, type: type.value, cursor });
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
      const list = await v1.listMembers(state.projectId);
      members.replaceChildren(list.items.length ? h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "User"), h("th", {}, "Role"), h("th", { class: "hide-narrow" }, "Since"), h("th", {}, ""))),
        h("tbody", {}, ...list.items.map((m) => {
          const err = h("div", {});
          return h("tr", {},
            h("td", {}, m.user.email),
            h("td", {}, roleSelect(m.role, {
              "aria-label": `Role of ${m.user.email}`, disabled: !owner,
              onchange: async (ev) => {
                try { await v1.setMemberRole(state.projectId, m.user.id, { role: ev.target.value }); }
                catch (e) { err.replaceChildren(errorBox(e)); ev.target.value = m.role; }
              },
            }), err),
            h("td", { class: "hide-narrow" }, time(m.created_at)),
            h("td", {}, h("button", {
              type: "button", class: "danger", disabled: !owner,
              onclick: async () => {
                if (!confirm(`Remove ${m.user.email} from ${project.name}?`)) return;
                try { await v1.removeMember(state.projectId, m.user.id); await loadMembers(); }
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
      const list = await v1.listApiKeys(state.projectId);
      keys.replaceChildren(list.items.length ? h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Prefix"), h("th", {}, "Role"), h("th", { class: "hide-narrow" }, "Created"), h("th", {}, ""))),
        h("tbody", {}, ...list.items.map((k) => h("tr", {},
          h("td", {}, k.name), h("td", {}, h("code", {}, k.prefix, "…")), h("td", {}, k.role),
          h("td", { class: "hide-narrow" }, time(k.created_at)),
          h("td", {}, h("button", {
            type: "button", class: "danger",
            onclick: async () => {
              if (!confirm(`Revoke the key ${k.name}? Programs using it stop working at once.`)) return;
              try { await v1.deleteApiKey(state.projectId, k.id); await loadKeys(); }
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
    await v1.addMember(state.projectId, { email: data.get("email"), role: data.get("role") });
    el.reset();
    await loadMembers();
  });
  const addKey = form({ "aria-label": "Create an API key", disabled: !owner }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Name", h("input", { name: "name", required: true, maxlength: 64 }))),
      h("div", {}, ...field("Role", roleSelect("developer", { name: "role" })))),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Create key")),
  ], async (data, el) => {
    const key = await v1.createApiKey(state.projectId, { name: data.get("name"), role: data.get("role") });
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
