// Fetch helpers for the three API families the UI talks to (Prometheus JSON, Loki plain-text
// errors, Alertmanager JSON strings), turning every failure into an ApiError that carries the
// query position when the server reports one ("at line L, col C" for LogQL, "at char N" for PromQL).

export class ApiError extends Error {
  /** 0-based character offset into the query, when the message names one. */
  offset?: number;
  status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/** The 0-based offset into `query` that a parse error message points at, if any. */
export function errorOffset(message: string, query: string): number | undefined {
  const lc = /at line (\d+), col (\d+)/.exec(message);
  if (lc) {
    const lines = query.split("\n");
    const line = Math.min(Number(lc[1]), lines.length);
    let off = 0;
    for (let i = 0; i < line - 1; i++) off += [...lines[i]].length + 1;
    return off + Number(lc[2]) - 1;
  }
  const ch = /at char (\d+)/.exec(message);
  if (ch) return Number(ch[1]) - 1;
  return undefined;
}

async function failure(resp: Response): Promise<ApiError> {
  const text = await resp.text();
  let message = text.trim();
  try {
    const body = JSON.parse(text);
    if (typeof body === "string") message = body;
    else if (body && typeof body.error === "string") message = body.error;
    else if (body && typeof body.message === "string") message = body.message;
  } catch {
    // plain text (Loki API)
  }
  return new ApiError(message || `${resp.status} ${resp.statusText}`, resp.status);
}

let currentTenant = "";

const TOKEN_KEY = "tarsier-token";

/** The API token the user signed in with (server.auth), kept for this browser tab only. */
export function token(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(t: string): void {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Fired (on window) when the server answers 401: the shell then asks for a token. */
export const LOGIN_EVENT = "tarsier:login";

/** The tenant every request names in `X-Scope-OrgID` ("" = the server's default tenant). */
export function tenant(): string {
  return currentTenant;
}

export function setTenant(t: string): void {
  currentTenant = t;
}

export async function request<T = any>(url: string, init?: RequestInit, query?: string): Promise<T> {
  let resp: Response;
  const headers = new Headers(init?.headers);
  if (currentTenant) headers.set("X-Scope-OrgID", currentTenant);
  if (token()) headers.set("Authorization", `Bearer ${token()}`);
  try {
    resp = await fetch(url, { ...init, headers });
  } catch (e) {
    throw new ApiError(`cannot reach the server: ${(e as Error).message}`, 0);
  }
  if (!resp.ok) {
    const err = await failure(resp);
    if (resp.status === 401) window.dispatchEvent(new CustomEvent(LOGIN_EVENT, { detail: err.message }));
    if (query !== undefined) err.offset = errorOffset(err.message, query);
    throw err;
  }
  const ct = resp.headers.get("content-type") ?? "";
  if (!ct.includes("json")) return (await resp.text()) as T;
  const body = await resp.json();
  if (body && body.status === "error") {
    const err = new ApiError(body.error ?? "error", resp.status);
    if (query !== undefined) err.offset = errorOffset(err.message, query);
    throw err;
  }
  return body as T;
}

export function qs(params: Record<string, string | number | string[] | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
    else u.set(k, String(v));
  }
  return u.toString();
}

export interface Stream {
  stream: Record<string, string>;
  values: [string, string][];
}
export interface MatrixSeries {
  metric: Record<string, string>;
  values: [number, string][];
}
export interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

const msToNs = (ms: number) => `${BigInt(Math.round(ms)) * 1000000n}`;

export async function lokiQueryRange(
  query: string,
  startNs: string,
  endNs: string,
  limit: number,
  direction: "backward" | "forward" = "backward",
  signal?: AbortSignal,
): Promise<Stream[]> {
  const body = await request(
    `/loki/api/v1/query_range?${qs({ query, start: startNs, end: endNs, limit, direction })}`,
    { signal },
    query,
  );
  return body.data.result as Stream[];
}

async function matrix(url: string, query: string, signal?: AbortSignal): Promise<MatrixSeries[]> {
  const body = await request(url, { signal }, query);
  return body.data.result as MatrixSeries[];
}

/** A LogQL metric query over a range (Loki's `query_range` with a step). */
export function lokiMetricRange(query: string, startMs: number, endMs: number, stepS: number, signal?: AbortSignal) {
  const params = qs({ query, start: msToNs(startMs), end: msToNs(endMs), step: `${stepS}s` });
  return matrix(`/loki/api/v1/query_range?${params}`, query, signal);
}

/** A PromQL range query. */
export function promRange(query: string, startMs: number, endMs: number, stepS: number, signal?: AbortSignal) {
  const params = qs({ query, start: startMs / 1000, end: endMs / 1000, step: stepS });
  return matrix(`/api/v1/query_range?${params}`, query, signal);
}

export async function promInstant(query: string, timeMs: number, signal?: AbortSignal): Promise<VectorSample[]> {
  const body = await request(`/api/v1/query?${qs({ query, time: timeMs / 1000 })}`, { signal }, query);
  const data = body.data;
  if (data.resultType === "scalar" || data.resultType === "string") {
    return [{ metric: {}, value: data.result }];
  }
  if (data.resultType === "matrix") {
    return (data.result as MatrixSeries[]).map((s) => ({ metric: s.metric, value: s.values[s.values.length - 1] }));
  }
  return data.result as VectorSample[];
}

export { msToNs };
