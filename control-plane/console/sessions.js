// The "Session settings" tab: how long persistent sessions outlive their connection and
// how many messages an offline session keeps (GET/PUT /deployments/{id}/sessions).

import { canWrite, roleNote, v1 } from "./api.js";
import { applyBadge, errorBox, field, form, h, loading } from "./ui.js";

/** 7200 → "2 h", 90 → "1 min 30 s". */
function duration(secs) {
  if (!secs) return "ends at disconnect";
  const parts = [];
  for (const [n, u] of [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]]) {
    if (secs >= n) { parts.push(`${Math.floor(secs / n)} ${u}`); secs %= n; }
  }
  return parts.join(" ");
}

export async function sessionSettings(dep, body) {
  const disabled = !canWrite();
  const card = h("div", { class: "card", "aria-live": "polite" }, loading("session settings"));
  body.append(h("div", {}, card, disabled ? h("p", { class: "notice" }, roleNote("developer")) : null));
  const render = (s) => {
    const status = h("span", {}, applyBadge(s));
    const hint = (input) => {
      const out = h("span", { class: "muted" }, duration(Number(input.value)));
      input.addEventListener("input", () => { out.textContent = duration(Number(input.value)); });
      return out;
    };
    const expiry = h("input", { name: "session_expiry_secs", type: "number", min: 0, max: 604800, required: true, value: s.session_expiry_secs });
    const maxExpiry = h("input", { name: "max_session_expiry_secs", type: "number", min: 0, max: 604800, required: true, value: s.max_session_expiry_secs });
    card.replaceChildren(form({ "aria-label": "Session settings", disabled }, [
      h("div", { class: "grid" },
        h("div", {}, ...field("MQTT 3.1.1 session expiry (seconds)", expiry), hint(expiry)),
        h("div", {}, ...field("MQTT 5 session expiry cap (seconds)", maxExpiry), hint(maxExpiry)),
        h("div", {}, ...field("Offline queue per session (messages)", h("input", { name: "max_queued_messages", type: "number", min: 1, max: 100000, required: true, value: s.max_queued_messages })))),
      h("p", { class: "muted" }, "A persistent session (clean_session=false, or an MQTT 5 session expiry) keeps its subscriptions and queues QoS 1/2 messages while its client is away; messages beyond the queue are dropped and counted. At most 7 days (604800 s)."),
      h("div", { class: "row" }, h("button", { type: "submit" }, "Save session settings"), status),
    ], async (data) => {
      const res = await v1.putSessions(dep.id, {
        session_expiry_secs: Number(data.get("session_expiry_secs")),
        max_session_expiry_secs: Number(data.get("max_session_expiry_secs")),
        max_queued_messages: Number(data.get("max_queued_messages")),
      }, { wait: false });
      render(res);
    }));
  };
  try {
    render(await v1.getSessions(dep.id));
  } catch (err) { card.replaceChildren(errorBox(err)); }
}
