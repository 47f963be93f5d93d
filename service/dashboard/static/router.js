// Hash routes: #/jobs, #/jobs/<id>, #/batches, #/batches/<id>, #/explain (with ?query).

export function parseRoute(hash) {
  const text = (hash || "").replace(/^#\/?/, "");
  const [path, queryString = ""] = text.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = Object.fromEntries(new URLSearchParams(queryString));
  const [section = "jobs", id] = parts;
  if (section === "jobs") return id ? { name: "job", id, query } : { name: "jobs", query };
  if (section === "batches") return id ? { name: "batch", id, query } : { name: "batches", query };
  if (section === "explain") return { name: "explain", query };
  return { name: "unknown", query };
}

/** Build a hash link, dropping empty query values. */
export function link(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value) params.set(name, value);
  const search = params.toString();
  return `#/${path}${search ? `?${search}` : ""}`;
}
