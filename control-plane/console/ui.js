// DOM helpers shared by every page of the console: element builder, timestamps, error
// boxes, copy buttons and forms that show the API's errors next to their fields.

export const main = document.getElementById("main");

export function h(tag, attrs = {}, ...children) {
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

export function show(...nodes) {
  main.replaceChildren(...nodes);
}

/** A timestamp in the reader's local time, with UTC on hover. */
export function time(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return h("time", { datetime: ts, title: d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") },
    d.toLocaleString());
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}`, "data-status": status }, status);
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err.detail || err.message || String(err));
}

export function copyButton(text, label = "Copy") {
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

// ---------- forms ----------

/** Wires a form: disables it while `action` runs, shows the API's error, next to the
 *  field it names when there is one. */
export function form(attrs, children, action) {
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
        const field = fieldFor(el, err.field);
        const msg = h("p", { class: "field-error", role: "alert", id: `err-${(err.field || "").replace(/[^\w-]/g, "_")}` }, err.detail || err.message);
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

/** The input an error's `field` names: `data-field` of the longest matching prefix
 *  (`sources[1].headers.x` → `sources[1].headers`), else the input named like its head. */
function fieldFor(el, name) {
  if (!name) return null;
  const parts = name.split(".");
  for (let n = parts.length; n > 0; n--) {
    const hit = el.querySelector(`[data-field="${CSS.escape(parts.slice(0, n).join("."))}"]`);
    if (hit) return hit;
  }
  return el.querySelector(`[name="${CSS.escape(parts[0].replace(/\[\d+\]$/, ""))}"]`);
}

export function field(label, input) {
  const id = input.id || `f-${input.getAttribute("name")}`;
  input.id = id;
  return [h("label", { for: id }, label), input];
}

/** Whether `value` differs from the last one `memo` saw (a poll re-renders only then,
 *  keeping keyboard focus and selections); reset `memo.last` after an error. */
export function changed(memo, value) {
  const sig = JSON.stringify(value);
  if (sig === memo.last) return false;
  memo.last = sig;
  return true;
}

/** A "Loading …" placeholder, replaced by the content, an empty state or an error. */
export function loading(what) {
  return h("p", { class: "muted" }, `Loading ${what}…`);
}

/** A table with a header row; `rows` are arrays of cells (nodes or text). */
export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, ...headers.map((t) => (Array.isArray(t)
      ? h("th", t[1], t[0]) : h("th", {}, t))))),
    h("tbody", {}, ...rows.map((cells) => (cells instanceof Node ? cells : h("tr", {}, ...cells.map((c) =>
      (c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c))))))));
}

/** A button that asks first, runs `action`, and shows its error in `errors`. */
export function confirmButton(label, question, action, { cls = "danger", disabled = false, errors, title } = {}) {
  return h("button", {
    type: "button", class: cls, disabled, title,
    onclick: async (ev) => {
      if (question && !confirm(question)) return;
      errors?.replaceChildren();
      ev.target.disabled = true;
      try {
        await action();
      } catch (err) {
        errors?.replaceChildren(errorBox(err));
      } finally {
        if (ev.target.isConnected) ev.target.disabled = disabled;
      }
    },
  }, label);
}

/** A Unix-seconds timestamp as `time()` shows RFC 3339 ones. */
export function unixTime(seconds) {
  return time(new Date(seconds * 1000).toISOString());
}

/** Whether the running broker has a setting in force, from the API's `apply_status`. */
export function applyBadge(resource) {
  if (!resource || !resource.apply_status) return null;
  return h("span", { class: `status status-${resource.apply_status === "applied" ? "running" : "provisioning"}`,
    "data-apply": resource.apply_status,
    title: `revision ${resource.revision}: ${resource.apply_status === "applied" ? "in force on the broker" : "not yet in force on the broker"}` },
  resource.apply_status === "applied" ? "applied" : "applying…");
}
