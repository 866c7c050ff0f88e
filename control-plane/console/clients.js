// The "Clients" tab: connected and offline-persistent clients (search, kick) and the
// subscriptions, from the deployment's own API (/api/v4/clients, /api/v4/subscriptions).

import { brokerApi, canWrite, repeat, roleNote } from "./api.js";
import { changed, confirmButton, errorBox, h, loading, statusBadge, table, time } from "./ui.js";

const PAGE = 50;

export async function clients(dep, body) {
  if (!dep.endpoints?.api) {
    body.append(h("p", { class: "notice" }, "The deployment's API appears once it is running."));
    return;
  }
  const disabled = !canWrite();
  const api = brokerApi(dep);
  const errors = h("div", { "aria-live": "polite" });
  const clientList = h("div", { "aria-live": "polite" }, loading("clients"));
  const subList = h("div", { "aria-live": "polite" }, loading("subscriptions"));
  let page = 1;
  let subPage = 1;
  const clientMemo = {};
  const subMemo = {};
  const search = h("input", { type: "search", id: "client-search", placeholder: "part of a client id", autocomplete: "off" });
  const stateFilter = h("select", { id: "client-state" },
    h("option", { value: "" }, "all"), h("option", { value: "connected" }, "connected"),
    h("option", { value: "disconnected" }, "offline (persistent session)"));
  const pager = (p, meta, go) => {
    const pages = Math.max(1, Math.ceil(meta.count / meta.limit));
    return h("div", { class: "row" },
      h("span", { class: "muted" }, `${meta.count} in all · page ${p} of ${pages}`),
      p > 1 ? h("button", { type: "button", class: "secondary", onclick: () => go(p - 1) }, "Previous") : null,
      p < pages ? h("button", { type: "button", class: "secondary", onclick: () => go(p + 1) }, "Next") : null);
  };
  const loadClients = async () => {
    const q = { _page: page, _limit: PAGE, _like_clientid: search.value.trim(), conn_state: stateFilter.value };
    try {
      const res = await api.listClients(q);
      if (!changed(clientMemo, [q, res])) return;
      clientList.replaceChildren(...[].concat(res.data.length
        ? [table(["Client id", "State", "User", ["Address", { class: "hide-narrow" }], ["Protocol", { class: "hide-narrow" }], ["Since", { class: "hide-narrow" }], ""],
          res.data.map((c) => h("tr", { "data-client": c.clientid },
            h("td", {}, h("code", {}, c.clientid)),
            h("td", {}, statusBadge(c.conn_state), c.expiry_in != null ? h("div", { class: "muted" }, `expires in ${c.expiry_in} s`) : null),
            h("td", {}, c.username || "—"),
            h("td", { class: "hide-narrow" }, c.ip_address ? `${c.ip_address}:${c.port}` : "—"),
            h("td", { class: "hide-narrow" }, c.transport ? `${c.transport}, MQTT ${c.proto_ver === 5 ? "5" : c.proto_ver === 4 ? "3.1.1" : "3.1"}` : "—"),
            h("td", { class: "hide-narrow" }, time(c.connected_at)),
            h("td", {}, confirmButton(c.connected ? "Kick" : "Discard session",
              c.connected ? `Disconnect ${c.clientid}? It may reconnect at once unless banned.` : `Discard the offline session of ${c.clientid}?`,
              async () => { await api.kickClient(c.clientid); await loadClients(); await loadSubs(); },
              { disabled, errors })))), { "data-list": "clients" }),
        pager(page, res.meta, (p) => { page = p; loadClients(); })]
        : h("p", { class: "muted" }, search.value || stateFilter.value ? "No client matches." : "No clients: nothing is connected and no persistent session is kept.")));
    } catch (err) { clientMemo.last = null; clientList.replaceChildren(errorBox(err)); }
  };
  const loadSubs = async () => {
    try {
      const res = await api.listSubscriptions({ _page: subPage, _limit: PAGE });
      if (!changed(subMemo, [subPage, res])) return;
      subList.replaceChildren(...[].concat(res.data.length
        ? [table(["Client id", "Topic filter", "QoS"], res.data.map((s) => [h("code", {}, s.clientid), h("code", {}, s.topic), String(s.qos)]),
          { "data-list": "subscriptions" }),
        pager(subPage, res.meta, (p) => { subPage = p; loadSubs(); })]
        : h("p", { class: "muted" }, "No subscriptions.")));
    } catch (err) { subMemo.last = null; subList.replaceChildren(errorBox(err)); }
  };
  let typing;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { page = 1; loadClients(); }, 300); });
  stateFilter.addEventListener("change", () => { page = 1; loadClients(); });
  body.append(h("div", {},
    h("div", { class: "row" }, h("label", { for: "client-search" }, "Search"), search,
      h("label", { for: "client-state" }, "State"), stateFilter),
    h("div", { class: "card" }, clientList, errors), disabled ? h("p", { class: "notice" }, roleNote("developer")) : null,
    h("h2", {}, "Subscriptions"), h("div", { class: "card" }, subList)));
  await Promise.all([loadClients(), loadSubs()]);
  repeat(() => { loadClients(); loadSubs(); }, 5000);
}
