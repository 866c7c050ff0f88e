// The "Monitoring" tab (a deployment's sessions, TPS and traffic from
// GET /deployments/{id}/metrics) and the project's monthly usage page
// (GET /projects/{id}/usage).

import { repeat, state, v1 } from "./api.js";
import { bytes, compact, lineChart } from "./chart.js";
import { errorBox, h, loading, show, table } from "./ui.js";

/** The ranges offered, each with the step that keeps it to a readable number of points. */
const RANGES = {
  "1h": { label: "1 hour", seconds: 3600, step: "1m", stepSeconds: 60 },
  "24h": { label: "24 hours", seconds: 86400, step: "15m", stepSeconds: 900 },
  "7d": { label: "7 days", seconds: 7 * 86400, step: "1h", stepSeconds: 3600 },
};

const sum = (points, f) => points.reduce((a, p) => a + p[f], 0);
const peak = (points, f) => points.reduce((a, p) => Math.max(a, p[f]), 0);

export async function monitoring(dep, body) {
  let range = sessionStorage.getItem("monitoring-range") || "1h";
  if (!RANGES[range]) range = "1h";
  const view = h("div", { "aria-live": "polite" }, loading("metrics"));
  const buttons = Object.entries(RANGES).map(([id, r]) => h("button", {
    type: "button", "aria-pressed": String(id === range), "data-range": id,
    onclick: () => {
      range = id;
      sessionStorage.setItem("monitoring-range", id);
      for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.range === id));
      view.replaceChildren(loading("metrics"));
      load();
    },
  }, r.label));

  const load = async () => {
    const r = RANGES[range];
    const to = new Date();
    const from = new Date(to.getTime() - r.seconds * 1000);
    const q = { from: from.toISOString(), to: to.toISOString(), step: r.step };
    let series;
    try {
      series = await v1.deploymentMetrics(dep.id, q);
    } catch (err) {
      view.replaceChildren(errorBox(err));
      return;
    }
    const pts = series.points;
    // A reader on a chart's point keeps it (and the focus) across the redraw.
    const focused = document.activeElement?.closest?.("figure.chart-box");
    const keep = focused && view.contains(focused)
      ? { key: focused.dataset.chart, ts: focused.querySelector("[data-readout]")?.dataset.ts }
      : null;
    const selected = (key) => (keep?.key === key && keep.ts ? new Date(keep.ts).getTime() : null);
    const times = pts.map((p) => new Date(p.ts));
    const total = (label, value, key, title) => h("div", {}, h("dt", {}, label),
      h("dd", { "data-total": key, "data-value": String(value), title: title ?? String(value) },
        key.startsWith("bytes") ? bytes(value) : compact(value)));
    const quiet = !pts.some((p) => p.messages || p.sessions_max || p.bytes_in || p.bytes_out);
    const perSecond = (f) => pts.map((p) => p[f] / r.stepSeconds);
    view.replaceChildren(
      // The range exactly as asked, so what is shown can be checked against the API.
      h("dl", { class: "totals", "data-from": q.from, "data-to": q.to, "data-step": r.step },
        total("Messages (TPS-counted)", sum(pts, "messages"), "messages"),
        total("Messages in", sum(pts, "messages_in"), "messages_in"),
        total("Messages out", sum(pts, "messages_out"), "messages_out"),
        total("Peak sessions", peak(pts, "sessions_max"), "sessions_max"),
        total("Peak TPS", peak(pts, "tps_max"), "tps_max"),
        total("Traffic in", sum(pts, "bytes_in"), "bytes_in"),
        total("Traffic out", sum(pts, "bytes_out"), "bytes_out")),
      quiet ? h("p", { class: "notice" }, `No sessions or messages in the last ${r.label}. Connect a client (Online test tab, or the snippets on the overview) and traffic shows up here within a minute.`) : "",
      h("div", { class: "charts" },
        lineChart({ title: "Sessions", key: "sessions", selected: selected("sessions"), times, longRange: range === "7d", series: [
          { label: "sessions (max)", color: "#1b7f3b", values: pts.map((p) => p.sessions_max) },
          { label: "connected (max)", color: "#0b5fff", values: pts.map((p) => p.connected_max) },
        ] }),
        lineChart({ title: "TPS (messages per second)", key: "tps", selected: selected("tps"), times, longRange: range === "7d", series: [
          { label: "in (avg)", color: "#0b5fff", values: perSecond("messages_in") },
          { label: "out (avg)", color: "#e67700", values: perSecond("messages_out") },
          { label: "peak, all counted", color: "#8e24aa", values: pts.map((p) => p.tps_max) },
        ] }),
        lineChart({ title: "Traffic", key: "traffic", selected: selected("traffic"), times, longRange: range === "7d", format: bytes, series: [
          { label: "bytes in", color: "#0b5fff", values: pts.map((p) => p.bytes_in) },
          { label: "bytes out", color: "#e67700", values: pts.map((p) => p.bytes_out) },
        ] })),
      h("p", { class: "muted" }, `One point per ${r.step}; times are local (hover a chart, or focus it and use the arrow keys, for a bucket's exact values). Counted as EMQX Cloud counts: TPS = publishes in + deliveries out + retained delivered + HTTP-published.`));
    if (keep) view.querySelector(`figure[data-chart="${keep.key}"] svg`)?.focus();
  };
  body.append(h("div", { class: "row" }, h("div", { class: "seg", role: "group", "aria-label": "Range" }, ...buttons),
    h("button", { type: "button", class: "secondary", onclick: () => load() }, "Refresh")),
  h("div", { class: "card" }, view));
  await load();
  repeat(load, 15000);
}

/** `YYYY-MM` of a Date, in UTC (the API's months are UTC months). */
function monthOf(d) {
  return d.toISOString().slice(0, 7);
}

export async function renderUsage(month) {
  const current = monthOf(new Date());
  month = /^\d{4}-\d{2}$/.test(month || "") ? month : current;
  const project = state.projects.find((p) => p.id === state.projectId);
  const picker = h("input", {
    type: "month", id: "usage-month", value: month, max: current,
    onchange: (ev) => { if (ev.target.value) location.hash = `#/usage/${ev.target.value}`; },
  });
  const view = h("div", { class: "card", "aria-live": "polite" }, loading("usage"));
  show(h("h1", {}, "Usage", h("span", { class: "muted" }, ` · ${project.name}`)),
    h("div", { class: "row" }, h("label", { for: "usage-month" }, "Month (UTC)"), picker), view);
  let usage;
  try {
    usage = await v1.projectUsage(state.projectId, { month });
  } catch (err) {
    view.replaceChildren(errorBox(err));
    return;
  }
  const cells = (u) => [compact(u.session_minutes), String(u.peak_sessions), String(u.peak_tps),
    h("span", { title: String(u.messages) }, compact(u.messages)), bytes(u.bytes_in), bytes(u.bytes_out)];
  const headers = ["Deployment", "Session-minutes", "Peak sessions", "Peak TPS", "Messages", "Traffic in", "Traffic out"];
  view.replaceChildren(usage.deployments.length
    ? table(headers, [
      ...usage.deployments.map((d) => [d.name ? h("a", { href: `#/d/${d.deployment_id}/monitoring` }, d.name)
        : h("span", { class: "muted" }, `deleted (${d.deployment_id})`), ...cells(d)]),
      h("tr", { class: "total" }, h("th", {}, "Total"), ...cells(usage.total).map((c) => h("th", {}, c))),
    ], { "data-month": usage.month })
    : h("p", { class: "muted" }, `No usage in ${usage.month}.`));
}
