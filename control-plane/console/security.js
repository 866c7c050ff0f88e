// The "Security" tab: built-in MQTT users, ACL rules and bans (through the deployment's
// own API, as EMQX's v4 API shapes them) and the TLS certificate (control-plane API).

import { brokerApi, canWrite, roleNote, v1 } from "./api.js";
import { confirmButton, errorBox, field, form, h, loading, table, time, unixTime } from "./ui.js";

export async function security(dep, body) {
  const disabled = !canWrite();
  body.append(h("div", {},
    disabled ? h("p", { class: "notice" }, roleNote("developer")) : null,
    h("h2", {}, "Built-in users"), users(dep, disabled),
    h("h2", {}, "ACL rules"), aclRules(dep, disabled),
    h("h2", {}, "Bans"), bans(dep, disabled),
    h("h2", {}, "TLS certificate"), tls(dep, disabled)));
}

function users(dep, disabled) {
  const users = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading users…"));
  const refresh = async () => {
    try {
      const list = await brokerApi(dep).listUsernames();
      users.replaceChildren(list.data.length
        ? h("table", {}, h("tbody", {}, ...list.data.map((u) => h("tr", {},
          h("td", {}, u.username),
          h("td", {}, h("button", {
            type: "button", class: "danger", disabled,
            onclick: async () => {
              if (!confirm(`Delete user ${u.username}?`)) return;
              try {
                await brokerApi(dep).deleteUsername(u.username);
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
    await brokerApi(dep).addUsernames({ username: data.get("username"), password: data.get("password") });
    el.reset();
    await refresh();
  });

  refresh();
  return h("div", { class: "card" }, users, h("h3", {}, "Add a user"), addUser);
}

/** Who a rule or ban applies to, as the v4 API names it. */
function subjectOf(rule) {
  if (rule.clientid) return ["clientid", rule.clientid];
  if (rule.username) return ["username", rule.username];
  return ["$all", null];
}

function aclRules(dep, disabled) {
  const list = h("div", { "aria-live": "polite" }, loading("ACL rules"));
  const errors = h("div", { "aria-live": "polite" });
  const refresh = async () => {
    try {
      const page = await brokerApi(dep).listAclRules({ _limit: 1000 });
      list.replaceChildren(page.data.length ? table(["#", "Applies to", "Topic", "Action", "Access", ""],
        page.data.map((r, i) => {
          const [kind, who] = subjectOf(r);
          const api = brokerApi(dep);
          const remove = kind === "$all" ? () => api.deleteAllRule(r.topic)
            : kind === "clientid" ? () => api.deleteClientidRule(who, r.topic)
              : () => api.deleteUsernameRule(who, r.topic);
          return [String(i + 1), who ? `${kind} ${who}` : "every client", h("code", {}, r.topic), r.action,
            h("span", { class: `access-${r.access}` }, r.access),
            confirmButton("Delete", `Delete the rule on ${r.topic}?`, async () => {
              await remove();
              await refresh();
            }, { disabled, errors })];
        }), { "data-list": "acl" })
        : h("p", { class: "muted" }, "No ACL rules: the authorization chain's no-match decision applies to every publish and subscribe."));
    } catch (err) { list.replaceChildren(errorBox(err)); }
  };
  const subjectInput = h("input", { name: "who", id: "acl-who", autocomplete: "off", disabled: true, placeholder: "not needed for every client" });
  const add = form({ "aria-label": "Add an ACL rule", disabled }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Applies to", h("select", {
        name: "kind", id: "acl-kind",
        onchange: (ev) => { subjectInput.disabled = ev.target.value === "all"; },
      }, h("option", { value: "all" }, "every client"), h("option", { value: "clientid" }, "a client id"),
      h("option", { value: "username" }, "a username")))),
      h("div", {}, ...field("Client id or username", subjectInput)),
      h("div", {}, ...field("Topic filter", h("input", { name: "topic", id: "acl-topic", required: true, placeholder: "sensors/%c/# or eq a/#" }))),
      h("div", {}, ...field("Action", h("select", { name: "action" },
        h("option", { value: "pubsub" }, "publish and subscribe"), h("option", { value: "pub" }, "publish"),
        h("option", { value: "sub" }, "subscribe")))),
      h("div", {}, ...field("Access", h("select", { name: "access" },
        h("option", { value: "allow" }, "allow"), h("option", { value: "deny" }, "deny"))))),
    h("p", { class: "muted" }, "Rules are checked in order; the first match wins. MQTT wildcards, %c (client id) and %u (username) work in topics; eq matches the filter literally."),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Add rule")),
  ], async (data, el) => {
    const rule = { topic: data.get("topic"), action: data.get("action"), access: data.get("access") };
    const kind = data.get("kind");
    if (kind === "all") rule.all = "$all";
    else rule[kind] = data.get("who");
    await brokerApi(dep).addRules(rule);
    el.reset();
    subjectInput.disabled = true;
    await refresh();
  });
  refresh();
  return h("div", { class: "card" }, list, errors, h("h3", {}, "Add a rule"), add);
}

function bans(dep, disabled) {
  const list = h("div", { "aria-live": "polite" }, loading("bans"));
  const errors = h("div", { "aria-live": "polite" });
  const refresh = async () => {
    try {
      const page = await brokerApi(dep).listBans({ _limit: 1000 });
      list.replaceChildren(page.data.length ? table(["Banned", "Reason", "By", ["Since", { class: "hide-narrow" }], "Until", ""],
        page.data.map((b) => [`${b.as} ${b.who}`, b.reason, b.by, h("td", { class: "hide-narrow" }, unixTime(b.at)),
          unixTime(b.until),
          confirmButton("Lift", `Lift the ban on ${b.who}?`, async () => {
            await brokerApi(dep).deleteBan(b.as, b.who);
            await refresh();
          }, { disabled, errors, cls: "secondary" })]), { "data-list": "bans" })
        : h("p", { class: "muted" }, "Nobody is banned."));
    } catch (err) { list.replaceChildren(errorBox(err)); }
  };
  const add = form({ "aria-label": "Ban a client", disabled }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Ban by", h("select", { name: "as" },
        h("option", { value: "clientid" }, "client id"), h("option", { value: "username" }, "username"),
        h("option", { value: "peerhost" }, "IP address")))),
      h("div", {}, ...field("Who", h("input", { name: "who", id: "ban-who", required: true, autocomplete: "off" }))),
      h("div", {}, ...field("For (minutes)", h("input", { name: "minutes", type: "number", min: 1, value: 5, required: true }))),
      h("div", {}, ...field("Reason", h("input", { name: "reason", id: "ban-reason", maxlength: 1024 })))),
    h("p", { class: "muted" }, "A ban refuses new connections; clients already connected stay until they reconnect (kick them from the Clients tab)."),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Ban")),
  ], async (data, el) => {
    const until = Math.floor(Date.now() / 1000) + Number(data.get("minutes")) * 60;
    await brokerApi(dep).addBan({ as: data.get("as"), who: data.get("who"), reason: data.get("reason") || undefined, until });
    el.reset();
    await refresh();
  });
  refresh();
  return h("div", { class: "card" }, list, errors, h("h3", {}, "Add a ban"), add);
}

function tls(dep, disabled) {
  const tlsNow = h("div", { "aria-live": "polite" });
  const loadTls = async () => {
    try {
      const t = await v1.getTls(dep.id);
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
    await v1.putTls(dep.id, body);
    el.reset();
    await loadTls();
  });

  loadTls();
  return h("div", { class: "card" }, tlsNow, tlsForm);
}
