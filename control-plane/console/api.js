// Clients of the two APIs the console uses: the control plane's /api/v1 (session cookie,
// CSRF token, X-Skyport-Project) and each deployment's own /api/v4 (HTTP Basic with an
// app key the console creates for itself), plus the signed-in person's role.

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

// ---------- API clients ----------

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code;
    this.detail = problem.detail || problem.message || `HTTP ${status}`;
    this.field = problem.field;
  }
}

export async function api(method, path, body, { project = true, raw = false } = {}) {
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
    hooks.signedOut("Your session has ended; sign in again.");
    throw new ApiError(401, await resp.json().catch(() => ({})));
  }
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
  if (raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

/** Creations of the console's app key in flight, by deployment: a page's parallel
 *  calls share one key. */
const creating = new Map();

/** App key of the console for a deployment's own API, created on first use. */
export async function appKey(dep) {
  const stored = sessionStorage.getItem(`appkey:${dep.id}`);
  if (stored) return { ...JSON.parse(stored), fresh: false };
  if (!canWrite()) throw new ApiError(403, { detail: roleNote("developer") + " (the deployment API needs an app key)" });
  if (!creating.has(dep.id)) {
    // Bound to this sign-in: the server deletes it at sign-out or when the session expires.
    creating.set(dep.id, api("POST", `/deployments/${dep.id}/app-keys`, { name: "web console", session_bound: true })
      .then((key) => {
        const value = { id: key.app_id, secret: key.app_secret };
        sessionStorage.setItem(`appkey:${dep.id}`, JSON.stringify(value));
        return value;
      })
      .finally(() => creating.delete(dep.id)));
  }
  return { ...(await creating.get(dep.id)), fresh: true };
}

/** Calls the deployment's EMQX-v4-shaped API. A just-created key may take a moment to
 *  reach the broker, so a 401 with a fresh key is retried for a while. */
export async function broker(dep, method, path, body) {
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
