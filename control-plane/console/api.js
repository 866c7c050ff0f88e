// The console's state and its two API clients. Both are generated from the committed
// OpenAPI documents (api.gen.js from openapi/skyport.json, broker.gen.js from
// openapi/broker.json: `skyport console-client`); this file only says how a request
// travels: to the control plane's /api/v1 with the session cookie, the CSRF token and
// X-Skyport-Project, or to a deployment's own /api/v4 with HTTP Basic and an app key the
// console creates for itself (read-only for viewers), and how errors read.

import { createClient as controlPlaneClient } from "./api.gen.js";
import { createClient as deploymentClient } from "./broker.gen.js";

/** What the console knows: the session, the projects, the current one, its poll timer. */
export const state = { session: null, projects: [], projectId: null, poll: null, timers: [], mqtt: null };

/** Runs `fn` every `ms` until the page changes (route() stops every timer). */
export function repeat(fn, ms) {
  state.timers.push(setInterval(fn, ms));
}

/** Stops the current page's timers. */
export function stopPolling() {
  clearInterval(state.poll);
  state.poll = null;
  for (const t of state.timers.splice(0)) clearInterval(t);
}

/** Called when the API says the session has ended (set by app.js). */
export const hooks = { signedOut: () => {} };

export function role() {
  const p = state.projects.find((p) => p.id === state.projectId);
  return p ? p.role : "viewer";
}
export const canWrite = () => role() !== "viewer";
export const isOwner = () => role() === "owner";
export function roleNote(needed) {
  return `Your role in this project (${role()}) cannot do this; it needs ${needed}.`;
}

// ---------- transport ----------

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code;
    this.detail = problem.detail || problem.message || `HTTP ${status}`;
    this.field = problem.field;
  }
}

/** `?a=1&b=2` of the parameters that have a value. */
function queryString(query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

/** Sends one request of the control plane's API (the generated client's `send`). */
async function sendV1(method, path, { query, body, text } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && state.session) headers["x-csrf-token"] = state.session.csrf_token;
  // Names the project on /deployments…; the other endpoints ignore it.
  if (state.projectId) headers["x-skyport-project"] = state.projectId;
  let resp;
  try {
    resp = await fetch(`/api/v1${path}${queryString(query)}`, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { detail: `cannot reach the control plane: ${e.message}` });
  }
  if (resp.status === 401 && path !== "/session") {
    state.session = null;
    hooks.signedOut("Your session has ended; sign in again.");
    throw new ApiError(401, await resp.json().catch(() => ({})));
  }
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
  if (text) return resp.text();
  if (resp.status === 204) return null;
  return resp.json();
}

/** The control plane's API (/api/v1), one function per operation. */
export const v1 = controlPlaneClient(sendV1);

/** Creations of the console's app key in flight, by deployment: a page's parallel
 *  calls share one key. */
const creating = new Map();

/** App key of the console for a deployment's own API, created on first use and bound to
 *  this sign-in (the server deletes it at sign-out or when the session expires). A
 *  viewer's is read-only: the broker refuses its writes, as the API refuses the viewer's. */
async function appKey(dep) {
  const readOnly = !canWrite();
  const slot = `appkey:${dep.id}:${readOnly ? "read" : "write"}`;
  const stored = sessionStorage.getItem(slot);
  if (stored) return { ...JSON.parse(stored), fresh: false, slot };
  if (!creating.has(slot)) {
    creating.set(slot, v1.createAppKey(dep.id, { name: "web console", session_bound: true, read_only: readOnly })
      .then((key) => {
        const value = { id: key.app_id, secret: key.app_secret };
        sessionStorage.setItem(slot, JSON.stringify(value));
        return value;
      })
      .finally(() => creating.delete(slot)));
  }
  return { ...(await creating.get(slot)), fresh: true, slot };
}

/** Sends one request of a deployment's EMQX-v4-shaped API. A just-created key may take a
 *  moment to reach the broker, so a 401 with a fresh key is retried for a while. */
async function sendBroker(dep, method, path, { query, body } = {}) {
  const key = await appKey(dep);
  const auth = "Basic " + btoa(`${key.id}:${key.secret}`);
  for (let attempt = 0; ; attempt++) {
    let resp;
    try {
      resp = await fetch(`${dep.endpoints.api}/api/v4${path}${queryString(query)}`, {
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
        sessionStorage.removeItem(key.slot);
        return sendBroker(dep, method, path, { query, body });
      }
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!resp.ok || (json.code && json.code !== 0)) {
      throw new ApiError(resp.status, {
        code: resp.status === 403 ? "forbidden_role" : json.code,
        detail: json.message || `HTTP ${resp.status}`,
      });
    }
    return json;
  }
}

/** A deployment's own API (/api/v4), one function per operation. */
export function brokerApi(dep) {
  return deploymentClient((method, path, options) => sendBroker(dep, method, path, options));
}
