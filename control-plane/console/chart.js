// Line charts as inline SVG: no charting library (the console's budget is 500 KB
// gzipped, and these need a few dozen lines). Each bucket has an invisible column with a
// <title>, so hovering shows its exact values; the keyboard reads them too (lineChart).

import { h } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";
// The drawing's own units; it scales to its box's width (two charts a row on desktops,
// one on phones), so text is sized for the narrowest box.
const W = 480;
const H = 210;
const M = { left: 58, right: 12, top: 12, bottom: 28 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** 1, 2 or 5 times a power of ten, at least `v` (so axis labels are round). */
function niceCeil(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((c) => c >= v);
}

/** 1234567 → "1.23M"; small numbers keep up to two decimals. */
export function compact(n) {
  const abs = Math.abs(n);
  for (const [d, u] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (abs >= d) return `${+(n / d).toFixed(2)}${u}`;
  }
  return String(+n.toFixed(2));
}

/** Bytes with binary units. */
export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${+n.toFixed(i || !Number.isInteger(n) ? 1 : 0)} ${units[i]}`;
}

/** A legend's colour sample (an SVG square: the CSP allows no inline styles). */
function swatch(color) {
  return s("svg", { viewBox: "0 0 10 10", width: 10, height: 10, "aria-hidden": "true" },
    s("rect", { width: 10, height: 10, rx: 2, fill: color }));
}

/**
 * A chart of `series` ({label, color, values}) over the bucket start times `times`
 * (Dates), `format` writing a value for the axis and the readout.
 *
 * Keyboard: the chart is one tab stop; the arrow keys (Home, End) move between its
 * points, each marked on the chart and read out in words by a polite live region below
 * it. `selected` (a bucket's time in ms) restores the point a reader was on when a
 * refresh redraws the chart.
 */
export function lineChart({ title, times, series, format = compact, longRange = false, key, selected = null }) {
  const n = times.length;
  const max = niceCeil(Math.max(0, ...series.flatMap((x) => x.values)));
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const x = (i) => M.left + (n <= 1 ? 0 : (i / (n - 1)) * iw);
  const y = (v) => M.top + ih - (v / max) * ih;
  const label = (d) => (longRange
    ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" })
    : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }));
  const describe = (i) => `${times[i].toLocaleString()}: ${series.map((l) => `${l.label} ${format(l.values[i])}`).join(", ")}`;

  const summary = `${title}: ${series.map((x) => `${x.label} up to ${format(Math.max(0, ...x.values))}`).join(", ")}`;
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart", tabindex: n ? 0 : -1, role: "group",
    "aria-roledescription": "chart",
    "aria-label": n ? `${summary}. ${n} points: use the arrow keys to read each one.` : summary,
  });
  for (const f of [0, 0.5, 1]) {
    svg.append(s("line", { x1: M.left, x2: W - M.right, y1: y(max * f), y2: y(max * f), class: "grid" }),
      s("text", { x: M.left - 6, y: y(max * f) + 4, "text-anchor": "end", class: "axis", "aria-hidden": "true" }, format(max * f)));
  }
  if (n) {
    for (const i of [...new Set([0, Math.floor((n - 1) / 2), n - 1])]) {
      svg.append(s("text", { x: x(i), y: H - 8, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle", class: "axis", "aria-hidden": "true" },
        label(times[i])));
    }
  }
  for (const line of series) {
    const pts = line.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { points: pts, fill: "none", stroke: line.color, "stroke-width": 2, "stroke-linejoin": "round" }));
  }
  const col = n > 1 ? iw / (n - 1) : iw;
  for (let i = 0; i < n; i++) {
    svg.append(s("rect", { x: x(i) - col / 2, y: M.top, width: col, height: ih, class: "hover" },
      s("title", {}, `${times[i].toLocaleString()}\n${series.map((l) => `${l.label}: ${format(l.values[i])}`).join("\n")}`)));
  }

  // The point under the keyboard: a vertical line and a dot per series, read out below.
  const cursor = s("g", { class: "cursor", "aria-hidden": "true", visibility: "hidden" },
    s("line", { y1: M.top, y2: M.top + ih }),
    ...series.map((l) => s("circle", { r: 4, fill: l.color })));
  svg.append(cursor);
  const readout = h("p", { class: "readout muted", "aria-live": "polite", "data-readout": key || title });
  let at = -1;
  const select = (i) => {
    at = Math.max(0, Math.min(n - 1, i));
    const [line, ...dots] = cursor.children;
    line.setAttribute("x1", x(at));
    line.setAttribute("x2", x(at));
    dots.forEach((dot, k) => { dot.setAttribute("cx", x(at)); dot.setAttribute("cy", y(series[k].values[at])); });
    cursor.setAttribute("visibility", "visible");
    readout.dataset.ts = times[at].toISOString();
    readout.dataset.index = String(at);
    readout.textContent = describe(at);
  };
  svg.addEventListener("keydown", (ev) => {
    if (!n) return;
    const step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: 10, PageDown: -10 }[ev.key];
    if (step) select(at < 0 ? (step > 0 ? 0 : n - 1) : at + step);
    else if (ev.key === "Home") select(0);
    else if (ev.key === "End") select(n - 1);
    else return;
    ev.preventDefault();
  });
  svg.addEventListener("focus", () => { if (at < 0 && n) select(n - 1); });
  if (selected !== null && n) {
    const i = times.findIndex((t) => t.getTime() === selected);
    select(i < 0 ? n - 1 : i);
  }
  return h("figure", { class: "chart-box", "data-chart": key || title },
    h("figcaption", {}, h("strong", {}, title), " ",
      ...series.map((l) => h("span", { class: "legend" }, swatch(l.color), l.label))),
    svg, readout);
}
