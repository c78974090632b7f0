// The status page: scrape targets with health and last error, TSDB cardinality (top metrics,
// labels and pairs by series), the effective configuration with secrets redacted, build info.

import { h, clear, fmtBytes, fmtNumber, labelsText, segmented, rerender, fmtTime, dataTable } from "./dom";
import { request } from "./api";
import { update } from "./route";

const TABS: [string, string][] = [
  ["targets", "Targets"],
  ["tsdb", "Storage & cardinality"],
  ["config", "Configuration"],
  ["build", "Build info"],
];

function table(head: string[], rows: (string | number | HTMLElement)[][], numeric: number[] = []): HTMLElement {
  const cells = (r: (string | number | HTMLElement)[]) => h("tr", {}, r.map((c, i) => h("td", { class: numeric.includes(i) ? "num" : "" }, c)));
  return dataTable(head, rows.map(cells), numeric);
}

async function targets(el: HTMLElement): Promise<void> {
  const body = await request("/api/v1/targets");
  const active = body.data.activeTargets as any[];
  const pools = new Map<string, any[]>();
  for (const t of active) pools.set(t.scrapePool, [...(pools.get(t.scrapePool) ?? []), t]);
  if (active.length === 0) return clear(el, h("div", { class: "empty" }, "No scrape targets in this process (add --scrape or collector.scrape)."));
  clear(
    el,
    [...pools].map(([pool, ts]) => {
      const up = ts.filter((t) => t.health === "up").length;
      return h(
        "section",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", {}, pool), h("span", { class: `badge ${up === ts.length ? "health-ok" : "st-firing"}` }, `${up}/${ts.length} up`)),
        table(
          ["Endpoint", "Health", "Labels", "Last scrape", "Duration", "Error"],
          ts.map((t) => [
            h("span", { class: "mono" }, t.scrapeUrl),
            h("span", { class: `badge health-${t.health === "up" ? "ok" : t.health === "down" ? "err" : "unknown"}` }, t.health),
            h("span", { class: "mono small" }, labelsText(t.labels)),
            t.lastScrape?.startsWith("0001") ? "never" : new Date(t.lastScrape).toLocaleTimeString(),
            `${(t.lastScrapeDuration * 1000).toFixed(1)} ms`,
            t.lastError ? h("span", { class: "query-error small" }, t.lastError) : "",
          ]),
        ),
      );
    }),
  );
}

async function tsdb(el: HTMLElement): Promise<void> {
  const body = await request("/api/v1/status/tsdb?limit=15");
  const d = body.data;
  const stats = d.headStats ?? {};
  const pairs = (rows: { name: string; value: number }[] | undefined, fmt = fmtNumber) => (rows ?? []).map((r) => [h("span", { class: "mono" }, r.name), fmt(r.value)]);
  const fmtT = (ms: number) => (ms ? new Date(ms).toLocaleString() : "—");
  clear(
    el,
    h(
      "div",
      { class: "stats" },
      [
        ["Series", fmtNumber(stats.numSeries ?? 0)],
        ["Label pairs", fmtNumber(stats.numLabelPairs ?? 0)],
        ["Chunks", fmtNumber(stats.chunkCount ?? 0)],
        ["Head from", fmtT(stats.minTime)],
        ["Head to", fmtT(stats.maxTime)],
      ].map(([k, v]) => h("div", { class: "stat" }, h("div", { class: "stat-v" }, v), h("div", { class: "stat-k" }, k))),
    ),
    h(
      "div",
      { class: "cards two" },
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Top metrics by series")), table(["Metric", "Series"], pairs(d.seriesCountByMetricName), [1])),
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Labels by distinct values")), table(["Label", "Values"], pairs(d.labelValueCountByLabelName), [1])),
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Label pairs by series")), table(["Pair", "Series"], pairs(d.seriesCountByLabelValuePair), [1])),
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Label memory")), table(["Label", "Bytes"], pairs(d.memoryInBytesByLabelName, fmtBytes), [1])),
    ),
  );
}

async function config(el: HTMLElement): Promise<void> {
  const text = await request<string>("/api/v1/status/config");
  const yaml = typeof text === "string" ? text : (text as any).data?.yaml ?? JSON.stringify(text, null, 2);
  clear(el, h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Effective configuration"), h("span", { class: "muted small" }, "secrets shown as <secret>")), h("pre", { class: "config" }, yaml)));
}

async function build(el: HTMLElement): Promise<void> {
  const body = await request("/api/v1/status/buildinfo");
  clear(el, h("section", { class: "card" }, table(["Field", "Value"], Object.entries(body.data).map(([k, v]) => [k, String(v)]))));
}

interface RuntimeInfo {
  startTime: string;
  reloadConfigSuccess: boolean;
  lastConfigTime: string;
  lastReloadTime?: string | null;
  lastReloadError?: string | null;
  needsRestart?: string[];
}

const when = (iso: string) => fmtTime(Date.parse(iso));

/** The configuration reload state: a banner when the last reload was refused or needs a restart. */
async function reloadState(el: HTMLElement): Promise<void> {
  let info: RuntimeInfo;
  try {
    info = (await request("/api/v1/status/runtimeinfo")).data;
  } catch {
    return clear(el); // a process without runtime information (no config file)
  }
  const restart = info.needsRestart ?? [];
  clear(
    el,
    !info.reloadConfigSuccess
      ? h(
          "div",
          { class: "banner banner-error", role: "alert", "data-testid": "reload-error" },
          h("strong", {}, "Configuration reload failed"),
          info.lastReloadTime ? ` at ${when(info.lastReloadTime)}` : "",
          h("span", {}, `: the configuration applied at ${when(info.lastConfigTime)} keeps running. Fix the file and reload (POST /-/reload, SIGHUP, or a ConfigMap update).`),
          h("pre", { class: "banner-detail" }, info.lastReloadError ?? "no reason given"),
        )
      : null,
    restart.length
      ? h(
          "div",
          { class: "banner banner-warn", "data-testid": "needs-restart" },
          h("strong", {}, "Restart needed"),
          `: changed keys keep their running values until a restart: `,
          restart.map((k, i) => [i ? ", " : "", h("code", {}, k)]),
        )
      : null,
    h(
      "div",
      { class: "muted small reload-line", "data-testid": "reload-line" },
      `Started ${when(info.startTime)} · configuration applied ${when(info.lastConfigTime)}`,
      info.lastReloadTime ? ` · last reload ${when(info.lastReloadTime)} ${info.reloadConfigSuccess ? "succeeded" : "failed"}` : " · not reloaded since",
    ),
  );
}

export function statusPage(body: HTMLElement, params: URLSearchParams) {
  const tab = TABS.some(([t]) => t === params.get("tab")) ? params.get("tab")! : "targets";
  const content = h("div", { class: "status-body" }, h("div", { class: "muted" }, "Loading…"));
  const reloadEl = h("div", { class: "reload-state" });
  body.append(
    h(
      "div",
      { class: "toolbar" },
      h("h1", { class: "page-title" }, "Status"),
      segmented(TABS, tab, (t) => {
        params.set("tab", t);
        update(params);
        rerender();
      }),
    ),
    reloadEl,
    content,
  );
  const loaders: Record<string, (el: HTMLElement) => Promise<void>> = { targets, tsdb, config, build };
  const load = () => loaders[tab](content).catch((e) => clear(content, h("div", { class: "query-error" }, (e as Error).message)));
  const refresh = () => {
    void load();
    void reloadState(reloadEl);
  };
  refresh();
  const timer = window.setInterval(tab === "targets" ? refresh : () => void reloadState(reloadEl), 10000);
  return { destroy: () => clearInterval(timer) };
}
