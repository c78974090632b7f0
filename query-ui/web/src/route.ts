// The whole UI state lives in the URL hash (`#/logs?q=...&from=now-1h&to=now`), so any view can be
// shared as a link and the browser's back button undoes a query. Pages read their parameters from
// `current()` and write them with `update()`, which re-renders through the hashchange listener
// only when the page changes (same-page updates just replace the state). The chosen tenant
// (`tenant=`) follows every link made with `href()`.

import { tenant } from "./api";

export interface Route {
  page: string;
  params: URLSearchParams;
}

export function current(): Route {
  const hash = location.hash.replace(/^#\/?/, "");
  const q = hash.indexOf("?");
  const page = (q < 0 ? hash : hash.slice(0, q)) || "logs";
  const params = new URLSearchParams(q < 0 ? "" : hash.slice(q + 1));
  return { page, params };
}

export function href(page: string, params?: URLSearchParams): string {
  const p = new URLSearchParams(params);
  if (tenant() && !p.has("tenant")) p.set("tenant", tenant());
  const s = p.toString();
  return `#/${page}${s ? `?${s}` : ""}`;
}

/** Writes `params` into the URL for the current page; `push` adds a history entry. */
export function update(params: URLSearchParams, push = true): void {
  const url = href(current().page, params);
  if (url === location.hash) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

export function go(page: string, params?: URLSearchParams): void {
  location.hash = href(page, params);
}
