// The tenant's quotas and usage (GET /quota): a strip on the jobs page.
import { api } from "./api.js";
import { h, replace } from "./dom.js";

/** "12.3 KB" for a byte count. */
export function bytesText(value) {
  if (value === null || value === undefined) return "unlimited";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let size = value;
  let unit = 0;
  while (size >= 1000 && unit < units.length - 1) {
    size /= 1000;
    unit += 1;
  }
  return `${unit ? size.toFixed(1) : size} ${units[unit]}`;
}

function item(name, used, limit, text = String) {
  const full = limit !== null && limit !== undefined && used >= limit;
  return h("span", { class: full ? "quota-item full" : "quota-item", dataset: { quota: name } },
    h("span", { class: "muted" }, `${name} `),
    h("strong", {}, text(used)), ` / ${limit === null || limit === undefined ? "unlimited" : text(limit)}`);
}

/** Fill ``box`` with the tenant's quota line; errors leave the previous line. */
export async function refreshQuota(box) {
  let quota;
  try {
    quota = await api.get("/quota");
  } catch {
    return;
  }
  const { limits, usage } = quota;
  replace(box,
    item("queued", usage.queued_jobs, limits.max_queued_jobs),
    item("running", usage.running_jobs, limits.max_running_jobs),
    item("storage", usage.storage_bytes, limits.max_storage_bytes, bytesText));
}

export function quotaStrip() {
  return h("div", { class: "quota-strip", id: "quota", "aria-label": "Quota" });
}
