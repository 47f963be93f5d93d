// The public HTTP API, and nothing else: every call carries the key the user entered.

const KEY_STORAGE = "deltaflow.apiKey";
export const API_BASE = "/api/v1";

export function getKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key.trim());
  else localStorage.removeItem(KEY_STORAGE);
  window.dispatchEvent(new CustomEvent("deltaflow:key"));
}

/** An error answer (RFC 9457 problem+json when the server sent one). */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem?.detail || problem?.title || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem || {};
  }

  /** One readable line per field error, e.g. "network.layers.0.units: must be > 0". */
  get fieldErrors() {
    return (this.problem.errors || []).map((e) => `${(e.loc || []).join(".")}: ${e.msg}`);
  }
}

function url(path, query) {
  const target = new URL(API_BASE + path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, value);
  }
  return target.pathname + target.search;
}

async function send(method, path, { query, body, etag, raw } = {}) {
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // An explicit If-None-Match with cache "no-store" lets this code see the 304 itself.
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(url(path, query), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (response.status === 304) return { notModified: true, etag, data: null };
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    if (response.status === 401) window.dispatchEvent(new CustomEvent("deltaflow:unauthorized"));
    throw new ApiError(response.status, problem);
  }
  const data = raw ? await response.blob() : response.status === 204 ? null : await response.json();
  return { notModified: false, etag: response.headers.get("ETag"), data };
}

export const api = {
  get: (path, query) => send("GET", path, { query }).then((r) => r.data),
  /** GET with If-None-Match: resolves {notModified, etag, data}. */
  getConditional: (path, query, etag) => send("GET", path, { query, etag }),
  post: (path, body) => send("POST", path, { body }).then((r) => r.data),
  blob: (path) => send("GET", path, { raw: true }).then((r) => r.data),
};
