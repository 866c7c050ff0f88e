// The "Auth chains" tab: the ordered authentication and authorization sources (built-in
// and external HTTP, as EMQX's emqx_auth_http), edited as a whole and saved with one PUT.

import { canWrite, roleNote, v1 } from "./api.js";
import { applyBadge, errorBox, form, h, loading } from "./ui.js";

export async function chains(dep, body) {
  const disabled = !canWrite();
  body.append(h("div", {},
    disabled ? h("p", { class: "notice" }, roleNote("developer")) : null,
    h("h2", {}, "Authentication"), chain(dep, "authentication", disabled),
    h("h2", {}, "Authorization"), chain(dep, "authorization", disabled)));
}

const PLACEHOLDERS = {
  authentication: "%u username, %c client id, %a peer address, %r protocol, %P password, %p port",
  authorization: "%u username, %c client id, %a peer address, %r protocol, %p port, %A action, %t topic",
};

/** `name: value` lines ⇄ an object (headers, body parameters). */
const toLines = (obj) => Object.entries(obj || {}).map(([k, v]) => `${k}: ${v}`).join("\n");
function fromLines(text) {
  const out = {};
  for (const line of String(text).split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(":");
    if (at < 0) out[line.trim()] = "";
    else out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

function chain(dep, kind, disabled) {
  const put = kind === "authentication" ? v1.putAuthentication : v1.putAuthorization;
  const get = kind === "authentication" ? v1.getAuthentication : v1.getAuthorization;
  const card = h("div", { class: "card", "aria-live": "polite" }, loading(kind));
  let doc;
  const render = (saved, warnings = []) => {
    const sources = h("ol", { class: "sources" });
    const renderSources = () => sources.replaceChildren(...doc.sources.map((src, i) => sourceItem(src, i)));
    const move = (i, d) => {
      collect();
      [doc.sources[i], doc.sources[i + d]] = [doc.sources[i + d], doc.sources[i]];
      renderSources();
    };
    const sourceItem = (src, i) => {
      const at = `sources[${i}]`;
      const id = (f) => `${kind}-${i}-${f}`;
      const controls = h("div", { class: "row" },
        h("button", { type: "button", class: "secondary", disabled: disabled || i === 0, onclick: () => move(i, -1), "aria-label": `Move source ${i + 1} up` }, "↑"),
        h("button", { type: "button", class: "secondary", disabled: disabled || i === doc.sources.length - 1, onclick: () => move(i, 1), "aria-label": `Move source ${i + 1} down` }, "↓"),
        h("button", { type: "button", class: "danger", disabled, onclick: () => { collect(); doc.sources.splice(i, 1); renderSources(); } }, "Remove"));
      if (src.type === "built_in") {
        return h("li", { class: "source", "data-source": "built_in", "data-field": at },
          h("strong", {}, "Built-in"), h("span", { class: "muted" }, kind === "authentication"
            ? " — the users on the Security tab" : " — the ACL rules on the Security tab"), controls);
      }
      const input = (f, label, attrs) => [h("label", { for: id(f) }, label),
        h(attrs.tag || "input", { id: id(f), "data-key": f, "data-field": `${at}.${f}`, disabled, ...attrs, tag: undefined })];
      const area = (f, label, value) => [h("label", { for: id(f) }, label),
        h("textarea", { id: id(f), "data-key": f, "data-field": `${at}.${f}`, disabled, rows: 2 }, value)];
      return h("li", { class: "source", "data-source": "http", "data-index": String(i) },
        h("strong", {}, "External HTTP"),
        h("div", { class: "grid" },
          h("div", {}, ...input("url", "URL", { type: "url", value: src.url || "", required: true, placeholder: "https://auth.example.com/mqtt?user=%u" })),
          h("div", {}, h("label", { for: id("method") }, "Method"),
            h("select", { id: id("method"), "data-key": "method", "data-field": `${at}.method`, disabled },
              ...["post", "get"].map((m) => h("option", { value: m, selected: (src.method || "post") === m }, m.toUpperCase())))),
          h("div", {}, ...input("timeout_ms", "Timeout (ms)", { type: "number", min: 1, max: 60000, value: src.timeout_ms ?? 5000 })),
          h("div", {}, ...input("cache_ttl_ms", "Cache decisions for (ms, 0 = off)", { type: "number", min: 0, max: 3600000, value: src.cache_ttl_ms ?? 60000 })),
          h("div", {}, ...input("pool_size", "Connection pool", { type: "number", min: 1, max: 1024, value: src.pool_size ?? 8 }))),
        ...area("headers", "Headers (name: value, one per line)", toLines(src.headers)),
        ...area("body", "Parameters (name: template, one per line)", toLines(src.body ?? { username: "%u", clientid: "%c", password: "%P" })),
        h("p", { class: "muted" }, `Templates: ${PLACEHOLDERS[kind]}. 200 allows, 200 with body "ignore" asks the next source, anything else denies.`),
        controls);
    };
    /** Reads the inputs back into `doc`. */
    const collect = () => {
      for (const li of sources.querySelectorAll("li[data-source=http]")) {
        const src = doc.sources[Number(li.dataset.index)];
        const val = (k) => li.querySelector(`[data-key=${k}]`).value;
        src.url = val("url");
        src.method = val("method");
        for (const k of ["timeout_ms", "cache_ttl_ms", "pool_size"]) src[k] = val(k) === "" ? undefined : Number(val(k));
        src.headers = fromLines(val("headers"));
        src.body = fromLines(val("body"));
      }
    };
    const has = (t) => doc.sources.some((s) => s.type === t);
    const addBuiltIn = h("button", { type: "button", class: "secondary", disabled: disabled || has("built_in"),
      onclick: () => { collect(); doc.sources.push({ type: "built_in" }); render(false); } }, "Add built-in");
    const addHttp = h("button", { type: "button", class: "secondary", disabled,
      onclick: () => { collect(); doc.sources.push({ type: "http" }); render(false); } }, "Add external HTTP");
    const option = kind === "authentication"
      ? h("label", { class: "check" }, h("input", { type: "checkbox", name: "allow_anonymous", checked: doc.allow_anonymous, disabled,
        onchange: (ev) => { doc.allow_anonymous = ev.target.checked; } }), " Let in clients no source decides on (anonymous)")
      : h("div", {}, h("label", { for: `${kind}-no-match` }, "When no source matches"),
        h("select", { id: `${kind}-no-match`, name: "no_match", disabled, onchange: (ev) => { doc.no_match = ev.target.value; } },
          h("option", { value: "allow", selected: doc.no_match === "allow" }, "allow (EMQX's default)"),
          h("option", { value: "deny", selected: doc.no_match === "deny" }, "deny")),
        h("label", { class: "check" }, h("input", { type: "checkbox", checked: doc.disconnect_on_deny, disabled,
          onchange: (ev) => { doc.disconnect_on_deny = ev.target.checked; } }), " Also disconnect a client whose publish is denied"));
    renderSources();
    const save = form({ "aria-label": `Save the ${kind} chain`, disabled }, [
      option,
      h("p", { class: "muted" }, "Sources are asked in order; the first decision wins."),
      sources,
      doc.sources.length ? null : h("p", { class: "muted" }, kind === "authentication"
        ? "No sources: only anonymous clients could connect, and only if allowed above."
        : "No sources: the no-match decision applies to everything."),
      h("div", { class: "row" }, addBuiltIn, addHttp),
      warnings.length ? h("div", { class: "notice" }, ...warnings.map((w) => h("p", {}, `Source ${w.source + 1}: ${w.detail}`))) : null,
      h("div", { class: "row" }, h("button", { type: "submit" }, `Save ${kind}`), saved ? applyBadge(saved) : h("span", { class: "muted" }, "unsaved changes")),
    ], async () => {
      collect();
      const { revision, applied, apply_status, warnings: _w, ...body } = doc;
      const res = await put(dep.id, body, { wait: false });
      doc = res;
      render(res, res.warnings || []);
    });
    card.replaceChildren(save);
  };
  (async () => {
    try {
      doc = await get(dep.id);
      render(doc);
    } catch (err) { card.replaceChildren(errorBox(err)); }
  })();
  return card;
}
